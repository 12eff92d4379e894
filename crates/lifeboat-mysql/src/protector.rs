//! The database protector as the layers above it see it (`lifeboat-protector`).

use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering::Relaxed;

use lifeboat_protector::{
    Backed, BackupError, BackupJob, Browse, BrowseError, Description, Entry, Follow, FollowJob,
    Listing, Protector, Query, Reading, RestoreError, RestoreForm, RestoreJob, Restored,
    RollForward, Stage, Target, TargetKind, time_of, watched,
};
use lifeboat_vault::tree::NodeKind;
use lifeboat_vault::{Id, RecoveryPoint, Vault};

/// MySQL/MariaDB servers: snapshots and their binlog archive.
pub struct MysqlProtector;

/// The database protector, for the registry.
pub static PROTECTOR: MysqlProtector = MysqlProtector;

pub use crate::resource::listen_addr;
use crate::resource::{Mode, Settings, archive_follows};

mod modes;
pub use modes::{PHYSICAL_COMMAND, physical_base, point_mode};
use modes::{back_up_logical, back_up_physical, physical_contents};

/// The directories of a snapshot point's tree at `path` (its names).
fn dirs_at(vault: &Vault, point: &RecoveryPoint, path: &[&str]) -> Result<Vec<Entry>, BrowseError> {
    Ok(nodes_at(vault, point, path)?
        .into_iter()
        .filter(|(kind, _)| matches!(kind, NodeKind::Dir))
        .map(|(_, e)| e)
        .collect())
}

/// Every node of a point's tree at `path`, each with its kind (the entry's
/// `kind` left empty).
fn nodes_at(
    vault: &Vault,
    point: &RecoveryPoint,
    path: &[&str],
) -> Result<Vec<(NodeKind, Entry)>, BrowseError> {
    let vault_err = |e: lifeboat_vault::VaultError| BrowseError::Vault(e.to_string());
    let index = vault.load_index().map_err(vault_err)?;
    let mut tree = vault.read_tree(&index, &point.tree).map_err(vault_err)?;
    for name in path {
        // As a tree's listing says it: the whole path asked for.
        let sub = tree
            .find(name.as_bytes())
            .and_then(|n| n.subtree)
            .ok_or_else(|| BrowseError::NotInPoint(format!("/{}", path.join("/"))))?;
        tree = vault.read_tree(&index, &sub).map_err(vault_err)?;
    }
    Ok(tree
        .nodes
        .iter()
        .map(|n| {
            let e = Entry {
                name: String::from_utf8_lossy(&n.name_bytes()).into_owned(),
                kind: String::new(),
                size: n.size,
                mtime: time_of(n.mtime_ns),
            };
            (n.kind, e)
        })
        .collect())
}

/// The databases a snapshot point holds.
pub fn databases(vault: &Vault, point: &RecoveryPoint) -> Result<Vec<String>, BrowseError> {
    Ok(dirs_at(vault, point, &["databases"])?
        .into_iter()
        .map(|e| e.name)
        .collect())
}

impl Protector for MysqlProtector {
    fn describe(&self) -> Description {
        Description {
            kind: "mysql",
            point_kinds: &[
                crate::KIND_SNAPSHOT,
                crate::KIND_BINLOG,
                crate::KIND_PHYSICAL,
            ],
            title: "MySQL/MariaDB databases",
            browse: Some(Browse::Levels),
            levels: &["database", "table"],
            restore: RestoreForm::Database,
            command: "lifeboat restore mysql",
            restores_into: TargetKind::Database,
        }
    }

