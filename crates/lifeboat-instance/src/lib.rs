//! # lifeboat-instance — the instance protector
//!
//! An *instance* is what runs an application: its files, its disk images or
//! block devices (*volumes*) and a *launch spec* saying how to start it again
//! elsewhere, against that site's database and bucket. One recovery point of
//! kind `instance` holds them all, taken together between optional
//! consistency hooks.
//!
//! ```text
//! backup:  spec → shared lock → before hooks → volumes (fixed blocks, holes and
//!          zero blocks skipped, in parallel) + paths (lifeboat-files) → one
//!          mirrored tree → after hooks → point {kind instance, meta: spec,
//!          consistency, volumes}
//! restore: point → launch spec resolved first (${NAME} from --env, paths
//!          re-rooted under DIR) → lifeboat-files restore of the tree (volumes
//!          come back as sparse raw files) → DIR/launch.json
//! device:  --volume-to NAME=/dev/X: that volume's blocks onto a checked,
//!          unmounted, exclusively opened block device instead (device.rs)
//! start:   DIR/launch.json → process in its own group, output to
//!          DIR/launch.log, pid in DIR/launch.pid → health URL 200
//! ```
//! The point's tree is a files point's tree (absolute paths mirrored from
//! `/`): a volume is a `file` node whose `extents` list its non-zero blocks.

use std::path::PathBuf;

pub mod backup;
pub mod device;
pub mod launch;
pub mod protector;
pub mod qcow2;
pub mod restore;
pub mod spec;
pub mod supervise;
pub mod volume;

pub use backup::{BackupReport, Consistency, backup};
pub use launch::ResolvedLaunch;
pub use restore::{RestoreOptions, RestoreReport, restore};
pub use spec::{Hooks, InstanceSpec, LaunchSpec};

/// Point kind of instance points.
pub const KIND: &str = "instance";

/// Result alias for the instance protector.
pub type Result<T, E = InstanceError> = std::result::Result<T, E>;

/// A failure of the instance protector.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] lifeboat_vault::VaultError),
    /// The files protector failed.
    #[error(transparent)]
    Files(#[from] lifeboat_files::FilesError),
    /// The spec is wrong.
    #[error("instance spec {from}: {msg}")]
    Spec {
        /// File (or other source) of the spec.
        from: String,
        /// What is wrong.
        msg: String,
    },
    /// A volume could not be read.
    #[error("volume {}: cannot {op}: {source} (nothing was backed up)", path.display())]
    Volume {
        /// The volume.
        path: PathBuf,
        /// What was done.
        op: &'static str,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// A consistency hook failed.
    #[error("{which} hook `{cmd}` failed: {why}{}", if .output.is_empty() { String::new() } else { format!("; its output: {}", .output) })]
    Hook {
        /// `before` or `after`.
        which: &'static str,
        /// The command.
        cmd: String,
        /// Exit status or spawn error.
        why: String,
        /// The end of its output.
        output: String,
    },
    /// Placeholders of the launch spec have no value.
    #[error("the launch spec needs values for {}: give them with --env NAME=VALUE", .0.join(", "))]
    MissingValues(Vec<String>),
    /// The started application did not become healthy.
    #[error("{0}")]
    Start(String),
    /// The call was wrong.
    #[error("{0}")]
    Usage(String),
    /// A local file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
}

impl InstanceError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        InstanceError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
