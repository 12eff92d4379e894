//! Restoring an instance point into a directory.
//!
//! ```text
//! point of kind instance → its meta (format 1) → launch spec resolved for DIR
//!     (before anything is written: a missing --env value costs nothing)
//! lifeboat-files restore of the point's tree into DIR (handles, O_NOFOLLOW,
//!     temporary names; volumes come back as sparse raw files: holes kept)
//! qcow2 volumes converted back (qemu-img convert -O qcow2)
//! DIR/launch.json (0600)
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use lifeboat_files::{Counters, Overwrite};
use lifeboat_vault::{Id, RecoveryPoint, Vault};
use serde::Serialize;

use crate::backup::{Consistency, InstanceMeta};
use crate::launch::{self, ResolvedLaunch};
use crate::{InstanceError, KIND, Result};

/// Where and how to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Target directory: `/opt/app` becomes `DIR/opt/app`.
    pub to: PathBuf,
    /// Values of the launch spec's `${NAME}` placeholders.
    pub env: BTreeMap<String, String>,
    /// What to do with what is in a non-empty target (refused when `None`).
    pub overwrite: Option<Overwrite>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The files restore (files and volumes).
    pub files: lifeboat_files::RestoreReport,
    /// Consistency of the point.
    pub consistency: Consistency,
    /// The resolved launch spec, when the point has one.
    pub launch: Option<ResolvedLaunch>,
    /// Where it was written.
    pub launch_json: Option<PathBuf>,
}

/// Reads the `meta` of an instance point.
pub fn meta_of(point: &RecoveryPoint) -> Result<InstanceMeta> {
    if point.kind != KIND {
        return Err(InstanceError::Usage(format!(
            "the point is of kind {:?}, not {KIND:?}",
            point.kind
        )));
    }
    let m: InstanceMeta = serde_json::from_value(point.meta.clone()).map_err(|e| {
        InstanceError::Usage(format!(
            "the point's instance description is unreadable: {e}"
        ))
    })?;
    if m.format != 1 {
        return Err(InstanceError::Usage(format!(
            "the point's instance layout is version {}; this lifeboat reads version 1 (upgrade lifeboat)",
            m.format
        )));
    }
    Ok(m)
}

/// Restores instance point `id` according to `opts`.
pub fn restore(
    vault: &Vault,
    id: &Id,
    point: &RecoveryPoint,
    opts: &RestoreOptions,
    counters: &Counters,
) -> Result<RestoreReport> {
    let meta = meta_of(point)?;
    let to =
        std::path::absolute(&opts.to).map_err(|e| InstanceError::io("resolve", &opts.to, e))?;
    let roots: Vec<PathBuf> = point.paths.iter().map(PathBuf::from).collect();
    let launch = match &meta.spec.launch {
        Some(l) => Some(launch::resolve(
            l,
            &roots,
            &to,
            &opts.env,
            &id.to_hex(),
            &point.resource,
        )?),
        None => None,
    };
    let files = lifeboat_files::restore(
        vault,
        id,
        &lifeboat_files::RestoreOptions {
            to: to.clone(),
            overwrite: opts.overwrite,
            ..Default::default()
        },
        counters,
    )?;
    let intact = files.errors.is_empty() && files.damaged.is_empty();
    if intact {
        for v in &meta.volumes {
            if v["format"] == "qcow2"
                && let Some(p) = v["path"].as_str()
            {
                crate::qcow2::restore_as_qcow2(&to.join(p.trim_start_matches('/')))?;
            }
        }
    }
    let launch_json = match &launch {
        Some(l) if intact => Some(launch::write(&to, l)?),
        _ => None,
    };
    Ok(RestoreReport {
        files,
        consistency: meta.consistency,
        launch,
        launch_json,
    })
}