    /// A point as the resource's `mode` says: a consistent logical
    /// snapshot (a stack's database with its users and grants, so that the
    /// application's own account exists after a recovery), or a physical
    /// point of the server's files (`full_every`: incremental on the newest
    /// until the chain's full point is that old), its mode in the job's notes.
    fn back_up(&self, job: &BackupJob) -> Result<Backed, BackupError> {
        let s: Settings = BackupError::settings(job)?;
        let mode = s.mode().map_err(|p| BackupError::Settings {
            resource: job.resource.to_string(),
            why: format!("{}: {}", p.key, p.message),
        })?;
        let mut dsn = crate::Dsn::parse(&s.dsn).map_err(|e| BackupError::Failed(e.to_string()))?;
        // The file's secret, when it names one (a DSN's own password stays).
        if let Some(secret) = job.secret {
            dsn.password = Some(secret.to_string());
        }
        match mode {
            Mode::Logical => back_up_logical(job, &dsn),
            Mode::Physical(full_every) => back_up_physical(job, &dsn, full_every),
        }
    }

    /// A physical point is restored into a data directory, by its own command.
    fn restore_command(&self, point_kind: &str) -> String {
        match point_kind {
            crate::KIND_PHYSICAL => PHYSICAL_COMMAND.to_string(),
            _ => self.describe().command.to_string(),
        }
    }

    /// A snapshot's databases, or one database's tables (`query.path`); a
    /// physical point's files as the backup copied them (`backup/`: no
    /// path, its first level; a directory's name, that directory's files).
    fn contents(
        &self,
        vault: &Vault,
        _id: &Id,
        point: &RecoveryPoint,
        query: &Query,
    ) -> Result<Listing, BrowseError> {
        if point.kind == crate::KIND_PHYSICAL {
            return physical_contents(vault, point, query);
        }
        if point.kind != crate::KIND_SNAPSHOT {
            return Err(BrowseError::BadQuery(format!(
                "a point of kind `{}` has no contents to list (files, instance, mysql and bucket points do)",
                point.kind
            )));
        }
        let (listing, path, kind) = match query.path.as_deref().filter(|p| !p.is_empty()) {
            None => ("databases".to_string(), vec!["databases"], "database"),
            Some(db) if db.contains(['/', '\0']) => {
                return Err(BrowseError::BadQuery(format!(
                    "`{db}` is not a database name"
                )));
            }
            Some(db) => (db.to_string(), vec!["databases", db, "tables"], "table"),
        };
        let mut entries = dirs_at(vault, point, &path)?;
        for e in &mut entries {
            e.kind = kind.into();
        }
        Ok(Listing::cut(listing, entries, query.limit))
    }

