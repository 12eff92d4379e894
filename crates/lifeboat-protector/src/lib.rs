//! The protector interface: what every kind of resource — directory trees,
//! databases, buckets, app hosts — offers the layers above the protectors
//! (the control plane, stacks, the daemon, the API and its console), so
//! that none of them switches on a kind or knows a point's layout.
//!
//! Each protector crate implements [`Protector`] once and
//! `lifeboat-protectors` lists them in one [`Registry`], which the
//! configuration's loader and the control plane read; a new kind is one
//! crate plus one line there. Protectors still know nothing of each other: this crate depends
//! on the vault only.
//!
//! What a protector says of itself:
//!
//! - [`Protector::describe`]: its resource kind, the point kinds it writes,
//!   how its points' contents are walked and how they are restored (the
//!   console's forms, the CLI command);
//! - [`Protector::contents`]: one level of a point's contents (a directory,
//!   a database's tables, a bucket's keys under a prefix);
//! - [`Protector::data_time`]: which time a point's data is from;
//! - [`Protector::restorable_until`]: how far a resource's restorable data
//!   reaches in a vault (its exposure: a database with a binlog archive
//!   reaches past its newest snapshot).
//!
//! - [`Protector::back_up`]: a point of a resource as the file declares it
//!   (its settings, as JSON, read by the protector itself), with its live
//!   progress read by whoever runs the job ([`Watch`]);
//! - [`Protector::follows`]: the continuous jobs its settings declare (a
//!   database's binlog archive), as the daemon runs them.
//!
//! - [`Protector::restore`]: a point written into a target ([`restore`]):
//!   a directory, a database server, a bucket location — the kind of target
//!   it restores into is in its description, the target itself is the
//!   caller's to provision (a stack's recovery makes a server, a directory,
//!   a bucket).
//! - [`ResourceSettings`] (`settings.rs`): the keys its `[resource.NAME]`
//!   takes in `lifeboat.toml` and their checks, from which the
//!   configuration's loader reads every kind alike.

use chrono::{DateTime, Utc};
use lifeboat_vault::{Id, RecoveryPoint, Vault};
use serde::Serialize;

mod follow;
pub use follow::{ARCHIVE, Follow, FollowJob};

pub mod restore;

pub use restore::{
    BucketTarget, DatabaseTarget, RestoreError, RestoreJob, Restored, RollForward, Stage, Target,
    TargetKind,
};

pub mod settings;
pub use settings::{
    Key, Problem, ResourceSettings, Schema, Shape, Table, read_settings, without_kind,
};

/// How a point's contents are walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Browse {
    /// A directory tree: `path` names a directory, `/` the root.
    Tree,
    /// Named levels (`levels`): no `path` lists the first level, a `path`
    /// of one name lists what that entry holds (a database's tables).
    Levels,
    /// Flat keys: `prefix` keeps those that start with it.
    Prefix,
}

/// How a point of this kind is restored from the console, and on the
/// command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreForm {
    /// Files (or a part of them) into a directory.
    Files,
    /// One database under a new name into the resource's server.
    Database,
    /// Into an empty bucket location.
    Bucket,
    /// Not from the console: `command` only.
    CommandOnly,
}

/// What a protector is, for the layers above it and the console.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    /// The resource kind (`kind = "…"` in `lifeboat.toml`).
    pub kind: &'static str,
    /// The point kinds it writes; the first is its main one.
    pub point_kinds: &'static [&'static str],
    /// A title in words ("Directory trees").
    pub title: &'static str,
    /// How a point's contents are walked; `None`: they are not listed.
    pub browse: Option<Browse>,
    /// For [`Browse::Levels`]: the name of each level ("database", "table").
    pub levels: &'static [&'static str],
    /// How its points are restored from the console.
    pub restore: RestoreForm,
    /// The command that restores its points (`lifeboat restore files`).
    pub command: &'static str,
    /// The kind of target [`Protector::restore`] writes into (not in the
    /// API's `/kinds`: what a stack provisions for a member).
    #[serde(skip)]
    pub restores_into: TargetKind,
}

/// Which part of a point's contents to list.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// [`Browse::Tree`]: the directory; [`Browse::Levels`]: the entry
    /// whose contents to list (none: the first level).
    pub path: Option<String>,
    /// [`Browse::Prefix`]: keys starting with it.
    pub prefix: Option<String>,
    /// At most this many entries (one more tells that there are more).
    pub limit: usize,
}

