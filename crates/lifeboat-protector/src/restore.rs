//! Restores through the interface: a point of any kind written into a
//! target — a directory, a database server, a bucket location — with
//! [`crate::Protector::restore`].
//!
//! What differs by kind stays the protector's: the target's kind it
//! restores into ([`crate::Description::restores_into`], so a stack knows
//! what to provision for a member without matching on its kind), its own
//! options (JSON, read by the protector as a backup's settings are), and
//! its words (the summary, the messages of its refusals and failures,
//! which the command line and tests compare).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use lifeboat_vault::{Id, Location, RecoveryPoint, Vault};
use serde::Serialize;

use crate::Watch;

/// Which kind of target a protector restores its points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// A directory (files, an app host).
    Directory,
    /// A database server.
    Database,
    /// A bucket location.
    Bucket,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::Directory => "a directory",
            TargetKind::Database => "a database server",
            TargetKind::Bucket => "a bucket",
        })
    }
}

/// Where a database point goes: a server, which of the point's databases,
/// under which names.
#[derive(Debug, Clone, Default)]
pub struct DatabaseTarget {
    /// The server's DSN (`mysql://USER@HOST:PORT`, `?socket=…`).
    pub dsn: String,
    /// The password; it replaces whatever the DSN (or its environment) gives.
    pub password: Option<String>,
    /// Only these databases of the point (`None`: all of them).
    pub databases: Option<Vec<String>>,
    /// Database `from` of the point restored as `to`.
    pub renames: Vec<(String, String)>,
    /// Replace a target database that is not empty (else refused).
    pub replace: bool,
}

impl DatabaseTarget {
    /// Every database of the point under its own name into the server at
    /// `dsn`, logged in with `password`; a non-empty one refused.
    pub fn server(dsn: &str, password: Option<String>) -> DatabaseTarget {
        DatabaseTarget {
            dsn: dsn.to_string(),
            password,
            ..Default::default()
        }
    }
}

/// Where a bucket point goes: a bucket location (a directory bucket or S3,
/// with its keys in the location).
#[derive(Debug, Clone)]
pub struct BucketTarget {
    /// The location, with its credentials.
    pub location: Location,
    /// A directory bucket is made when it is not there (an S3 bucket never is).
    pub create: bool,
}

/// Where a restore writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A directory: the point's files below it (or, as its options say,
    /// one directory of the point as the target itself).
    Directory(PathBuf),
    /// A database server.
    Database(DatabaseTarget),
    /// A bucket location.
    Bucket(BucketTarget),
}

impl Target {
    /// Which kind of target it is.
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Directory(_) => TargetKind::Directory,
            Target::Database(_) => TargetKind::Database,
            Target::Bucket(_) => TargetKind::Bucket,
        }
    }
}

/// How far a restored point is rolled forward, for the kinds that keep a
/// log past their points (a database's binlog archive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollForward {
    /// Everything the vault holds after the point.
    Latest,
    /// To this moment: everything before it, nothing at or after it.
    To(DateTime<Utc>),
}

/// A stage of a restore, told to its [`Watch`] as it ends
/// ([`Watch::stage_ended`]): a caller may time each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The point is in the target (a database's snapshot loaded).
    Loaded,
    /// The restored point was rolled forward ([`RestoreJob::roll_forward`]).
    RolledForward,
}

/// A restore to make: what a caller hands a protector.
pub struct RestoreJob<'a> {
    /// The vault the point is in (the caller holds its reader lock).
    pub vault: &'a Vault,
    /// The point's id.
    pub id: &'a Id,
    /// The point, read.
    pub point: &'a RecoveryPoint,
    /// Where it goes; of the kind the protector restores into.
    pub target: Target,
    /// Roll the restored point forward (a kind that cannot refuses it).
    pub roll_forward: Option<RollForward>,
    /// The kind's own options as JSON (`null`: its defaults), read by the
    /// protector ([`RestoreJob::options`]).
    pub options: serde_json::Value,
    /// Reads the protector's live counters while it works, and hears its stages.
    pub watch: &'a dyn Watch,
}

impl RestoreJob<'_> {
    /// The job's options read as `T` (`null`: `T`'s defaults); options that
    /// are not `T` are refused.
    pub fn options<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, RestoreError> {
        if self.options.is_null() {
            return Ok(T::default());
        }
        serde_json::from_value(self.options.clone()).map_err(|e| {
            RestoreError::Refused(format!(
                "the options of a restore of a `{}` point: {e}",
                self.point.kind
            ))
        })
    }

    /// The refusal of a target of another kind than `wanted`.
    pub fn wrong_target(&self, wanted: TargetKind) -> RestoreError {
        RestoreError::Refused(format!(
            "a `{}` point is restored into {wanted}, not into {}",
            self.point.kind,
            self.target.kind()
        ))
    }

    /// The refusal of a roll forward by a kind that cannot roll forward.
    pub fn no_roll_forward(&self) -> Result<(), RestoreError> {
        match self.roll_forward {
            None => Ok(()),
            Some(_) => Err(RestoreError::Refused(format!(
                "a `{}` point cannot be rolled forward: it is restored as it was taken",
                self.point.kind
            ))),
        }
    }
}