    /// A snapshot's data is from its consistent moment, as is a physical
    /// point's (a binlog segment's: when it was sealed).
    fn data_time(&self, _vault: &Vault, point: &RecoveryPoint) -> Option<DateTime<Utc>> {
        match point.kind.as_str() {
            crate::KIND_PHYSICAL => point.meta["consistent_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .or(Some(point.time)),
            crate::KIND_SNAPSHOT => {
                serde_json::from_value::<crate::snapshot::SnapshotMeta>(point.meta.clone())
                    .ok()
                    .map(|m| m.consistent_at)
                    .or(Some(point.time))
            }
            _ => Some(point.time),
        }
    }

    /// The newest restorable second of the database's archive and
    /// snapshots (its restorable windows).
    fn restorable_until(&self, vault: &Vault, resource: &str) -> Option<DateTime<Utc>> {
        crate::Catalog::load(vault, resource)
            .ok()
            .and_then(|c| c.windows().iter().map(|w| w.to).max())
    }

    /// The binlog archive, when the file declares `archive`.
    fn follows(&self, job: &FollowJob) -> Result<Vec<Follow>, BackupError> {
        archive_follows(job)
    }

    /// A snapshot into a server: its databases (or those the target names,
    /// renamed) loaded beside what is there and swapped in once complete
    /// (`restore.rs`); then, when asked, the binlog archive replayed from the
    /// snapshot's coordinates ([`Stage::Loaded`], [`Stage::RolledForward`]).
    /// A failed replay leaves the loaded snapshot ([`RestoreError::RollForward`]).
    fn restore(&self, job: &RestoreJob) -> Result<Restored, RestoreError> {
        if job.point.kind == crate::KIND_PHYSICAL {
            return crate::rollforward::restore_job(job);
        }
        let Target::Database(t) = &job.target else {
            return Err(job.wrong_target(TargetKind::Database));
        };
        let s: RestoreSettings = job.options()?;
        let (vault, id, point) = (job.vault, job.id, job.point);
        // Refused before anything is loaded when the archive cannot take it there.
        let roll = match job.roll_forward {
            Some(to) => Some(roll_plan(vault, id, point, to)?),
            None => None,
        };
        let mut dsn = crate::Dsn::parse(&t.dsn).map_err(restore_error)?;
        dsn.password = t.password.clone();
        let opts = crate::RestoreOptions {
            databases: t.databases.clone(),
            renames: t.renames.clone(),
            force: t.replace,
            users: s.users,
            ..Default::default()
        };
        let counters = crate::Counters::default();
        let read = || chunks(&counters);
        let rep = watched(job.watch, &read, || {
            crate::restore(vault, id, point, &dsn, &opts, &counters)
        })
        .map_err(restore_error)?;
        job.watch.stage_ended(Stage::Loaded);
        let mut report = serde_json::to_value(&rep).unwrap_or_default();
        let mut data_time = self.data_time(vault, point);
        if let Some((catalog, plan, reach)) = roll {
            let work = s.work.unwrap_or_else(std::env::temp_dir);
            let replayed = crate::pitr::replay(vault, &catalog, &plan, &dsn, &opts, &work)
                .map_err(|e| RestoreError::RollForward(e.to_string()))?;
            job.watch.stage_ended(Stage::RolledForward);
            report["replay"] = serde_json::to_value(&replayed).unwrap_or_default();
            data_time = Some(reach);
        }
        Ok(Restored {
            items: rep.tables,
            bytes: rep.bytes,
            summary: format!(
                "{} tables, {} rows, {} bytes",
                rep.tables, rep.rows, rep.bytes
            ),
            data_time,
            warnings: rep.warnings,
            not_restored: Vec::new(),
            errors: Vec::new(),
            report,
        })
    }
}

/// A database restore's options (the restore job's JSON).
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreSettings {
    /// Also restore the users and grants the snapshot holds.
    pub users: bool,
    /// Where a roll forward writes the binlog it replays (a private
    /// directory is made below it; default: the system's temporary directory).
    pub work: Option<std::path::PathBuf>,
}

/// A snapshot's load or restore: chunks done of those to do, bytes.
fn chunks(counters: &crate::Counters) -> Reading {
    let total = counters.chunks_total.load(Relaxed);
    Reading {
        unit: "chunks",
        items: counters.chunks_done.load(Relaxed),
        items_total: (total > 0).then_some(total),
        bytes: counters.bytes.load(Relaxed),
        bytes_total: None,
    }
}

/// The replay of snapshot `id`'s binlog archive to `to`: the catalog, the
/// plan and the time the data will reach; refused when the archive cannot
/// take this snapshot there.
fn roll_plan(
    vault: &Vault,
    id: &Id,
    point: &RecoveryPoint,
    to: RollForward,
) -> Result<(crate::Catalog, crate::pitr::Plan, DateTime<Utc>), RestoreError> {
    let meta = crate::restore::snapshot_meta(id, point).map_err(restore_error)?;
    crate::pitr::plan_at(vault, id, point, crate::pitr::Base::Logical(meta), to)
        .map_err(restore_error)
}

/// A database restore's error through the interface: what the protector
/// refuses before loading anything (a target that is not empty, a time the
/// archive does not reach, a point that is no snapshot, a bad DSN) apart
/// from what failed.
pub fn restore_error(e: crate::MysqlError) -> RestoreError {
    use crate::MysqlError as E;
    match e {
        E::TargetNotEmpty { .. }
        | E::NotRestorable { .. }
        | E::Usage(_)
        | E::BadPoint { .. }
        | E::BadDsn { .. } => RestoreError::Refused(e.to_string()),
        e => RestoreError::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_vault::tree::{Node, Tree};

    fn dir(w: &lifeboat_vault::BackupWriter, name: &str, nodes: Vec<Node>) -> Node {
        let mut n = Node {
            kind: NodeKind::Dir,
            mode: 0o40755,
            subtree: Some(w.save_tree(&Tree { nodes }).unwrap()),
            ..Node::default()
        };
        n.set_name_bytes(name.as_bytes());
        n
    }

    /// A snapshot-shaped point: databases `shop` (tables `orders`, `items`)
    /// and `tables` (a database named like the level below).
    fn point(v: &Vault) -> (Id, RecoveryPoint) {
        let w = lifeboat_vault::BackupWriter::start(v, "mysql").unwrap();
        let shop = dir(
            &w,
            "shop",
            vec![dir(
                &w,
                "tables",
                vec![dir(&w, "orders", vec![]), dir(&w, "items", vec![])],
            )],
        );
        let tables = dir(
            &w,
            "tables",
            vec![dir(&w, "tables", vec![dir(&w, "t", vec![])])],
        );
        let root = w
            .save_tree(&Tree {
                nodes: vec![dir(&w, "databases", vec![shop, tables])],
            })
            .unwrap();
        let p = RecoveryPoint::new("shop-db", "mysql", root);
        let id = w.commit(&p).unwrap();
        (id, v.read_point(&id).unwrap())
    }

    /// The databases, a database's tables; a name with `/` or NUL refused;
    /// `..`, `.` and an unknown database not in the point (never a walk
    /// outside the database asked for).
    #[test]
    fn a_snapshot_lists_its_databases_and_a_databases_tables_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        let v = lifeboat_vault::vault::throwaway(&t.path().join("v"));
        let (id, p) = point(&v);
        let list = |path: Option<&str>| {
            let q = Query {
                path: path.map(str::to_string),
                limit: 10,
                ..Default::default()
            };
            PROTECTOR.contents(&v, &id, &p, &q)
        };
        let names = |l: Listing| -> Vec<(String, String)> {
            l.entries.into_iter().map(|e| (e.name, e.kind)).collect()
        };
        let all = list(None).unwrap();
        assert_eq!(all.listing, "databases");
        let db = |n: &str| (n.to_string(), "database".to_string());
        assert_eq!(names(all), [db("shop"), db("tables")]);
        let table = |n: &str| (n.to_string(), "table".to_string());
        assert_eq!(
            names(list(Some("shop")).unwrap()),
            [table("orders"), table("items")]
        );
        assert_eq!(names(list(Some("tables")).unwrap()), [table("t")]);
        for bad in ["a/b", "a\0b", "../shop"] {
            assert!(
                matches!(list(Some(bad)), Err(BrowseError::BadQuery(_))),
                "{bad}"
            );
        }
        for absent in ["..", ".", "nobody"] {
            match list(Some(absent)) {
                Err(BrowseError::NotInPoint(p)) => {
                    assert_eq!(p, format!("/databases/{absent}/tables"))
                }
                other => panic!("{absent}: {other:?}"),
            }
        }
    }

    /// A roll forward the point cannot make is refused before any server
    /// is reached (the DSN names nothing that answers), as is a target
    /// that is no database server.
    #[test]
    fn a_roll_forward_the_point_cannot_make_is_refused_before_the_load() {
        use lifeboat_protector::{DatabaseTarget, RestoreJob, RollForward, Target, Unwatched};
        let t = tempfile::tempdir().unwrap();
        let v = lifeboat_vault::vault::throwaway(&t.path().join("v"));
        let (id, p) = point(&v);
        let job = |target| RestoreJob {
            vault: &v,
            id: &id,
            point: &p,
            target,
            roll_forward: Some(RollForward::Latest),
            options: serde_json::Value::Null,
            watch: &Unwatched,
        };
        let nowhere = DatabaseTarget::server("mysql://root@127.0.0.1:1", None);
        let e = PROTECTOR
            .restore(&job(Target::Database(nowhere)))
            .unwrap_err();
        assert!(e.nothing_written(), "{e}");
        assert!(e.to_string().contains("unreadable snapshot meta"), "{e}");
        let e = PROTECTOR
            .restore(&job(Target::Directory(t.path().join("d"))))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a `mysql` point is restored into a database server, not into a directory"
        );
    }

