//! The instances' step: each instance's newest point restored under the
//! root's `hosts/`, with the recovered members' outputs filled into its
//! launch spec, then started and waited for until healthy — in dependency
//! order, after every data member.

use std::path::PathBuf;
use std::time::Instant;

use lifeboat_control::protectors::{Restored, Target};
use lifeboat_vault::{Id, RecoveryPoint};

use super::members::is_instance;
use super::sources::{SiteVaults, newest, restore_point};
use super::{Recovered, Recovery, Source};
use crate::state::MemberState;
use crate::{Result, StackError};

/// Step: every instance restored and started, healthy, in dependency order.
pub(crate) struct StartInstances;

impl StartInstances {
    /// Restores and starts each instance of the stack; the state is written
    /// after each. A required instance's failure fails the recovery, an
    /// optional one's is a warning.
    pub(crate) fn run(
        r: &Recovery,
        mut hosts: super::members::Hosts,
        got: &mut Recovered,
    ) -> Result<()> {
        let order = crate::stack::order(r.cfg, r.declared);
        for name in order.iter().filter(|n| is_instance(r, n)) {
            let outputs = crate::stack::launch_values(r.cfg, &got.state)?;
            let files = match hosts.iter().position(|(n, _)| n == name) {
                Some(i) => hosts.swap_remove(i).1,
                None => Err(StackError::Process(format!(
                    "instance `{name}`'s files were not restored"
                ))),
            };
            match files
                .and_then(|f| launch_instance(r, f, name, outputs))
                .and_then(|h| h.start(r))
            {
                Ok((m, src)) => {
                    got.state.members.push((name.clone(), m));
                    got.sources.push(src);
                    got.state.write()?;
                }
                Err(e) if r.declared.optional.contains(name) => got
                    .warnings
                    .push(format!("optional member `{name}` was not recovered: {e}")),
                Err(e) => {
                    got.state.write()?;
                    // The instances that will not start leave no files.
                    for (_, h) in hosts
                        .iter()
                        .filter_map(|(n, h)| Some((n, h.as_ref().ok()?)))
                    {
                        h.remove_if_made();
                    }
                    return Err(r.failed(name, e));
                }
            }
        }
        Ok(())
    }
}

/// An instance's files and volumes restored under the root (beside the
/// data members), its launch spec not written yet.
pub(crate) struct HostFiles<'v> {
    dir: PathBuf,
    /// The recovery made its directory.
    made: bool,
    vault_name: &'v str,
    vault: &'v lifeboat_vault::Vault,
    id: Id,
    point: RecoveryPoint,
}

impl HostFiles<'_> {
    /// Removes the directory, when this recovery made it.
    pub(crate) fn remove_if_made(&self) {
        if self.made {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// An instance restored under the root, not started yet.
struct RestoredHost<'v> {
    name: String,
    files: HostFiles<'v>,
    port: u16,
    launch: crate::launch::LaunchChoice,
}

/// Restores instance `name`'s newest point (at or before `--at`) into
/// `ROOT/hosts/NAME`: its files and volumes, while the data members load
/// (its launch spec waits for their outputs); refused when the point was
/// not restored whole.
pub(crate) fn restore_files<'v>(
    r: &Recovery,
    vaults: &'v SiteVaults,
    name: &str,
) -> Result<HostFiles<'v>> {
    let at = r.opts.at;
    let Some((vn, v, id, p)) = newest(vaults.list(), name, lifeboat_instance::KIND, at) else {
        return Err(StackError::Refused(format!(
            "the site holds no instance point of `{name}`{}",
            at.map(|t| format!(" taken at or before {}", t.to_rfc3339()))
                .unwrap_or_default()
        )));
    };
    let dir = r.root.join("hosts").join(name);
    let made = !dir.exists();
    std::fs::create_dir_all(&dir).map_err(|e| StackError::io("create", &dir, e))?;
    let t = Instant::now();
    let options = serde_json::json!({
        "overwrite": lifeboat_files::Overwrite::Always,
        "part": "files",
    });
    let rep = restore_point(v, &id, &p, Target::Directory(dir.clone()), options)
        .map_err(|e| crate::launch::restore_error(name, e))?;
    if !rep.errors.is_empty() || !rep.not_restored.is_empty() {
        return Err(not_whole(&id, &dir, &rep));
    }
    r.step("restore the instance (files, volumes)", Some(name), t);
    r.step_bytes("restore the instance (files, volumes)", name, rep.bytes);
    Ok(HostFiles {
        dir,
        made,
        vault_name: vn,
        vault: v,
        id,
        point: p,
    })
}