/// One entry of a point's contents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Its name (a tree: its absolute path in the point).
    pub name: String,
    /// What it is: `file`, `dir`, `symlink`…, `database`, `table`, `object`.
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: Option<DateTime<Utc>>,
}

/// One level of a point's contents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listing {
    /// What was listed: the directory, the level's name, the prefix.
    pub listing: String,
    /// Its entries, at most the query's limit.
    pub entries: Vec<Entry>,
    /// More entries than the limit were there.
    pub truncated: bool,
}

impl Listing {
    /// A listing of `entries`, cut to `limit`.
    pub fn cut(listing: String, mut entries: Vec<Entry>, limit: usize) -> Listing {
        let truncated = entries.len() > limit;
        entries.truncate(limit);
        Listing {
            listing,
            entries,
            truncated,
        }
    }
}

/// A nanosecond time stamp as a time (0: none).
pub fn time_of(ns: i64) -> Option<DateTime<Utc>> {
    (ns != 0).then(|| DateTime::from_timestamp_nanos(ns))
}

/// Why a point's contents could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    /// The path or entry asked for is not in the point.
    #[error("{0} is not in the point")]
    NotInPoint(String),
    /// The query cannot be answered (a bad name, a kind that lists nothing).
    #[error("{0}")]
    BadQuery(String),
    /// The vault could not be read.
    #[error("{0}")]
    Vault(String),
}

/// A backup to make: what the control plane hands a protector.
pub struct BackupJob<'a> {
    /// The vault the point goes into.
    pub vault: &'a Vault,
    /// The resource's name.
    pub resource: &'a str,
    /// The resource as the file declares it (`[resource.NAME]`'s keys as
    /// JSON, `kind` among them): each protector reads its own.
    pub settings: &'a serde_json::Value,
    /// The resource's secret (a database's password), read by the control
    /// plane from the source the file names.
    pub secret: Option<&'a str>,
    /// The point's tags (`plan:NAME`).
    pub tags: Vec<String>,
    /// The resource is a member of a stack: the point keeps what a recovery
    /// needs to run it (a database's users and grants).
    pub stack_member: bool,
    /// Reads the protector's live counters while it works.
    pub watch: &'a dyn Watch,
}

/// A point made.
#[derive(Debug, Clone)]
pub struct Backed {
    /// Its id.
    pub id: Id,
    /// The point.
    pub point: RecoveryPoint,
    /// What the job should warn of (the point is incomplete in some way).
    pub warnings: Vec<String>,
    /// What the job notes (the point is complete).
    pub notes: Vec<String>,
}

impl Backed {
    /// A point made, with the warnings of its making and no notes.
    pub fn with_warnings(id: Id, point: RecoveryPoint, warnings: Vec<String>) -> Backed {
        Backed {
            id,
            point,
            warnings,
            notes: Vec::new(),
        }
    }
}

/// Why a backup was not made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The resource's settings are not what this protector reads.
    #[error("resource `{resource}`: {why} (run `lifeboat validate`)")]
    Settings {
        /// The resource.
        resource: String,
        /// What is wrong.
        why: String,
    },
    /// The backup failed.
    #[error("{0}")]
    Failed(String),
}

impl BackupError {
    /// The settings of `job`'s resource (their `kind` aside) read as `T`.
    pub fn settings<T: serde::de::DeserializeOwned>(job: &BackupJob) -> Result<T, BackupError> {
        let settings = settings::without_kind(job.settings);
        serde_json::from_value(settings).map_err(|e| BackupError::Settings {
            resource: job.resource.to_string(),
            why: e.to_string(),
        })
    }
}

/// One reading of a protector's live counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading {
    /// What `items` counts: `files`, `chunks`, `objects`.
    pub unit: &'static str,
    /// Items done.
    pub items: u64,
    /// Items to do, when known.
    pub items_total: Option<u64>,
    /// Bytes read (backup) or written (restore).
    pub bytes: u64,
    /// Bytes to do, when known.
    pub bytes_total: Option<u64>,
}

/// Who runs a protector's work and reads its progress meanwhile (the
/// control plane records it in the job store once a second).
pub trait Watch {
    /// Runs `work`, calling `read` now and then while it runs.
    fn watch(&self, read: &(dyn Fn() -> Reading + Sync), work: &mut (dyn FnMut() + Send));