/// A point restored.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Items written: files, tables, objects.
    pub items: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// What was restored, in the protector's words (`3 files, 1
    /// directories, 120 bytes`; `2 tables, 10 rows, 300 bytes`).
    pub summary: String,
    /// The time the restored data is from (after a roll forward: the time
    /// it reached).
    pub data_time: Option<DateTime<Utc>>,
    /// What to look at; the data is there.
    pub warnings: Vec<String>,
    /// What could not be restored (damaged data, objects that failed),
    /// each named: the target is incomplete.
    pub not_restored: Vec<String>,
    /// Local errors writing the target, each naming what: the restore failed.
    pub errors: Vec<String>,
    /// The kind's own report, for the callers that print it.
    pub report: serde_json::Value,
}

impl Restored {
    /// Whether everything arrived: nothing unrestored, no local error.
    pub fn whole(&self) -> bool {
        self.not_restored.is_empty() && self.errors.is_empty()
    }
}

/// Why a restore did not happen or did not finish. Each keeps the
/// protector's own message.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Refused before anything was written (a target that is not empty, a
    /// point that cannot reach the time asked, wrong options).
    #[error("{0}")]
    Refused(String),
    /// Refused before anything was written: the restore needs values the
    /// caller did not give (an app host's launch spec placeholders).
    #[error("{message}")]
    MissingValues {
        /// The names of the values.
        values: Vec<String>,
        /// The protector's message.
        message: String,
    },
    /// Failed: part of the target may be written.
    #[error("{0}")]
    Failed(String),
    /// The point was restored; rolling it forward failed part way.
    #[error("{0}")]
    RollForward(String),
}

impl RestoreError {
    /// Whether nothing was written (a refusal).
    pub fn nothing_written(&self) -> bool {
        matches!(
            self,
            RestoreError::Refused(_) | RestoreError::MissingValues { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(
        v: &'a Vault,
        id: &'a Id,
        p: &'a RecoveryPoint,
        options: serde_json::Value,
    ) -> RestoreJob<'a> {
        RestoreJob {
            vault: v,
            id,
            point: p,
            target: Target::Database(DatabaseTarget::server("mysql://root@h", None)),
            roll_forward: Some(RollForward::Latest),
            options,
            watch: &crate::Unwatched,
        }
    }

    #[derive(serde::Deserialize, Default, Debug, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Opts {
        users: bool,
    }

    /// Options are the kind's: `null` gives its defaults, others are read,
    /// what it does not know is refused naming the point's kind.
    #[test]
    fn options_are_read_as_the_kinds_and_refused_when_they_are_not() {
        let t = tempfile::tempdir().unwrap();
        let v = lifeboat_vault::vault::throwaway(&t.path().join("v"));
        let (id, p) = (Id([0; 32]), RecoveryPoint::new("db", "mysql", Id([1; 32])));
        let null = job(&v, &id, &p, serde_json::Value::Null);
        assert_eq!(null.options::<Opts>().unwrap(), Opts::default());
        let users = job(&v, &id, &p, serde_json::json!({"users": true}));
        assert!(users.options::<Opts>().unwrap().users);
        let e = job(&v, &id, &p, serde_json::json!({"user": true}))
            .options::<Opts>()
            .unwrap_err();
        assert!(e.nothing_written());
        assert!(
            e.to_string()
                .starts_with("the options of a restore of a `mysql` point: unknown field `user`"),
            "{e}"
        );
    }

    /// A target of another kind, and a roll forward a kind cannot make,
    /// are refusals in words.
    #[test]
    fn a_wrong_target_and_an_impossible_roll_forward_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let v = lifeboat_vault::vault::throwaway(&t.path().join("v"));
        let (id, p) = (Id([0; 32]), RecoveryPoint::new("etc", "files", Id([1; 32])));
        let j = job(&v, &id, &p, serde_json::Value::Null);
        assert_eq!(j.target.kind(), TargetKind::Database);
        let e = j.wrong_target(TargetKind::Directory);
        assert_eq!(
            e.to_string(),
            "a `files` point is restored into a directory, not into a database server"
        );
        let e = j.no_roll_forward().unwrap_err();
        assert!(e.nothing_written());
        assert!(e.to_string().contains("cannot be rolled forward"), "{e}");
        let none = RestoreJob {
            roll_forward: None,
            ..j
        };
        assert!(none.no_roll_forward().is_ok());
    }

    /// Only refusals wrote nothing; a restore is whole without anything
    /// unrestored or a local error.
    #[test]
    fn refusals_wrote_nothing_and_a_restore_is_whole_without_problems() {
        assert!(!RestoreError::Failed("x".into()).nothing_written());
        assert!(!RestoreError::RollForward("x".into()).nothing_written());
        let m = RestoreError::MissingValues {
            values: vec!["db.dsn".into()],
            message: "needs db.dsn".into(),
        };
        assert!(m.nothing_written());
        assert_eq!(m.to_string(), "needs db.dsn");
        let mut r = Restored {
            warnings: vec!["look".into()],
            ..Default::default()
        };
        assert!(r.whole());
        r.not_restored.push("a: damaged".into());
        assert!(!r.whole());
    }
}
