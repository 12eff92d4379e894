//! Running a plan's backups now, each one recorded as a job.
//!
//! Each resource of the plan is backed up into the plan's vault through its
//! protector's library call (files, mysql, bucket, instance), under the resource's
//! name from the file, tagged `plan:NAME`. A job is written `running` before
//! the protector starts and finished after, as `succeeded`, `incomplete`
//! (warnings) or `failed` (with the error); a process killed meanwhile leaves
//! it `running` until the next opener of the store marks it `interrupted`.
//!
//! After a backup succeeds, the plan's copy actions copy its point into
//! their vaults (`lifeboat_vault::copy`, incremental through the ledger);
//! each copy is a line of the job's log, and a failed copy makes the job
//! `incomplete` (the point exists; the copy is missing, and `report` says so).

use lifeboat_config::Config;
use lifeboat_vault::{RecoveryPoint, Vault};
use serde::Serialize;

use crate::store::{JobEnd, JobStore, NewJob, status};
use crate::{ControlError, Result};

/// What one job of a run ended as.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The job's id in the store.
    pub job: i64,
    /// The resource.
    pub resource: String,
    /// Its status.
    pub status: String,
    /// The point made.
    pub point: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Copies point `id` of `source` into every copy action's vault; one log
/// line per action ("warning: …" when it failed).
fn run_copies(
    cfg: &Config,
    source: &Vault,
    actions: &[lifeboat_config::CopyAction],
    id: &str,
    point: &RecoveryPoint,
) -> Vec<String> {
    let mut log = Vec::new();
    let Some(id) = lifeboat_vault::Id::parse(id) else {
        return log;
    };
    for a in actions {
        let r = (|| -> std::result::Result<String, String> {
            let target = crate::secret::open_vault(cfg, &a.vault).map_err(|e| e.to_string())?;
            if let Some(l) = &a.lock {
                let mode = match l.mode {
                    lifeboat_config::LockMode::Governance => "governance",
                    lifeboat_config::LockMode::Compliance => "compliance",
                };
                let retain_for = l.min_retention.map(|d| format!("{}s", d.0));
                let req = lifeboat_vault::retention::RetentionRequest::from_flags(
                    retain_for.as_deref(),
                    Some(mode),
                )?;
                target
                    .set_retention_request(req)
                    .map_err(|e| e.to_string())?;
            }
            let mut copier = lifeboat_vault::copy::Copier::start(
                source,
                &target,
                lifeboat_vault::copy::CopyOptions::default(),
            )
            .map_err(|e| e.to_string())?;
            let out = copier.copy_point(&id, point).map_err(|e| e.to_string())?;
            let stats = copier.finish().map_err(|e| e.to_string())?;
            Ok(match out {
                lifeboat_vault::copy::Outcome::Copied(t) => format!(
                    "copied to vault `{}` as {} ({} blobs, {} bytes sent)",
                    a.vault,
                    t.short(),
                    stats.blobs_sent,
                    stats.bytes_sent
                ),
                lifeboat_vault::copy::Outcome::Present(t) => {
                    format!("vault `{}` already holds it as {}", a.vault, t.short())
                }
            })
        })();
        log.push(match r {
            Ok(line) => line,
            Err(e) => format!("warning: copy to vault `{}` failed: {e}", a.vault),
        });
    }
    log
}

/// Runs plan `plan`'s backups now (only `resource` when given), recording a job for each.
pub fn run_plan(
    cfg: &Config,
    plan: &str,
    resource: Option<&str>,
    trigger: &str,
    store: &dyn JobStore,
    on_start: &dyn Fn(&str),
) -> Result<Vec<Outcome>> {
    // SIGINT/SIGTERM (`jobs cancel`) set the engine's stop flag: the backup
    // in progress stops taking data, keeps what it stored, writes no point.
    let stop = lifeboat_vault::writer::stop_flag();
    let (p, names) = plan_resources(cfg, plan, resource)?;
    let run = PlanRun {
        cfg,
        plan,
        p,
        vault: crate::secret::open_vault(cfg, &p.vault),
        store,
        stop,
    };
    let mut out = Vec::new();
    for name in names {
        if run.cancelled() {
            break; // cancelled: the rest of the plan is not started
        }
        on_start(name);
        out.push(run.back_up(name, trigger)?);
    }
    Ok(out)
}