    /// A stage of a restore ended (called on the thread that called
    /// [`Protector::restore`], between its works): by default nobody listens.
    fn stage_ended(&self, _stage: Stage) {}
}

/// Nobody watching: the work just runs.
pub struct Unwatched;

impl Watch for Unwatched {
    fn watch(&self, _read: &(dyn Fn() -> Reading + Sync), work: &mut (dyn FnMut() + Send)) {
        work()
    }
}

/// Runs `work` under `watch`, with `read` for its progress, and returns
/// what it returned.
pub fn watched<T: Send>(
    watch: &dyn Watch,
    read: &(dyn Fn() -> Reading + Sync),
    work: impl FnOnce() -> T + Send,
) -> T {
    let mut work = Some(work);
    let mut out = None;
    watch.watch(read, &mut || {
        if let Some(w) = work.take() {
            out = Some(w());
        }
    });
    out.expect("the watch ran the work")
}

/// What every protector offers the layers above it (its keys in
/// `lifeboat.toml` are its [`ResourceSettings`]).
pub trait Protector: ResourceSettings + Send + Sync {
    /// What it is: its kinds, how its points are walked and restored.
    fn describe(&self) -> Description;

    /// One level of point `id`'s contents (`point` is that point, read).
    fn contents(
        &self,
        vault: &Vault,
        id: &Id,
        point: &RecoveryPoint,
        query: &Query,
    ) -> Result<Listing, BrowseError>;

    /// The command that restores a point of kind `point_kind` (one of
    /// [`Description::point_kinds`]): by default [`Description::command`];
    /// a kind restored otherwise names its own (`POINT` standing for the
    /// point's id).
    fn restore_command(&self, _point_kind: &str) -> String {
        self.describe().command.to_string()
    }

    /// Backs up `job.resource` into `job.vault`: one point.
    fn back_up(&self, job: &BackupJob) -> Result<Backed, BackupError>;

    /// The continuous jobs `job`'s settings declare (none by default).
    fn follows(&self, _job: &FollowJob) -> Result<Vec<Follow>, BackupError> {
        Ok(Vec::new())
    }

    /// Restores `job.point` into `job.target` (of the kind
    /// [`Description::restores_into`] says), rolled forward when asked and
    /// the kind can; its live counters read by `job.watch`.
    fn restore(&self, job: &RestoreJob) -> Result<Restored, RestoreError>;

    /// The time point `point`'s data is from: by default when it was taken.
    fn data_time(&self, _vault: &Vault, point: &RecoveryPoint) -> Option<DateTime<Utc>> {
        Some(point.time)
    }

    /// How far the restorable data of `resource` in `vault` reaches: by
    /// default the newest of its main kind's points, judged by the
    /// storage's times (`Vault::list_points_trusted`).
    fn restorable_until(&self, vault: &Vault, resource: &str) -> Option<DateTime<Utc>> {
        let kind = self.describe().point_kinds[0];
        vault.list_points_trusted().ok().and_then(|points| {
            points
                .into_iter()
                .filter(|(_, p)| p.resource == resource && p.kind == kind)
                .map(|(_, p)| p.time)
                .max()
        })
    }
}

/// Every protector the build knows, found by resource kind or point kind.
pub struct Registry {
    protectors: Vec<&'static dyn Protector>,
}

impl Registry {
    /// A registry of `protectors`; a resource kind or point kind claimed
    /// twice is a programming error.
    pub fn new(protectors: Vec<&'static dyn Protector>) -> Registry {
        let mut seen = std::collections::BTreeSet::new();
        for p in &protectors {
            let d = p.describe();
            assert!(seen.insert(d.kind), "resource kind `{}` twice", d.kind);
            for k in d.point_kinds.iter().filter(|k| **k != d.kind) {
                assert!(seen.insert(k), "point kind `{k}` twice");
            }
        }
        Registry { protectors }
    }

    /// Every protector, in registration order.
    pub fn all(&self) -> impl Iterator<Item = &'static dyn Protector> + '_ {
        self.protectors.iter().copied()
    }

