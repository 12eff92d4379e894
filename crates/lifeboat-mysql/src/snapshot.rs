//! Consistent, parallel snapshots of a live server.
//!
//! ```text
//! open the vault session (lock, index); connect N worker sessions
//! MariaDB:  BACKUP STAGE START → FLUSH → BLOCK_DDL    (DDL waits; writes go on)
//!           read the schema (tables, columns, keys, views, routines, triggers, events)
//!           BACKUP STAGE BLOCK_COMMIT                  (commits wait, for milliseconds)
//!           each worker: START TRANSACTION WITH CONSISTENT SNAPSHOT
//!           SHOW MASTER STATUS, @@gtid_binlog_pos, UTC_TIMESTAMP(6)  → the coordinates
//!           BACKUP STAGE END
//! MySQL:    the same under FLUSH TABLES WITH READ LOCK … UNLOCK TABLES
//! no RELOAD privilege: one connection, START TRANSACTION WITH CONSISTENT
//!           SNAPSHOT, coordinates from binlog_snapshot_file/position (MariaDB)
//! plan:     big tables with a single integer primary key are cut into key
//!           ranges aligned to a power-of-two stride (stable between
//!           snapshots, so unchanged ranges deduplicate); others are one chunk
//! dump:     workers take chunks (largest tables first); rows stream in key
//!           order through the LOAD DATA text format into the vault's chunker
//! commit:   one tree per table (table.json + data chunks) → point with the coordinates
//! ```
//! Every worker sees the same committed state, so the whole snapshot is
//! consistent at the recorded binlog coordinates. If anything fails (the
//! server dies, a privilege is missing) no point is written.
//!
//! The consistent view is in snapshot/consistent.rs, the dump in snapshot/dump.rs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_vault::tree::{Node, NodeKind, Tree};
use lifeboat_vault::{BackupWriter, Id, RecoveryPoint, Summary, Vault};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::schema::{self, DatabaseInfo, TableInfo, UserInfo};
use crate::server::{Dsn, ServerInfo, Session};

mod consistent;
mod dump;

pub use consistent::parse_server_time;
use consistent::{Consistent, make_consistent};
pub use dump::key_ranges;
use dump::{Dumped, Job, dump_all, plan};

/// What to snapshot, and how.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// Only these databases (default: every user database).
    pub databases: Option<Vec<String>>,
    /// Also users and their grants.
    pub users: bool,
    /// Connections dumping in parallel.
    pub parallel: usize,
    /// Target size of one chunk of a big table, in bytes.
    pub chunk_bytes: u64,
    /// Resource name (default `mysql:HOST:PORT`).
    pub resource: Option<String>,
    /// Tags of the point.
    pub tags: Vec<String>,
    /// zstd level for the dump (`None`: the vault's default). Level 1
    /// compresses row data as well as 3 here at a third less CPU, which on a
    /// database host shared with the server is what a snapshot is short of.
    pub compression: Option<i32>,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            databases: None,
            users: false,
            parallel: crate::default_parallel(),
            chunk_bytes: 64 * 1024 * 1024,
            resource: None,
            tags: Vec::new(),
            compression: Some(1),
        }
    }
}

/// Live counters, for progress.
#[derive(Debug, Default)]
pub struct Counters {
    /// Rows dumped (snapshot) or loaded (restore).
    pub rows: AtomicU64,
    /// Bytes of row data dumped or loaded.
    pub bytes: AtomicU64,
    /// Chunks finished.
    pub chunks_done: AtomicU64,
    /// Chunks planned.
    pub chunks_total: AtomicU64,
}

/// Binary log coordinates a snapshot is consistent at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coordinates {
    /// Binlog file name.
    pub file: String,
    /// Position in it.
    pub pos: u64,
    /// GTID state (`@@gtid_binlog_pos`, or MySQL's executed set).
    #[serde(default)]
    pub gtid: Option<String>,
}

/// What a `mysql` point records in its `meta`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Layout version of mysql points (1).
    pub format: u32,
    /// The server.
    pub server: ServerInfo,
    /// Where it was reached (no password).
    pub dsn: String,
    /// Binlog coordinates of the snapshot (absent when binary logging is off).
    pub binlog: Option<Coordinates>,
    /// The server's clock (UTC) at the moment of consistency.
    pub consistent_at: DateTime<Utc>,
    /// How consistency was obtained: `backup-stage`, `ftwrl` or `single-transaction`.
    pub method: String,
    /// Databases in the point.
    pub databases: Vec<String>,
    /// Tables in the point.
    pub tables: u64,
    /// Rows in the point.
    pub rows: u64,
    /// Whether users and grants are in the point.
    pub users: bool,
}

