//! The data members' steps: each database, bucket and files member's source
//! chosen, provisioned and restored, all side by side; then the replicas
//! used in place fenced before anything starts on them.

use std::time::Instant;

use lifeboat_config::ResourceKind;
use lifeboat_control::protectors::{Target, TargetKind, registry};

use super::instances::HostFiles;
use super::sources::{SiteVaults, newest, restore_point};
use super::{Recovered, Recovery, Source};
use crate::state::{MemberState, StackState};
use crate::{Result, StackError};

/// Each instance's files restored beside the data, by name (or why not).
pub(crate) type Hosts<'v> = Vec<(String, Result<HostFiles<'v>>)>;

/// Step: every data member (all but the instances) restored, side by side.
pub(crate) struct RestoreData;

impl RestoreData {
    /// Restores every data member of the stack in parallel; the stack's
    /// state records what came up. A required member's failure fails the
    /// recovery (what was recovered stays, recorded); an optional one's is a
    /// warning.
    pub(crate) fn run<'v>(r: &Recovery, vaults: &'v SiteVaults) -> Result<(Recovered, Hosts<'v>)> {
        let order = crate::stack::order(r.cfg, r.declared);
        let (hosts, data): (Vec<&String>, Vec<&String>) =
            order.iter().partition(|n| is_instance(r, n));
        let (results, hosts) = std::thread::scope(|scope| {
            let data: Vec<_> = data
                .iter()
                .map(|name| {
                    let name = name.to_string();
                    scope.spawn(move || {
                        let got = restore_member(r, vaults, &name);
                        (name, got)
                    })
                })
                .collect();
            // The instances' files beside the data: only their start
            // waits for the members their launch spec names.
            let hosts: Vec<_> = hosts
                .iter()
                .map(|name| {
                    let name = name.to_string();
                    scope.spawn(move || {
                        let got = super::instances::restore_files(r, vaults, &name);
                        (name, got)
                    })
                })
                .collect();
            let data: Vec<(String, Result<(MemberState, Source)>)> = data
                .into_iter()
                .map(|h| h.join().expect("member thread"))
                .collect();
            let hosts: Vec<(String, Result<HostFiles>)> = hosts
                .into_iter()
                .map(|h| h.join().expect("instance thread"))
                .collect();
            (data, hosts)
        });
        let mut got = Recovered {
            state: StackState {
                stack: r.stack.into(),
                site: r.site.into(),
                root: r.root.clone(),
                up_at: r
                    .started_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                members: Vec::new(),
                warnings: Vec::new(),
            },
            sources: Vec::new(),
            warnings: Vec::new(),
        };
        let mut failure = None;
        for (name, result) in results {
            match result {
                Ok((m, src)) => {
                    got.state.members.push((name, m));
                    got.sources.push(src);
                }
                Err(e) if r.declared.optional.contains(&name) => got
                    .warnings
                    .push(format!("optional member `{name}` was not recovered: {e}")),
                Err(e) => {
                    failure.get_or_insert(format!("member `{name}`: {e}"));
                }
            }
        }
        got.state.write()?;
        if failure.is_some() {
            // No instance starts: the files restored for one go again (the
            // directories this recovery made; the state does not hold them).
            for (_, h) in &hosts {
                if let Ok(h) = h {
                    h.remove_if_made();
                }
            }
        }
        match failure {
            None => Ok((got, hosts)),
            Some(f) => Err(StackError::Process(format!(
                "recovery of stack `{}` into site `{}` failed: {f} (what was recovered stays: `lifeboat stack status` shows it, `stack down --purge` removes it)",
                r.stack, r.site
            ))),
        }
    }
}

/// Whether member `name` is an instance (started after the data).
pub(crate) fn is_instance(r: &Recovery, name: &str) -> bool {
    matches!(
        r.cfg.resources.get(name).map(|x| &x.kind),
        Some(ResourceKind::Instance { .. })
    )
}

