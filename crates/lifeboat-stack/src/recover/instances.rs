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
    pub(crate) fn run(r: &Recovery, vaults: &SiteVaults, got: &mut Recovered) -> Result<()> {
        let order = crate::stack::order(r.cfg, r.declared);
        for name in order.iter().filter(|n| is_instance(r, n)) {
            let outputs = crate::stack::launch_values(r.cfg, &got.state)?;
            match restore_instance(r, vaults, name, outputs).and_then(|h| h.start(r)) {
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
                    return Err(r.failed(name, e));
                }
            }
        }
        Ok(())
    }
}

/// An instance restored under the root, not started yet.
struct RestoredHost<'v> {
    name: String,
    dir: PathBuf,
    /// The recovery made its directory.
    made: bool,
    port: u16,
    launch: crate::launch::LaunchChoice,
    vault_name: &'v str,
    id: Id,
    point: RecoveryPoint,
}

/// Restores instance `name`'s newest point (at or before `--at`) into
/// `ROOT/hosts/NAME` with its launch spec filled from `outputs` and its own
/// port; refused when the point was not restored whole.
fn restore_instance<'v>(
    r: &Recovery,
    vaults: &'v SiteVaults,
    name: &str,
    mut values: crate::stack::Outputs,
) -> Result<RestoredHost<'v>> {
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
    let launch = crate::launch::LaunchChoice::of(r.cfg, name, &p)?;
    let port = crate::launch::instance_port(name, launch.spec.as_ref())?;
    values.insert("listen".into(), format!("127.0.0.1:{port}"));
    values.insert("port".into(), port.to_string());
    let t = Instant::now();
    let options = serde_json::json!({
        "env": values,
        "overwrite": lifeboat_files::Overwrite::Always,
        "launch": launch.spec,
    });
    let rep = restore_point(v, &id, &p, Target::Directory(dir.clone()), options)
        .map_err(|e| crate::launch::restore_error(name, e))?;
    if !lifeboat_instance::protector::launch_written(&rep) {
        return Err(not_whole(&id, &dir, &rep));
    }
    r.step(
        "restore the instance (files, volumes, launch spec)",
        Some(name),
        t,
    );
    Ok(RestoredHost {
        name: name.into(),
        dir,
        made,
        port,
        launch,
        vault_name: vn,
        id,
        point: p,
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
        let started = lifeboat_instance::supervise::start(&self.dir)?;
        r.step("start the instance and wait for health", Some(name), t);
        let start_time =
            lifeboat_instance::supervise::start_time(started.pid).ok_or_else(|| {
                StackError::Process(format!(
                    "instance `{name}` exited right after it became healthy"
                ))
            })?;
        let m = MemberState {
            kind: "instance".into(),
            dir: self.dir,
            outputs: crate::stack::instance_outputs(self.port),
            process: Some(crate::process::Proc {
                pid: started.pid,
                start_time,
            }),
            provisioned: Some(self.made),
            ..Default::default()
        };
        let why = "the newest instance point of the site".to_string();
        let src = Source {
            launch_spec: Some(self.launch.from.into()),
            launch_spec_differs: self.launch.differs,
            ..Source::point(
                name,
                "instance",
                self.vault_name,
                &self.id,
                Some(self.point.time),
                why,
            )
        };
        Ok((m, src))
    }
}
