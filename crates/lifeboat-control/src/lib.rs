//! The control plane's library: what `lifeboat plan/apply/jobs` (and, later,
//! the daemon and its REST API) call; the CLI only parses and prints.
//!
//! - [`state`]: the state directory (`--state`, `LIFEBOAT_STATE`,
//!   `/var/lib/lifeboat` or `$XDG_STATE_HOME/lifeboat`): the applied
//!   configuration and its fingerprints, and the job store. It is a cache of
//!   what happened: the vaults are the truth, and deleting it loses history,
//!   never a recovery point.
//! - [`changes`]: `plan` — compares a validated [`lifeboat_config::Config`]
//!   with what was applied (and with the vaults: one not initialised is a
//!   change) → `+ ~ -` changes.
//! - [`apply`]: makes it so: initialises vaults with their password source,
//!   seals the applied file into every vault it uses (`control/config/…`, so
//!   `config restore` gets it back from a vault alone), records the new state.
//!   Removing a plan retires its registration; it never deletes a point.
//! - [`vault_lock`]: the vault lock configurations the file declares,
//!   compared by `plan` and written by `apply` (never weakened).
//! - [`store`]: the job history behind the [`store::JobStore`] trait (SQLite
//!   now; a shared server database can implement the same trait).
//! - [`run`]: runs a plan's backups now through the protectors' library
//!   calls, each recorded as a job (also when it fails), with the plan's
//!   [`hooks`] around each.
//! - [`launch`]: starts runs as child `lifeboat jobs run` processes (the
//!   daemon's schedules and the API's "run now"), each dying with its parent.
//! - [`progress`]: a running job's live progress, written to the store once
//!   a second from its protector's counters.
//! - [`cancel`]: stopping a running job (SIGTERM to its process), for
//!   `jobs cancel` and the API alike.
//! - [`restore`]: a files restore recorded as a job (started by the API as a
//!   child `lifeboat jobs restore`).
//! - [`restore_db`]: one database of a point restored under a new name into
//!   its resource's server, recorded as a job (`lifeboat jobs restore-database`);
//!   [`restore_bucket`]: a bucket point into a bucket location (`jobs restore-bucket`).
//! - [`report`]: compliance controls per resource, read from the vaults
//!   (`lifeboat report`, `plan --drift`).

pub mod apply;
pub mod cancel;
pub mod changes;
pub mod hooks;
pub mod launch;
pub mod locks;
pub mod progress;
pub mod protectors;
pub mod report;
pub mod restore;
pub mod restore_bucket;
pub mod restore_db;
pub mod run;
pub mod secret;
pub mod state;
pub mod store;
pub mod vault_lock;

/// Errors of the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A vault operation failed.
    #[error(transparent)]
    Vault(#[from] lifeboat_vault::VaultError),
    /// The job store failed.
    #[error("job store {path}: {source}")]
    Store {
        /// The database file.
        path: String,
        /// Why.
        source: rusqlite::Error,
    },
    /// A local file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A secret named by the file is not available.
    #[error("{0}")]
    Secret(String),
    /// Something the caller asked for does not exist or cannot be done.
    #[error("{0}")]
    Refused(String),
}

/// Result of the control plane.
pub type Result<T> = std::result::Result<T, ControlError>;

impl ControlError {
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        ControlError::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}