    /// A physical point's data is from its meta's `consistent_at`; its
    /// mode and base read from the point; its restore command its own.
    #[test]
    fn a_physical_point_has_its_data_time_mode_base_and_command() {
        let t = tempfile::tempdir().unwrap();
        let v = lifeboat_vault::vault::throwaway(&t.path().join("v"));
        let (_, snapshot) = point(&v);
        let mut p = snapshot.clone();
        p.kind = crate::KIND_PHYSICAL.into();
        p.meta = serde_json::json!({"mode": "physical", "consistent_at": "2026-01-02T03:04:05.5Z"});
        let at = PROTECTOR.data_time(&v, &p).unwrap();
        assert_eq!(at.to_rfc3339(), "2026-01-02T03:04:05.500+00:00");
        assert_eq!(
            (point_mode(&p), physical_base(&p)),
            (Some("physical"), None)
        );
        p.meta["base"] = "ab".repeat(32).into();
        assert_eq!(physical_base(&p), Some("ab".repeat(32)));
        assert_eq!(
            (point_mode(&snapshot), physical_base(&snapshot)),
            (Some("logical"), None)
        );
        assert_eq!(
            PROTECTOR.restore_command(crate::KIND_PHYSICAL),
            "lifeboat restore mysql POINT --physical --datadir DIR"
        );
        assert_eq!(
            PROTECTOR.restore_command(crate::KIND_SNAPSHOT),
            "lifeboat restore mysql"
        );
    }