/// The result of a snapshot.
#[derive(Debug)]
pub struct SnapshotResult {
    /// The new point's id.
    pub id: Id,
    /// The point.
    pub point: RecoveryPoint,
    /// Its meta, parsed.
    pub meta: SnapshotMeta,
    /// Things the user should know (e.g. a missing privilege that cost parallelism).
    pub warnings: Vec<String>,
}

/// Takes a consistent snapshot of `dsn` into `vault`.
pub fn snapshot(
    vault: &Vault,
    dsn: &Dsn,
    opts: &SnapshotOptions,
    counters: &Counters,
) -> Result<SnapshotResult> {
    let started = Instant::now();
    let time = Utc::now();
    let mut warnings = Vec::new();
    let mut main = Session::connect(dsn)?;
    let info = main.info()?;
    let names = schema::database_names(&mut main, opts.databases.as_deref())?;
    let users = if opts.users {
        schema::read_users(&mut main, &mut warnings)?
    } else {
        Vec::new()
    };
    let mut writer = BackupWriter::start(vault, "backup")?;
    if let Some(level) = opts.compression {
        writer = writer.with_compression(level);
    }
    let mut workers = Vec::new();
    for _ in 0..opts.parallel.max(1) {
        workers.push(Session::connect(dsn)?);
    }
    let c = make_consistent(&mut main, workers, &info, &names, &mut warnings)?;
    let Consistent {
        mut workers,
        coords,
        at,
        method,
        dbs,
    } = c;
    if coords.is_none() && info.log_bin {
        warnings.push(
            "binlog coordinates unknown: this snapshot cannot start a point-in-time recovery"
                .into(),
        );
    }
    let jobs = plan(&mut workers[0], &dbs, opts.chunk_bytes)?;
    counters
        .chunks_total
        .store(jobs.len() as u64, Ordering::Relaxed);
    let results = dump_all(&writer, workers, &dbs, jobs, counters)?;
    main.close();
    let trees = write_trees(&writer, &dbs, &results, opts.users.then_some(&users))?;

    let meta = SnapshotMeta {
        format: 1,
        server: info,
        dsn: dsn.to_string(),
        binlog: coords,
        consistent_at: at,
        method: method.to_string(),
        databases: names.clone(),
        tables: trees.tables,
        rows: trees.rows,
        users: opts.users,
    };
    let resource = opts.resource.clone().unwrap_or_else(|| dsn.resource());
    let mut point = RecoveryPoint::new(&resource, crate::KIND_SNAPSHOT, trees.root);
    point.time = time;
    point.tags = opts.tags.clone();
    point.paths = names;
    let st = writer.stats();
    point.summary = Summary {
        files: trees.tables,
        dirs: dbs.len() as u64,
        size: trees.bytes,
        bytes_read: trees.bytes,
        bytes_new: st.bytes_new.load(Ordering::Relaxed),
        bytes_stored: st.bytes_stored.load(Ordering::Relaxed),
        blobs_new: st.blobs_new.load(Ordering::Relaxed),
        duration_s: started.elapsed().as_secs_f64(),
    };
    point.meta = serde_json::to_value(&meta).expect("meta serializes");
    let id = writer.commit(&point)?;
    Ok(SnapshotResult {
        id,
        point,
        meta,
        warnings,
    })
}

/// The trees a snapshot wrote: the root's id and what they hold.
struct Trees {
    root: Id,
    tables: u64,
    rows: u64,
    bytes: u64,
}

/// Writes the point's trees:
/// `/databases/<db>/{database.json, tables/<table>/{table.json, data-NNNNNN}}`
/// and, with `users`, `/users.json`.
fn write_trees(
    writer: &BackupWriter<'_>,
    dbs: &[DatabaseInfo],
    results: &[(Job, Dumped)],
    users: Option<&Users>,
) -> Result<Trees> {
    let (mut rows, mut bytes, mut tables) = (0, 0, 0);
    let mut db_nodes = Vec::new();
    for (di, db) in dbs.iter().enumerate() {
        let mut table_nodes = Vec::new();
        for (ti, t) in db.tables.iter().enumerate() {
            let mut chunks: Vec<&(Job, Dumped)> = results
                .iter()
                .filter(|(j, _)| j.db == di && j.table == ti)
                .collect();
            chunks.sort_by_key(|(j, _)| j.chunk);
            let (node, r, b) = table_tree(writer, t, &chunks)?;
            table_nodes.push(node);
            rows += r;
            bytes += b;
            tables += 1;
        }
        table_nodes.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let mut header = db.clone();
        header.tables.clear();
        let db_tree = Tree {
            nodes: vec![
                json_node(writer, "database.json", &header)?,
                dir_node("tables", writer.save_tree(&Tree { nodes: table_nodes })?),
            ],
        };
        db_nodes.push(dir_node(&db.name, writer.save_tree(&db_tree)?));
    }
    db_nodes.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut root = vec![dir_node(
        "databases",
        writer.save_tree(&Tree { nodes: db_nodes })?,
    )];
    if let Some(users) = users {
        root.push(json_node(writer, "users.json", users)?);
    }
    Ok(Trees {
        root: writer.save_tree(&Tree { nodes: root })?,
        tables,
        rows,
        bytes,
    })
}