    /// The protector of resources of kind `kind`.
    pub fn of_resource(&self, kind: &str) -> Option<&'static dyn Protector> {
        self.all().find(|p| p.describe().kind == kind)
    }

    /// The protector that writes points of kind `kind`.
    pub fn of_point(&self, kind: &str) -> Option<&'static dyn Protector> {
        self.all()
            .find(|p| p.describe().point_kinds.contains(&kind))
    }

    /// Every point kind, main ones first in registration order.
    pub fn point_kinds(&self) -> Vec<&'static str> {
        self.all()
            .flat_map(|p| p.describe().point_kinds.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(&'static str, &'static [&'static str]);

    impl ResourceSettings for Fake {
        fn settings(&self) -> Schema {
            Schema {
                implied_by: &[],
                keys: &[],
            }
        }
    }

    impl Protector for Fake {
        fn describe(&self) -> Description {
            Description {
                kind: self.0,
                point_kinds: self.1,
                title: "fake",
                browse: None,
                levels: &[],
                restore: RestoreForm::CommandOnly,
                command: "lifeboat restore fake",
                restores_into: TargetKind::Directory,
            }
        }

        fn contents(
            &self,
            _: &Vault,
            _: &Id,
            _: &RecoveryPoint,
            _: &Query,
        ) -> Result<Listing, BrowseError> {
            Err(BrowseError::BadQuery("nothing to list".into()))
        }

        fn back_up(&self, job: &BackupJob) -> Result<Backed, BackupError> {
            Err(BackupError::Failed(format!(
                "cannot back up {}",
                job.resource
            )))
        }

        fn restore(&self, job: &RestoreJob) -> Result<Restored, RestoreError> {
            Err(job.wrong_target(self.describe().restores_into))
        }
    }

    static DB: Fake = Fake("db", &["db", "db-log"]);
    static TREE: Fake = Fake("tree", &["tree"]);

    #[test]
    fn a_protector_is_found_by_its_resource_kind_and_by_each_point_kind() {
        let r = Registry::new(vec![&DB, &TREE]);
        assert_eq!(r.of_resource("tree").unwrap().describe().kind, "tree");
        assert_eq!(r.of_point("db-log").unwrap().describe().kind, "db");
        assert!(r.of_resource("db-log").is_none());
        assert!(r.of_point("nothing").is_none());
        assert_eq!(r.point_kinds(), ["db", "db-log", "tree"]);
    }

    #[test]
    #[should_panic(expected = "point kind `db-log` twice")]
    fn a_point_kind_claimed_twice_is_refused() {
        static OTHER: Fake = Fake("other", &["other", "db-log"]);
        Registry::new(vec![&DB, &OTHER]);
    }

    #[test]
    fn watched_work_runs_once_and_gives_its_result_back() {
        struct Twice;
        impl Watch for Twice {
            fn watch(&self, read: &(dyn Fn() -> Reading + Sync), work: &mut (dyn FnMut() + Send)) {
                assert_eq!(read().unit, "files");
                work();
                work();
            }
        }
        let runs = std::sync::atomic::AtomicU64::new(0);
        let read = || Reading {
            unit: "files",
            ..Default::default()
        };
        let out = watched(&Twice, &read, || {
            runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            7
        });
        assert_eq!((out, runs.into_inner()), (7, 1));
        assert_eq!(watched(&Unwatched, &read, || "done"), "done");
    }

    #[test]
    fn settings_that_are_not_the_protectors_name_the_resource() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Files {
            paths: Vec<String>,
        }
        let t = tempfile::tempdir().unwrap();
        let v = lifeboat_vault::vault::throwaway(&t.path().join("v"));
        let settings = serde_json::json!({"kind": "files", "paths": "/etc"});
        let job = BackupJob {
            vault: &v,
            resource: "etc",
            settings: &settings,
            secret: None,
            tags: Vec::new(),
            stack_member: false,
            watch: &Unwatched,
        };
        let e = BackupError::settings::<Files>(&job)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("resource `etc`: invalid type"), "{e}");
        assert!(e.ends_with("(run `lifeboat validate`)"), "{e}");
    }

    #[test]
    fn a_listing_is_cut_to_its_limit_and_says_so() {
        let e = |n: &str| Entry {
            name: n.into(),
            kind: "object".into(),
            size: 0,
            mtime: time_of(0),
        };
        let l = Listing::cut("".into(), vec![e("a"), e("b"), e("c")], 2);
        assert_eq!(l.entries.len(), 2);
        assert!(l.truncated);
        assert!(!Listing::cut("".into(), vec![e("a")], 2).truncated);
    }
}