    #[test]
    fn a_database_follows_its_archive_only_when_the_file_declares_one() {
        let follows = |settings: serde_json::Value| {
            let job = FollowJob {
                resource: "db",
                settings: &settings,
                spool: std::path::Path::new("/state/spool/db"),
            };
            PROTECTOR.follows(&job)
        };
        let dsn = "mysql://backup@127.0.0.1:3306";
        for none in [
            serde_json::json!({"dsn": dsn}),
            serde_json::json!({"dsn": dsn, "archive": null}),
            serde_json::json!({"dsn": dsn, "archive": false}),
        ] {
            assert_eq!(follows(none).unwrap(), []);
        }
        let on = follows(serde_json::json!({"dsn": dsn, "archive": true})).unwrap();
        assert_eq!(on.len(), 1);
        assert_eq!(
            (on[0].job, on[0].point_kind),
            ("archive", crate::KIND_BINLOG)
        );
        assert_eq!(
            on[0].args,
            [
                "archive",
                "mysql",
                "--dsn",
                dsn,
                "--resource",
                "db",
                "--spool",
                "/state/spool/db"
            ]
        );
        assert_eq!(on[0].secret_env, Some("LIFEBOAT_MYSQL_PASSWORD"));
        assert_eq!((on[0].vault.clone(), on[0].copy_to.len()), (None, 0));
        let table =
            serde_json::json!({"dsn": dsn, "archive": {"vault": "main", "copy_to": ["dr"]}});
        let t = follows(table).unwrap();
        assert_eq!(
            (t[0].vault.as_deref(), t[0].copy_to.clone()),
            (Some("main"), vec!["dr".to_string()])
        );
        let bad =
            follows(serde_json::json!({"dsn": dsn, "archive": {"copy_to": "dr"}})).unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("resource `db`: archive: invalid type"),
            "{bad}"
        );
    }
}
