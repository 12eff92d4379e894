//! Sites and stacks: what a site runs, brought up from the declaration.
//!
//! A site of the embedded default is a directory root (`[site.X] root`).
//! `stack up` provisions each member of a stack under it:
//!
//! - a **mysql** member: a `mariadbd` with its own data directory, socket,
//!   port, binlog and error log under `ROOT/mysql/NAME/` ([`mariadb`]);
//! - a **bucket** member: the directory `ROOT/buckets/NAME/`, the same
//!   object-store API as an S3 bucket; in a site that names an S3
//!   `endpoint`, a bucket there ([`bucket`]);
//! - a **files** member: in its own site the directory it declares (one
//!   path), else `ROOT/files/NAME/`; a recovery restores a point of one
//!   directory as that directory itself;
//! - an **instance** member: its launch spec, with what the other members
//!   provide (`${shop-db.dsn}`, `${shop-assets.location}`, `${listen}`, …)
//!   filled in, started as its own process group and health-checked
//!   (`lifeboat-instance`'s supervisor), under `ROOT/hosts/NAME/`.
//!
//! Members come up in dependency order (an instance after what its launch
//! spec names). What was provisioned, with its outputs and processes, is
//! recorded in `ROOT/stacks/STACK/state.json` ([`state`]); `down` stops the
//! processes (and with `purge` removes the directories), `status` checks
//! each member. Servers and processes outlive the command that started
//! them: a stack is up until `down`.

pub mod bucket;
pub mod drill;
pub mod exposure;
pub mod fence;
pub mod kept;
pub mod launch;
pub mod mariadb;
pub mod planned;
pub mod process;
pub mod protect;
pub mod protect_data;
mod provision_db;
pub mod purge;
pub mod recover;
pub mod stack;
pub mod state;
mod status;
mod up;

pub use stack::{Outputs, down, status, up};
pub use state::{MemberState, StackState};

/// Errors of stack provisioning.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The declaration does not allow it.
    #[error("{0}")]
    Refused(String),
    /// A local file or directory could not be used.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A server or process did not start or stop.
    #[error("{0}")]
    Process(String),
    /// The instance member failed.
    #[error(transparent)]
    Instance(#[from] lifeboat_instance::InstanceError),
}

/// Result of stack provisioning.
pub type Result<T> = std::result::Result<T, StackError>;

impl StackError {
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        StackError::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}
