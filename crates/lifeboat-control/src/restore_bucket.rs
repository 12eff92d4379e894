//! A bucket restore recorded as a job (kind `restore`): a bucket point (or
//! the keys under a prefix) restored into a bucket location — a directory
//! bucket (`file:///…`) or an S3 bucket, with the credentials of the process.
//! What the console's restore form starts, as a child `lifeboat jobs
//! restore-bucket`. A target that already holds objects (the live bucket
//! among them) is refused unless `overwrite` is given; then the point's keys
//! are written over, and other keys are left as they are.

use lifeboat_bucket::store::Bucket;
use lifeboat_config::{Config, ResourceKind};
use lifeboat_protector::{BucketTarget, Target};
use lifeboat_vault::PointFilter;

use crate::run::Outcome;
use crate::store::JobStore;
use crate::{ControlError, Result};

/// Which point, into which bucket.
#[derive(Debug, Clone)]
pub struct BucketRestoreRequest {
    /// The vault's name in the file.
    pub vault: String,
    /// The point: id, unique prefix, or `latest` (with `resource`).
    pub point: String,
    /// Only a point of this resource (for `latest`).
    pub resource: Option<String>,
    /// Only keys starting with this.
    pub prefix: String,
    /// The target bucket (`file:///…` or `s3://…`).
    pub to: String,
    /// Write over the keys of a target that already holds objects.
    pub overwrite: bool,
}

fn same_location(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Checks the target of a restore of `resource`'s point, refusing (unless
/// `overwrite`) the resource's live bucket and a target that already holds
/// objects (a full listing of the target). Creates nothing: a target that
/// cannot be opened yet (not there) is empty, and the restore creates it.
pub fn check_target(cfg: &Config, resource: &str, to: &str, overwrite: bool) -> Result<()> {
    let live = match cfg.resources.get(resource).map(|r| &r.kind) {
        Some(ResourceKind::Bucket { location }) => Some(location.as_str()),
        _ => None,
    };
    if overwrite {
        return Ok(());
    }
    if live.is_some_and(|l| same_location(l, to)) {
        return Err(ControlError::Refused(format!(
            "{to} is the live bucket of resource `{resource}`: restore into another location, or ask to overwrite"
        )));
    }
    let Ok(bucket) = Bucket::open_address(to, false) else {
        return Ok(());
    };
    let n = lifeboat_bucket::restore::count(&bucket, "")
        .map_err(|e| ControlError::Refused(format!("cannot list the target bucket {to}: {e}")))?;
    if n > 0 {
        return Err(ControlError::Refused(format!(
            "the target bucket {to} already holds {n} object(s): restore into an empty location, or ask to overwrite"
        )));
    }
    Ok(())
}

/// Restores as a job of kind `restore` on the point's resource.
pub fn restore_bucket(
    cfg: &Config,
    req: &BucketRestoreRequest,
    trigger: &str,
    store: &dyn JobStore,
) -> Result<Outcome> {
    let vault = crate::secret::open_vault(cfg, &req.vault)?;
    let reader = lifeboat_vault::lock::reader_lock(vault.storage(), "restore")?;
    let (id, point) = vault.select_point(
        &req.point,
        &PointFilter::kinds(&["bucket"]).resource(req.resource.as_deref()),
    )?;
    check_target(cfg, &point.resource, &req.to, req.overwrite)?;
    // Opened (a directory bucket made) before the job: one that cannot be is refused.
    let refused = |e| ControlError::Refused(format!("cannot open the target bucket: {e}"));
    Bucket::open_address(&req.to, true).map_err(refused)?;
    let location = Bucket::parse(&req.to).map_err(refused)?;
    let job = crate::restore::start_job(store, &point.resource, &req.vault, trigger)?;
    let target = Target::Bucket(BucketTarget {
        location,
        create: true,
    });
    let options = serde_json::json!({"prefix": req.prefix});
    let res =
        crate::restore::through_protector(store, job, (&vault, &id, &point), target, None, options);
    drop(reader);
    let what = format!(
        "point {} ({}){} → {}",
        id.short(),
        point.resource,
        if req.prefix.is_empty() {
            String::new()
        } else {
            format!(" keys under {:?}", req.prefix)
        },
        req.to
    );
    let end = crate::restore::ending(
        res.map(|rep| {
            (
                rep.summary,
                rep.not_restored
                    .iter()
                    .map(|f| format!("not restored: {f}"))
                    .collect(),
                rep.bytes,
            )
        }),
        &id,
        &what,
    );
    crate::restore::finish(store, job, end, point.resource)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_trailing_slash_is_the_same_location() {
        assert!(super::same_location("file:///a/b/", "file:///a/b"));
        assert!(!super::same_location("file:///a/b", "file:///a/c"));
    }
}