/// Plan `plan` and the resources of it to back up (only `resource` when given).
fn plan_resources<'c>(
    cfg: &'c Config,
    plan: &str,
    resource: Option<&str>,
) -> Result<(&'c lifeboat_config::Plan, Vec<&'c String>)> {
    let p = cfg.plans.get(plan).ok_or_else(|| {
        ControlError::Refused(format!(
            "there is no plan `{plan}` in the file (plans: {})",
            cfg.plans.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let names: Vec<&String> = match resource {
        Some(r) if !p.resources.iter().any(|x| x == r) => {
            return Err(ControlError::Refused(format!(
                "plan `{plan}` does not hold resource `{r}` (it holds: {})",
                p.resources.join(", ")
            )));
        }
        Some(r) => p.resources.iter().filter(|x| *x == r).collect(),
        None => p.resources.iter().collect(),
    };
    Ok((p, names))
}

/// One run of a plan: what each of its resources' jobs needs.
struct PlanRun<'c> {
    cfg: &'c Config,
    plan: &'c str,
    p: &'c lifeboat_config::Plan,
    /// The plan's vault, opened once for all its resources.
    vault: Result<Vault>,
    store: &'c dyn JobStore,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl PlanRun<'_> {
    /// Whether the run was cancelled (SIGINT/SIGTERM).
    fn cancelled(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Backs up resource `name` as a job of its own, hooks and copies included.
    fn back_up(&self, name: &str, trigger: &str) -> Result<Outcome> {
        let id = self.store.start(&NewJob {
            kind: "backup".into(),
            resource: Some(name.to_string()),
            plan: Some(self.plan.to_string()),
            trigger: trigger.to_string(),
            vault: Some(self.p.vault.clone()),
        })?;
        let made = self.with_hooks(name, id);
        let end = self.end_of(made);
        self.store.finish(id, &end)?;
        Ok(Outcome {
            job: id,
            resource: name.to_string(),
            status: end.status,
            point: end.point,
            error: end.error,
        })
    }

    /// The backup of `name` between the plan's `before` and `after` hooks
    /// (`on_failure` when it failed), their lines in its log.
    fn with_hooks(&self, name: &str, id: i64) -> std::result::Result<Made, String> {
        let (p, plan) = (self.p, self.plan);
        let mut env = vec![
            ("LIFEBOAT_PLAN", plan.to_string()),
            ("LIFEBOAT_RESOURCE", name.to_string()),
            ("LIFEBOAT_JOB_ID", id.to_string()),
        ];
        let (mut hook_log, before_err) = crate::hooks::run(&p.hooks.before, "before", &env);
        let res = match (&self.vault, before_err) {
            (_, Some(e)) => Err(format!("{e}: the backup was not started")),
            (Ok(v), None) => {
                let watch = crate::progress::StoreWatch {
                    store: self.store,
                    job: id,
                };
                backup_one(self.cfg, v, name, plan, &watch)
            }
            (Err(e), None) => Err(format!("cannot open vault `{}`: {e}", p.vault)),
        };
        match res {
            Ok((point_id, point, log)) => {
                env.push(("LIFEBOAT_JOB_STATUS", status::SUCCEEDED.to_string()));
                let (after_log, after_err) = crate::hooks::run(&p.hooks.after, "after", &env);
                hook_log.extend(log);
                hook_log.extend(after_log);
                match after_err {
                    None => Ok((point_id, point, hook_log)),
                    Some(e) => Err(format!(
                        "{e} (recovery point {} was written)",
                        &point_id[..8]
                    )),
                }
            }
            Err(e) => {
                env.push(("LIFEBOAT_JOB_STATUS", status::FAILED.to_string()));
                let (fail_log, _) = crate::hooks::run(&p.hooks.on_failure, "on_failure", &env);
                hook_log.extend(fail_log);
                Err(e)
            }
        }
    }

    /// How the job ended: a made point is copied to the plan's copy vaults
    /// first (a failed copy makes it `incomplete`).
    fn end_of(&self, made: std::result::Result<Made, String>) -> JobEnd {
        match made {
            Ok((point_id, point, mut log)) => {
                if let (false, Ok(v)) = (self.p.copy.is_empty(), &self.vault) {
                    log.extend(run_copies(self.cfg, v, &self.p.copy, &point_id, &point));
                }
                let warned = log.iter().any(|l| l.starts_with("warning:"));
                JobEnd {
                    status: if warned {
                        status::INCOMPLETE
                    } else {
                        status::SUCCEEDED
                    }
                    .into(),
                    bytes: Some(point.summary.bytes_read),
                    point: Some(point_id),
                    error: None,
                    log: log.join("\n"),
                    report: None,
                }
            }
            Err(e) if self.cancelled() => JobEnd {
                status: status::CANCELLED.into(),
                error: Some(format!(
                    "cancelled: no recovery point was written; the data stored so far is indexed and the next backup reuses it ({e})"
                )),
                ..JobEnd::default()
            },
            Err(e) => JobEnd {
                status: status::FAILED.into(),
                error: Some(e),
                ..JobEnd::default()
            },
        }
    }
}

type Made = (String, RecoveryPoint, Vec<String>);

/// One resource's backup, through its kind's protector (the registry):
/// the point's id, the point, and the job's log (notes, then warnings).
fn backup_one(
    cfg: &Config,
    v: &Vault,
    name: &str,
    plan: &str,
    watch: &dyn lifeboat_protector::Watch,
) -> std::result::Result<Made, String> {
    let r = &cfg.resources[name];
    let protector = crate::protectors::registry()
        .of_resource(r.kind.name())
        .ok_or_else(|| {
            format!(
                "no protector backs up resources of kind `{}`",
                r.kind.name()
            )
        })?;
    let settings = serde_json::to_value(&r.kind).map_err(|e| e.to_string())?;
    let secret =
        match r.kind.secret() {
            None => None,
            Some(s) => {
                let what = format!("resource `{name}`");
                let raw = crate::secret::read(s, &what).map_err(|e| e.to_string())?;
                Some(String::from_utf8(raw).map_err(|_| {
                    format!("resource `{name}`: the database password is not UTF-8")
                })?)
            }
        };
    let job = lifeboat_protector::BackupJob {
        vault: v,
        resource: name,
        settings: &settings,
        secret: secret.as_deref(),
        tags: vec![format!("plan:{plan}")],
        stack_member: cfg
            .stacks
            .values()
            .any(|s| s.members.iter().any(|m| m == name)),
        watch,
    };
    let made = protector.back_up(&job).map_err(|e| e.to_string())?;
    let log = made
        .notes
        .iter()
        .map(|x| format!("note: {x}"))
        .chain(made.warnings.iter().map(|x| format!("warning: {x}")))
        .collect();
    Ok((made.id.to_hex(), made.point, log))
}

/// Records a start of plan `plan` that found the plan's run going on
/// (`busy`: its lock is held, by the daemon's, the API's or a command
/// line's run) as a `skipped` job; returns the job's id and why. The
/// running job is named when the holder has recorded one (it opens the
/// vault first: waited for a few seconds).
pub fn record_busy(
    cfg: &Config,
    plan: &str,
    trigger: &str,
    store: &dyn JobStore,
    busy: &crate::locks::Busy,
) -> Result<(i64, String)> {
    use crate::store::JobFilter;
    let vault = cfg.plans.get(plan).map(|p| p.vault.clone());
    let t = std::time::Instant::now();
    let running = loop {
        let found = store
            .list(&JobFilter {
                plan: Some(plan.to_string()),
                status: Some(status::RUNNING.into()),
                limit: Some(50),
                ..JobFilter::default()
            })?
            .into_iter()
            .find(|j| busy.pid.is_none_or(|p| p == j.pid));
        if found.is_some() || t.elapsed() > std::time::Duration::from_secs(5) {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let why = match &running {
        Some(j) => format!(
            "not started: plan `{plan}` is running already (job {}, process {}, started {}); one run of a plan at a time",
            j.id,
            j.pid,
            j.started.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => format!(
            "not started: plan `{plan}` is running already ({} holds {}); one run of a plan at a time",
            busy.holder(),
            busy.path.display()
        ),
    };
    let id = store.start(&NewJob {
        kind: "backup".into(),
        resource: None,
        plan: Some(plan.to_string()),
        trigger: trigger.to_string(),
        vault,
    })?;
    store.finish(
        id,
        &JobEnd {
            status: status::SKIPPED.into(),
            error: Some(why.clone()),
            ..JobEnd::default()
        },
    )?;
    Ok((id, why))
}