/// One data member recovered, by the kind of target its protector restores
/// into: a database server, a bucket, a directory provisioned for it.
fn restore_member(r: &Recovery, vaults: &SiteVaults, name: &str) -> Result<(MemberState, Source)> {
    let resource = &r.cfg.resources.get(name).expect("a member").kind;
    if let ResourceKind::Other { kind, .. } = resource {
        return Err(StackError::Refused(format!(
            "`{name}` is a resource of kind `{kind}`: a stack cannot recover it"
        )));
    }
    let kind = resource.name();
    let protector = registry()
        .of_resource(kind)
        .ok_or_else(|| StackError::Refused(format!("no protector restores `{kind}` members")))?;
    match protector.describe().restores_into {
        TargetKind::Database => super::database::recover(r, vaults, name),
        TargetKind::Bucket => {
            // On the S3 endpoint the site names (crate::bucket).
            if let Some(store) = crate::bucket::SiteStore::of(r.cfg, r.site)?
                && let Some(got) = crate::bucket::recover_member(r, &store, name, vaults.list())?
            {
                return Ok(got);
            }
            super::bucket_dir::recover(r, vaults, name)
        }
        TargetKind::Directory => restore_files(r, vaults, name),
    }
}

/// A files member: its newest point (at or before `--at`) restored into
/// the directory provisioned for it.
fn restore_files(r: &Recovery, vaults: &SiteVaults, name: &str) -> Result<(MemberState, Source)> {
    let Some((vn, v, id, p)) = newest(vaults.list(), name, "files", r.opts.at) else {
        return Err(StackError::Refused(format!(
            "the site holds no point of `{name}`"
        )));
    };
    let t = Instant::now();
    let mut m = crate::stack::provision(r.cfg, &r.root, r.own, name, None)?;
    // The directory the file declares (a recovery into the member's own
    // site) holding files already: never restored into, a directory of the
    // recovery's own instead (as a bucket's), said in the source.
    let mut moved = None;
    if m.borrowed && std::fs::read_dir(&m.dir).is_ok_and(|mut e| e.next().is_some()) {
        let own = r.root.join("files").join(format!(
            "{name}.recovered-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ")
        ));
        std::fs::create_dir_all(&own).map_err(|e| StackError::io("create", &own, e))?;
        moved = Some(format!(
            "restored into {}, a directory of its own: not into {} (it holds files)",
            own.display(),
            m.dir.display()
        ));
        m.outputs.insert("path".into(), own.display().to_string());
        (m.dir, m.borrowed, m.provisioned) = (own, false, Some(true));
    }
    // A point of one directory is restored as the member's directory
    // itself: the application is handed that directory, and finds its
    // files there (not under their old absolute path).
    let one = match p.paths.as_slice() {
        [one] => Some(std::path::PathBuf::from(one)),
        _ => None,
    };
    let options = serde_json::json!({"as_target": one.is_some(), "path": one});
    restore_point(v, &id, &p, Target::Directory(m.dir.clone()), options)
        .map_err(|e| StackError::Process(format!("restoring point {}: {e}", id.short())))?;
    r.step("restore the files point", Some(name), t);
    let why = match moved {
        None => "the newest files point of the site".to_string(),
        Some(note) => format!("the newest files point of the site; {note}"),
    };
    Ok((m, Source::point(name, "files", vn, &id, Some(p.time), why)))
}

/// Step: every replica the recovery uses in place fenced (the old
/// primary's replicator must not write into it), before anything starts on
/// it. A fence that cannot be written is a warning saying to stop that
/// replicator by hand. Never for a scratch stack (it uses no replica in place).
pub(crate) struct FenceReplicas;

impl FenceReplicas {
    /// Fences the replicas of `got`'s sources.
    pub(crate) fn run(r: &Recovery, got: &mut Recovered) {
        let now = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        for x in got.sources.iter().filter(|x| x.from == "replica") {
            let Some(m) = got.state.member(&x.member) else {
                continue;
            };
            let f = lifeboat_bucket::replicate::fence::Fence {
                stack: r.stack.into(),
                site: r.site.into(),
                member: x.member.clone(),
                recovery: now(r.started_at),
                fenced_at: now(chrono::Utc::now()),
            };
            if let Err(e) = crate::protect_data::fence_replica(r.cfg, r.site, m, &f) {
                got.warnings.push(format!(
                    "the replica of `{}` is NOT fenced: {e} (stop the old primary's replicator into it by hand)",
                    x.member
                ));
            }
        }
    }
}
