//! Continuous jobs: what a protector runs for as long as the daemon does
//! (a database's binlog archive), as the daemon starts and supervises it —
//! a child `lifeboat ARGS…` — so that the daemon knows no kind's command.

use std::path::Path;

/// A resource to follow: what the daemon hands a protector.
pub struct FollowJob<'a> {
    /// The resource's name.
    pub resource: &'a str,
    /// The resource as the file declares it (as for [`crate::BackupJob`]).
    pub settings: &'a serde_json::Value,
    /// A private directory of the daemon's state for this resource's job
    /// (a spool): the protector's to use, kept across restarts.
    pub spool: &'a Path,
}

/// The job kind of a log archive: what makes a resource restorable to
/// any moment between its points (a database's binlog archive).
pub const ARCHIVE: &str = "archive";

/// A continuous job the file declares for a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    /// What it is ([`ARCHIVE`]): its job kind, and with the resource its
    /// name (`archive:RESOURCE`).
    pub job: &'static str,
    /// The point kind it writes (followed into each of `copy_to` by
    /// `copy --follow`).
    pub point_kind: &'static str,
    /// The arguments after `lifeboat` that run it.
    pub args: Vec<String>,
    /// The variable the child reads the resource's secret from, if any.
    pub secret_env: Option<&'static str>,
    /// The vault the file names for it; `None`: that of the first plan
    /// that holds the resource.
    pub vault: Option<String>,
    /// Vaults its points are copied into as they are written.
    pub copy_to: Vec<String>,
}
