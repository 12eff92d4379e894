//! # lifeboat-files — the files protector
//!
//! Turns directory trees (and the files, links, devices and holes in them)
//! into recovery points, and recovery points back into trees, through the
//! vault engine's API only. See [`backup`] and [`restore`] for the algorithms.
//!
//! What is kept per entry: name (raw bytes), type, mode, uid/gid, size,
//! mtime/atime (ns), xattrs, symlink target, device numbers, the data extents
//! of sparse files, and inode/dev/link count (hard links are restored as hard
//! links). ctime and inode are kept for change detection only.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

pub mod backup;
pub mod list;
pub mod meta;
pub mod protector;
pub mod restore;

pub use backup::{BackupOptions, BackupResult, BuiltTree, backup, build_tree, resolve_paths};
pub use restore::{Action, Overwrite, RestoreOptions, RestoreReport, restore};

/// Live counters of a running backup or restore, for progress display.
#[derive(Debug, Default)]
pub struct Counters {
    /// Non-directory entries seen (backup) or finished (restore).
    pub files: AtomicU64,
    /// Directories seen.
    pub dirs: AtomicU64,
    /// Logical bytes of the files seen (backup), or to write (restore: set once planned).
    pub size: AtomicU64,
    /// Bytes read from files.
    pub bytes_read: AtomicU64,
    /// Bytes written into restored files.
    pub bytes_written: AtomicU64,
}

/// Result alias for the files protector.
pub type Result<T, E = FilesError> = std::result::Result<T, E>;

/// A failure of the files protector.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] lifeboat_vault::VaultError),
    /// A path to back up does not exist.
    #[error("{0} does not exist (check the path; nothing was backed up)")]
    NoSuchPath(PathBuf),
    /// A path to restore is not in the point.
    #[error("{0} is not in the recovery point (see `lifeboat points show`)")]
    NotInPoint(PathBuf),
    /// An exclude pattern is malformed.
    #[error("bad exclude pattern {pattern:?} from {from}: {reason}")]
    BadExclude {
        /// The pattern.
        pattern: String,
        /// Where it came from.
        from: String,
        /// What is wrong.
        reason: String,
    },
    /// A restore's target holds something and no overwrite policy was given.
    #[error(
        "{} is not empty: choose what happens to what is there with --overwrite if-changed (replace what differs; resumes a killed restore), --overwrite always or --overwrite never (add only what is missing); --dry-run shows what would be written",
        .0.display()
    )]
    TargetNotEmpty(PathBuf),
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

impl FilesError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FilesError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
