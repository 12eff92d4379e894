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
//! (Over 600 lines: one consistent snapshot's stages — lock, schema, parallel dump, point — kept together.)

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_vault::tree::{Node, NodeKind, Tree};
use lifeboat_vault::{BackupWriter, Id, RecoveryPoint, Summary, Vault};
use serde::{Deserialize, Serialize};

use crate::error::{MysqlError, Result};
use crate::rows::encode_fields;
use crate::schema::{self, DatabaseInfo, TableInfo, UserInfo};
use crate::server::{Dsn, Flavor, ServerInfo, Session, field, ident, text};

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

/// A part of a table to dump.
#[derive(Debug, Clone)]
struct Job {
    db: usize,
    table: usize,
    chunk: usize,
    /// `WHERE …` for key ranges, or empty.
    filter: String,
    weight: u64,
}

/// What a dumped chunk became.
#[derive(Debug, Clone)]
struct Dumped {
    content: Vec<Id>,
    bytes: u64,
    rows: u64,
}

struct Consistent {
    workers: Vec<Session>,
    coords: Option<Coordinates>,
    at: DateTime<Utc>,
    method: &'static str,
    dbs: Vec<DatabaseInfo>,
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
        schema::read_users(&mut main)?
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

    // Trees: /databases/<db>/{database.json, tables/<table>/{table.json, data-NNNNNN}}
    let mut db_nodes = Vec::new();
    let mut total_rows = 0;
    let mut total_bytes = 0;
    let mut tables = 0;
    for (di, db) in dbs.iter().enumerate() {
        let mut table_nodes = Vec::new();
        for (ti, t) in db.tables.iter().enumerate() {
            let mut chunks: Vec<&(Job, Dumped)> = results
                .iter()
                .filter(|(j, _)| j.db == di && j.table == ti)
                .collect();
            chunks.sort_by_key(|(j, _)| j.chunk);
            let rows: u64 = chunks.iter().map(|(_, d)| d.rows).sum();
            total_rows += rows;
            tables += 1;
            let mut nodes = vec![json_node(
                &writer,
                "table.json",
                &TableEntry {
                    info: t.clone(),
                    rows,
                },
            )?];
            for (j, d) in chunks {
                total_bytes += d.bytes;
                let mut n = file_node(&format!("data-{:06}", j.chunk), d.content.clone(), d.bytes);
                n.attrs.insert("rows".into(), d.rows.to_string());
                if !j.filter.is_empty() {
                    n.attrs.insert("range".into(), j.filter.clone());
                }
                nodes.push(n);
            }
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            table_nodes.push(dir_node(&t.name, writer.save_tree(&Tree { nodes })?));
        }
        table_nodes.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let mut header = db.clone();
        header.tables.clear();
        let db_tree = Tree {
            nodes: vec![
                json_node(&writer, "database.json", &header)?,
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
    if opts.users {
        root.push(json_node(&writer, "users.json", &users)?);
    }
    let root_id = writer.save_tree(&Tree { nodes: root })?;

    let meta = SnapshotMeta {
        format: 1,
        server: info,
        dsn: dsn.to_string(),
        binlog: coords,
        consistent_at: at,
        method: method.to_string(),
        databases: names.clone(),
        tables,
        rows: total_rows,
        users: opts.users,
    };
    let resource = opts.resource.clone().unwrap_or_else(|| dsn.resource());
    let mut point = RecoveryPoint::new(&resource, crate::KIND_SNAPSHOT, root_id);
    point.time = time;
    point.tags = opts.tags.clone();
    point.paths = names;
    let st = writer.stats();
    point.summary = Summary {
        files: tables,
        dirs: dbs.len() as u64,
        size: total_bytes,
        bytes_read: total_bytes,
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

fn json_node<T: Serialize>(w: &BackupWriter<'_>, name: &str, v: &T) -> Result<Node> {
    let bytes = serde_json::to_vec_pretty(v).expect("json");
    let (ids, n) = w.save_stream(&bytes[..], |_| {})?;
    Ok(file_node(name, ids, n))
}

fn make_consistent(
    main: &mut Session,
    mut workers: Vec<Session>,
    info: &ServerInfo,
    names: &[String],
    warnings: &mut Vec<String>,
) -> Result<Consistent> {
    let read_schema = |s: &mut Session| -> Result<Vec<DatabaseInfo>> {
        names.iter().map(|d| schema::read_database(s, d)).collect()
    };
    let start_workers = |ws: &mut Vec<Session>| -> Result<()> {
        for w in ws.iter_mut() {
            w.exec(
                "start a consistent snapshot",
                "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            )?;
            w.exec(
                "start a consistent snapshot",
                "START TRANSACTION WITH CONSISTENT SNAPSHOT",
            )?;
        }
        Ok(())
    };
    let lock = match info.flavor {
        Flavor::Mariadb => main.exec("take the backup lock", "BACKUP STAGE START"),
        Flavor::Mysql => main.exec("take the backup lock", "FLUSH TABLES WITH READ LOCK"),
    };
    match lock {
        Ok(()) => {
            let method = match info.flavor {
                Flavor::Mariadb => {
                    main.exec("take the backup lock", "BACKUP STAGE FLUSH")?;
                    main.exec("take the backup lock", "BACKUP STAGE BLOCK_DDL")?;
                    "backup-stage"
                }
                Flavor::Mysql => "ftwrl",
            };
            let dbs = read_schema(main)?;
            if info.flavor == Flavor::Mariadb {
                main.exec("block commits", "BACKUP STAGE BLOCK_COMMIT")?;
            }
            start_workers(&mut workers)?;
            let (coords, at) = coordinates(main, info, warnings)?;
            match info.flavor {
                Flavor::Mariadb => main.exec("release the backup lock", "BACKUP STAGE END")?,
                Flavor::Mysql => main.exec("release the backup lock", "UNLOCK TABLES")?,
            }
            Ok(Consistent {
                workers,
                coords,
                at,
                method,
                dbs,
            })
        }
        Err(MysqlError::Privilege { grant, .. }) => {
            warnings.push(format!(
                "the login lacks {grant}: the snapshot was dumped through one connection (GRANT RELOAD for parallel, locked snapshots)"
            ));
            let mut one = vec![workers.remove(0)];
            for w in workers.drain(..) {
                w.close();
            }
            start_workers(&mut one)?;
            let dbs = read_schema(&mut one[0])?;
            let mut coords = None;
            if info.log_bin && info.flavor == Flavor::Mariadb {
                let r = one[0].rows(
                    "read the snapshot's binlog position",
                    "SHOW STATUS LIKE 'binlog_snapshot_%'",
                )?;
                let mut file = String::new();
                let mut pos = 0;
                for row in r {
                    let mut it = row.into_iter().map(text);
                    match (it.next().unwrap_or_default().as_str(), it.next()) {
                        ("Binlog_snapshot_file", Some(v)) => file = v,
                        ("Binlog_snapshot_position", Some(v)) => pos = v.parse().unwrap_or(0),
                        _ => {}
                    }
                }
                if !file.is_empty() {
                    coords = Some(Coordinates {
                        file,
                        pos,
                        gtid: None,
                    });
                }
            }
            let at = server_now(&mut one[0])?;
            Ok(Consistent {
                workers: one,
                coords,
                at,
                method: "single-transaction",
                dbs,
            })
        }
        Err(e) => Err(e),
    }
}

fn server_now(s: &mut Session) -> Result<DateTime<Utc>> {
    let t = s
        .value("read the server's clock", "SELECT UTC_TIMESTAMP(6)")?
        .unwrap_or_default();
    parse_server_time(&t).ok_or_else(|| MysqlError::Sql {
        server: s.server.clone(),
        what: "read the server's clock".into(),
        reason: format!("unexpected time {t:?}"),
        lost: false,
    })
}

/// Parses `YYYY-MM-DD hh:mm:ss[.ffffff]` as UTC.
pub fn parse_server_time(t: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

fn coordinates(
    main: &mut Session,
    info: &ServerInfo,
    warnings: &mut Vec<String>,
) -> Result<(Option<Coordinates>, DateTime<Utc>)> {
    let at = server_now(main)?;
    if !info.log_bin {
        return Ok((None, at));
    }
    let status = match main.rows("read the binlog position", "SHOW MASTER STATUS") {
        Ok(r) => r,
        Err(MysqlError::Privilege { grant, .. }) => {
            warnings.push(format!(
                "the login lacks {grant}: binlog coordinates were not recorded"
            ));
            return Ok((None, at));
        }
        Err(e) => return Err(e),
    };
    let Some(row) = status.into_iter().next() else {
        return Ok((None, at));
    };
    let file = text(row.first().cloned().flatten());
    let pos = text(row.get(1).cloned().flatten()).parse().unwrap_or(0);
    let gtid = match info.flavor {
        Flavor::Mariadb => main.value("read the GTID position", "SELECT @@gtid_binlog_pos")?,
        Flavor::Mysql => row.get(4).cloned().flatten().map(|b| text(Some(b))),
    }
    .filter(|g| !g.is_empty());
    Ok((Some(Coordinates { file, pos, gtid }), at))
}

/// Cuts tables into jobs. Runs inside a worker's snapshot, so MIN/MAX are consistent.
fn plan(s: &mut Session, dbs: &[DatabaseInfo], chunk_bytes: u64) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for (di, db) in dbs.iter().enumerate() {
        for (ti, t) in db.tables.iter().enumerate() {
            if t.kind != "table" {
                continue;
            }
            let mut filters = vec![String::new()];
            // Ranges of about `chunk_bytes` (64 MiB: many content-defined
            // chunks each, so the few chunks at a range's ends are all that a
            // moved cut costs in deduplication). The engine's size estimate
            // drifts, but the power-of-two stride only changes when the
            // estimate doubles or halves, and then keeps every other cut.
            if t.int_key && t.data_length > chunk_bytes {
                let k = ident(&t.primary_key[0]);
                let r = s.rows(
                    "find the key range",
                    &format!(
                        "SELECT MIN({k}), MAX({k}) FROM {}.{}",
                        ident(&db.name),
                        ident(&t.name)
                    ),
                )?;
                let row = r.into_iter().next().unwrap_or_default();
                let lo = text(row.first().cloned().flatten()).parse::<i128>();
                let hi = text(row.get(1).cloned().flatten()).parse::<i128>();
                if let (Ok(lo), Ok(hi)) = (lo, hi) {
                    filters = key_ranges(&k, lo, hi, t.data_length.div_ceil(chunk_bytes));
                }
            }
            let weight = t.data_length / filters.len() as u64;
            for (ci, f) in filters.into_iter().enumerate() {
                jobs.push(Job {
                    db: di,
                    table: ti,
                    chunk: ci,
                    filter: f,
                    weight,
                });
            }
        }
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.weight));
    Ok(jobs)
}

/// `WHERE` clauses covering every key, cut at multiples of a power-of-two
/// stride so that the cuts stay put while a table grows.
pub fn key_ranges(key: &str, lo: i128, hi: i128, pieces: u64) -> Vec<String> {
    let span = (hi - lo + 1).max(1) as u128;
    let stride = span
        .div_ceil(pieces.max(1) as u128)
        .max(1024)
        .next_power_of_two() as i128;
    let first = lo.div_euclid(stride) + 1;
    let last = hi.div_euclid(stride);
    if first > last {
        return vec![String::new()];
    }
    let mut out = vec![format!(" WHERE {key} < {}", first * stride)];
    for k in first..last {
        out.push(format!(
            " WHERE {key} >= {} AND {key} < {}",
            k * stride,
            (k + 1) * stride
        ));
    }
    out.push(format!(" WHERE {key} >= {}", last * stride));
    out
}

fn dump_all(
    writer: &BackupWriter<'_>,
    workers: Vec<Session>,
    dbs: &[DatabaseInfo],
    jobs: Vec<Job>,
    counters: &Counters,
) -> Result<Vec<(Job, Dumped)>> {
    let queue = Mutex::new(VecDeque::from(jobs));
    let results = Mutex::new(Vec::new());
    let failure: Mutex<Option<MysqlError>> = Mutex::new(None);
    let abort = AtomicBool::new(false);
    std::thread::scope(|sc| {
        for mut w in workers {
            let (queue, results, failure, abort) = (&queue, &results, &failure, &abort);
            sc.spawn(move || {
                loop {
                    let Some(job) = queue.lock().expect("lock").pop_front() else {
                        break;
                    };
                    if abort.load(Ordering::Relaxed) {
                        break;
                    }
                    let t = &dbs[job.db].tables[job.table];
                    let _span =
                        tracing::debug_span!("dump", table = %t.name, chunk = job.chunk).entered();
                    match dump_chunk(
                        &mut w,
                        writer,
                        &dbs[job.db].name,
                        t,
                        &job.filter,
                        counters,
                        abort,
                    ) {
                        Ok(d) => {
                            counters.chunks_done.fetch_add(1, Ordering::Relaxed);
                            results.lock().expect("lock").push((job, d));
                        }
                        Err(e) => {
                            abort.store(true, Ordering::Relaxed);
                            let mut f = failure.lock().expect("lock");
                            if f.is_none() {
                                *f = Some(e);
                            }
                            break;
                        }
                    }
                }
                w.close();
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e);
    }
    Ok(results.into_inner().expect("lock"))
}

fn dump_chunk(
    s: &mut Session,
    writer: &BackupWriter<'_>,
    db: &str,
    t: &TableInfo,
    filter: &str,
    counters: &Counters,
    abort: &AtomicBool,
) -> Result<Dumped> {
    let order = if t.primary_key.is_empty() {
        String::new()
    } else {
        let k: Vec<String> = t.primary_key.iter().map(|c| ident(c)).collect();
        format!(" ORDER BY {}", k.join(", "))
    };
    let sql = format!(
        "SELECT {} FROM {}.{}{filter}{order}",
        t.select_list(),
        ident(db),
        ident(&t.name)
    );
    let what = format!("dump {}.{}", ident(db), ident(&t.name));
    let server = s.server.clone();
    let account = s.account().to_string();
    let (rt, conn) = s.raw();
    let result = rt
        .block_on(mysql_async::prelude::Queryable::query_iter(conn, sql))
        .map_err(|e| crate::server::sql_error(&server, &account, &what, e))?;
    let mut reader = RowReader {
        rt,
        result,
        buf: Vec::with_capacity(READ_BATCH + 64 * 1024),
        pos: 0,
        done: false,
        rows: 0,
        error: None,
        abort,
    };
    let saved = writer.save_stream(&mut reader, |n| {
        counters.bytes.fetch_add(n, Ordering::Relaxed);
    });
    if let Some(e) = reader.error.take() {
        return Err(crate::server::sql_error(&server, &account, &what, e));
    }
    if abort.load(Ordering::Relaxed) && !reader.done {
        return Err(MysqlError::Interrupted);
    }
    let (content, bytes) = saved?;
    counters.rows.fetch_add(reader.rows, Ordering::Relaxed);
    Ok(Dumped {
        content,
        bytes,
        rows: reader.rows,
    })
}

const READ_BATCH: usize = 256 * 1024;

/// Rows of a running query as a byte stream in the dump format.
struct RowReader<'a> {
    rt: &'a tokio::runtime::Runtime,
    result: mysql_async::QueryResult<'a, 'static, mysql_async::TextProtocol>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    rows: u64,
    error: Option<mysql_async::Error>,
    abort: &'a AtomicBool,
}

impl Read for RowReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            if self.abort.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("snapshot aborted"));
            }
            self.buf.clear();
            self.pos = 0;
            let RowReader {
                rt,
                result,
                buf,
                rows,
                ..
            } = self;
            let r = rt.block_on(async {
                while buf.len() < READ_BATCH {
                    match result.next().await? {
                        Some(row) => {
                            let values = row.unwrap_raw();
                            encode_fields(values.iter().map(field), buf);
                            *rows += 1;
                        }
                        None => return Ok(true),
                    }
                }
                Ok::<bool, mysql_async::Error>(false)
            });
            match r {
                Ok(done) => self.done = done,
                Err(e) => {
                    self.error = Some(e);
                    return Err(std::io::Error::other("the dump query failed"));
                }
            }
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
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