/// Writes restored instance `name`'s launch spec, filled from `values`
/// (the recovered members' outputs) and its own port.
fn launch_instance<'v>(
    r: &Recovery,
    files: HostFiles<'v>,
    name: &str,
    mut values: crate::stack::Outputs,
) -> Result<RestoredHost<'v>> {
    let (v, id, p, dir) = (files.vault, &files.id, &files.point, &files.dir);
    let launch = crate::launch::LaunchChoice::of(r.cfg, name, p)?;
    let port = crate::launch::instance_port(name, launch.spec.as_ref())?;
    values.insert("listen".into(), format!("127.0.0.1:{port}"));
    values.insert("port".into(), port.to_string());
    let t = Instant::now();
    let options = serde_json::json!({
        "env": values,
        "launch": launch.spec,
        "part": "launch",
    });
    let rep = restore_point(v, id, p, Target::Directory(dir.clone()), options)
        .map_err(|e| crate::launch::restore_error(name, e))?;
    if !lifeboat_instance::protector::launch_written(&rep) {
        return Err(not_whole(id, dir, &rep));
    }
    r.step("write the instance's launch spec", Some(name), t);
    Ok(RestoredHost {
        name: name.into(),
        files,
        port,
        launch,
    })
}

/// Why an instance point was not restored whole (its first errors and
/// damaged files, or its missing launch spec).
fn not_whole(id: &Id, dir: &std::path::Path, rep: &Restored) -> StackError {
    let errors = rep.errors.iter().take(3).map(|e| format!("{e:?}"));
    let damaged = rep.not_restored.iter().take(3);
    let mut why: Vec<String> = errors
        .chain(damaged.map(|d| format!("damaged: {d:?}")))
        .collect();
    if why.is_empty() {
        why.push("the point has no launch spec".into());
    }
    StackError::Process(format!(
        "instance point {} was not restored whole into {}: {}",
        id.short(),
        dir.display(),
        why.join("; ")
    ))
}

impl RestoredHost<'_> {
    /// Starts the restored instance and waits until it is healthy.
    fn start(self, r: &Recovery) -> Result<(MemberState, Source)> {
        let name = self.name.as_str();
        let t = Instant::now();
        let started = lifeboat_instance::supervise::start(&self.files.dir)?;
        r.step("start the instance and wait for health", Some(name), t);
        let start_time =
            lifeboat_instance::supervise::start_time(started.pid).ok_or_else(|| {
                StackError::Process(format!(
                    "instance `{name}` exited right after it became healthy"
                ))
            })?;
        let f = self.files;
        let m = MemberState {
            kind: "instance".into(),
            dir: f.dir,
            outputs: crate::stack::instance_outputs(self.port),
            process: Some(crate::process::Proc {
                pid: started.pid,
                start_time,
            }),
            provisioned: Some(f.made),
            ..Default::default()
        };
        let why = "the newest instance point of the site".to_string();
        let src = Source {
            launch_spec: Some(self.launch.from.into()),
            launch_spec_differs: self.launch.differs,
            ..Source::point(
                name,
                "instance",
                f.vault_name,
                &f.id,
                Some(f.point.time),
                why,
            )
        };
        Ok((m, src))
    }
}
