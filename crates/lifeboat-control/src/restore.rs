//! A files restore recorded as a job (kind `restore`): what the REST API
//! starts, as a child `lifeboat jobs restore`, so that the restore runs in
//! its own process, shows its progress and can be cancelled like a backup.
//!
//! The restore goes through the files protector's `restore` (the registry's
//! protector of `files` points: handles, O_NOFOLLOW), under the vault's
//! reader lock; with no overwrite policy a non-empty target is refused.

use std::path::PathBuf;

use lifeboat_config::Config;
use lifeboat_files::Overwrite;
use lifeboat_protector::{RestoreError, RestoreJob, Restored, RollForward, Target};
use lifeboat_vault::{Id, PointFilter, RecoveryPoint, Vault};

use crate::progress::StoreWatch;
use crate::run::Outcome;
use crate::store::{JobEnd, JobStore, NewJob, status};
use crate::{ControlError, Result};

/// What to restore, and where.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The vault's name in the file.
    pub vault: String,
    /// The point: id, unique prefix, or `latest` (with `resource`).
    pub point: String,
    /// Only a point of this resource (for `latest`).
    pub resource: Option<String>,
    /// Only this path of the point (absolute, as backed up).
    pub path: Option<PathBuf>,
    /// The target directory (absolute).
    pub to: PathBuf,
    /// Existing content: `None` refuses a non-empty target.
    pub overwrite: Option<Overwrite>,
}

/// Restores as a job of kind `restore`; the job records the point's
/// resource, the vault, bytes written, and what could not be restored.
pub fn restore_files(
    cfg: &Config,
    req: &RestoreRequest,
    trigger: &str,
    store: &dyn JobStore,
) -> Result<Outcome> {
    if !req.to.is_absolute() {
        return Err(ControlError::Refused(format!(
            "the restore target {} is not an absolute path",
            req.to.display()
        )));
    }
    let vault = crate::secret::open_vault(cfg, &req.vault)?;
    let reader = lifeboat_vault::lock::reader_lock(vault.storage(), "restore")?;
    let (id, point) = vault.select_point(
        &req.point,
        &PointFilter::kinds(&["files"]).resource(req.resource.as_deref()),
    )?;
    let path = serde_json::to_value(&req.path).map_err(|_| {
        ControlError::Refused(format!(
            "the path to restore {} is not UTF-8",
            req.path
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        ))
    })?;
    let job = start_job(store, &point.resource, &req.vault, trigger)?;
    let options = serde_json::json!({"path": path, "overwrite": req.overwrite});
    let target = Target::Directory(req.to.clone());
    let res = through_protector(store, job, (&vault, &id, &point), target, None, options);
    drop(reader);
    let what = format!(
        "point {} ({}) {}→ {}",
        id.short(),
        point.resource,
        req.path
            .as_ref()
            .map(|p| format!("{} ", p.display()))
            .unwrap_or_default(),
        req.to.display()
    );
    let end = match res {
        Ok(rep) => {
            let mut log = vec![format!("restored {what}: {}", rep.summary)];
            log.extend(rep.warnings.iter().map(|w| format!("warning: {w}")));
            log.extend(
                rep.not_restored
                    .iter()
                    .map(|d| format!("damaged, not restored: {d}")),
            );
            let error = (!rep.errors.is_empty()).then(|| {
                format!(
                    "{} local error(s) writing the target, first: {}",
                    rep.errors.len(),
                    rep.errors[0]
                )
            });
            JobEnd {
                status: if error.is_some() {
                    status::FAILED
                } else if rep.not_restored.is_empty() && rep.warnings.is_empty() {
                    status::SUCCEEDED
                } else {
                    status::INCOMPLETE
                }
                .into(),
                bytes: Some(rep.bytes),
                point: Some(id.to_hex()),
                error,
                log: log.join("\n"),
                report: None,
            }
        }
        Err(e) => ending::<RestoreError>(Err(e), &id, &what),
    };
    finish(store, job, end, point.resource)
}

/// Restores point `id` (`point`) of `vault` into `target` through its
/// protector (the registry's, by the point's kind), its progress recorded
/// as job `job`'s.
pub(crate) fn through_protector(
    store: &dyn JobStore,
    job: i64,
    (vault, id, point): (&Vault, &Id, &RecoveryPoint),
    target: Target,
    roll_forward: Option<RollForward>,
    options: serde_json::Value,
) -> std::result::Result<Restored, RestoreError> {
    let protector = crate::protectors::registry()
        .of_point(&point.kind)
        .ok_or_else(|| {
            RestoreError::Refused(format!(
                "no protector of this build restores points of kind `{}`",
                point.kind
            ))
        })?;
    protector.restore(&RestoreJob {
        vault,
        id,
        point,
        target,
        roll_forward,
        options,
        watch: &StoreWatch { store, job },
    })
}

/// Starts the job of a restore of `resource` from vault `vault`.
pub(crate) fn start_job(
    store: &dyn JobStore,
    resource: &str,
    vault: &str,
    trigger: &str,
) -> Result<i64> {
    store.start(&NewJob {
        kind: "restore".into(),
        resource: Some(resource.to_string()),
        plan: None,
        trigger: trigger.to_string(),
        vault: Some(vault.to_string()),
    })
}

/// How a restore of `what` from point `id` ended: on success its summary
/// line and the problems it noted (`incomplete` when there are any), with
/// the bytes written; else the failure.
pub(crate) fn ending<E: std::fmt::Display>(
    res: std::result::Result<(String, Vec<String>, u64), E>,
    id: &lifeboat_vault::Id,
    what: &str,
) -> JobEnd {
    match res {
        Ok((summary, problems, bytes)) => JobEnd {
            status: if problems.is_empty() {
                status::SUCCEEDED
            } else {
                status::INCOMPLETE
            }
            .into(),
            bytes: Some(bytes),
            point: Some(id.to_hex()),
            log: std::iter::once(format!("restored {what}: {summary}"))
                .chain(problems)
                .collect::<Vec<_>>()
                .join("\n"),
            ..JobEnd::default()
        },
        Err(e) => JobEnd {
            status: status::FAILED.into(),
            point: Some(id.to_hex()),
            error: Some(format!("restore of {what} failed: {e}")),
            ..JobEnd::default()
        },
    }
}

/// Records a restore job's end; its outcome.
pub(crate) fn finish(
    store: &dyn JobStore,
    job: i64,
    end: JobEnd,
    resource: String,
) -> Result<Outcome> {
    store.finish(job, &end)?;
    Ok(Outcome {
        job,
        resource,
        status: end.status,
        point: end.point,
        error: end.error,
    })
}