/// Writes one table's tree (table.json and its dumped chunks, in order);
/// returns its node, its rows and its bytes.
fn table_tree(
    writer: &BackupWriter<'_>,
    t: &TableInfo,
    chunks: &[&(Job, Dumped)],
) -> Result<(Node, u64, u64)> {
    let rows: u64 = chunks.iter().map(|(_, d)| d.rows).sum();
    let mut bytes = 0;
    let mut nodes = vec![json_node(
        writer,
        "table.json",
        &TableEntry {
            info: t.clone(),
            rows,
        },
    )?];
    for (j, d) in chunks {
        bytes += d.bytes;
        let mut n = file_node(&format!("data-{:06}", j.chunk), d.content.clone(), d.bytes);
        n.attrs.insert("rows".into(), d.rows.to_string());
        if !j.filter.is_empty() {
            n.attrs.insert("range".into(), j.filter.clone());
        }
        nodes.push(n);
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let node = dir_node(&t.name, writer.save_tree(&Tree { nodes })?);
    Ok((node, rows, bytes))
}

/// table.json: the definition and the number of rows dumped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableEntry {
    /// The table.
    #[serde(flatten)]
    pub info: TableInfo,
    /// Rows in the snapshot.
    pub rows: u64,
}

/// Users file content.
pub type Users = Vec<UserInfo>;

/// A directory node named `name` holding `subtree`.
fn dir_node(name: &str, subtree: Id) -> Node {
    let mut n = Node {
        kind: NodeKind::Dir,
        mode: 0o40755,
        subtree: Some(subtree),
        ..Node::default()
    };
    n.set_name_bytes(name.as_bytes());
    n
}

/// A file node named `name` with `content`.
fn file_node(name: &str, content: Vec<Id>, size: u64) -> Node {
    let mut n = Node {
        kind: NodeKind::File,
        mode: 0o100644,
        size,
        content,
        ..Node::default()
    };
    n.set_name_bytes(name.as_bytes());
    n
}

/// A file node named `name` holding `v` as pretty JSON.
fn json_node<T: Serialize>(w: &BackupWriter<'_>, name: &str, v: &T) -> Result<Node> {
    let bytes = serde_json::to_vec_pretty(v).expect("json");
    let (ids, n) = w.save_stream(&bytes[..], |_| {})?;
    Ok(file_node(name, ids, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_cover_everything_and_stay_put() {
        let r = key_ranges("`id`", 1, 1_000_000, 8);
        assert_eq!(r.first().unwrap(), " WHERE `id` < 131072");
        assert_eq!(r.last().unwrap(), " WHERE `id` >= 917504");
        assert_eq!(r.len(), 8);
        // Growing the table keeps every earlier cut…
        let grown = key_ranges("`id`", 1, 1_040_000, 8);
        assert_eq!(&grown[1..7], &r[1..7]);
        // …and when the stride doubles, the new cuts are a subset of the old.
        let cuts = |v: &[String]| -> Vec<String> {
            v.iter()
                .filter_map(|w| {
                    w.split(">= ")
                        .nth(1)
                        .map(|x| x.split(' ').next().unwrap().to_string())
                })
                .collect()
        };
        let doubled = key_ranges("`id`", 1, 1_500_000, 8);
        assert!(doubled.len() < 10);
        for c in cuts(&doubled)
            .iter()
            .filter(|c| c.parse::<i64>().unwrap() < 1_000_000)
        {
            assert!(cuts(&r).contains(c), "cut {c} is new");
        }
        // Small or negative ranges.
        assert_eq!(key_ranges("k", 5, 5, 4), vec![String::new()]);
        let neg = key_ranges("k", -5000, 5000, 4);
        assert_eq!(neg.first().unwrap(), " WHERE k < -4096");
        assert_eq!(neg.len(), 4);
        assert_eq!(neg.last().unwrap(), " WHERE k >= 4096");
    }

    #[test]
    fn parses_server_times() {
        let t = parse_server_time("2026-11-25 08:22:34.716435").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T08:22:34.716435+00:00");
        assert!(parse_server_time("2026-11-25 08:22:34").is_some());
        assert!(parse_server_time("nope").is_none());
    }
}
