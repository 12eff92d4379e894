//! The protector interface: what every kind of resource — directory trees,
//! databases, buckets, app hosts — offers the layers above the protectors
//! (the control plane, stacks, the daemon, the API and its console), so
//! that none of them switches on a kind or knows a point's layout.
//!
//! Each protector crate implements [`Protector`] once and the control plane
//! lists them in one [`Registry`]; a new kind is one crate plus one line
//! there. Protectors still know nothing of each other: this crate depends
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
//! Backing up and restoring stay each protector's own library calls, with
//! options of their own; the registry finds the protector of a resource or
//! of a point for the layers above.

use chrono::{DateTime, Utc};
use lifeboat_vault::{Id, RecoveryPoint, Vault};
use serde::Serialize;

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

/// What every protector offers the layers above it.
pub trait Protector: Send + Sync {
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
