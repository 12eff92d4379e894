//! Loading a snapshot into a server.
//!
//! ```text
//! read the point's trees: databases → database.json, tables → table.json + data chunks
//! check every target database is empty (or --force: drop it), before changing anything
//! create databases and tables (sequences get their next value back)
//! load all data chunks in parallel: N sessions, each LOAD DATA LOCAL INFILE fed
//!     straight from the vault (a reader thread per load fetches the chunk's blobs);
//!     foreign key and unique checks off, binlog off unless asked; rows counted
//!     against the snapshot and warnings reported
//! views (in dependency order), routines, triggers, events — after the data, so
//!     triggers do not fire on restored rows; users and grants when asked
//! ```

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use lifeboat_vault::tree::Node;
use lifeboat_vault::{Id, Index, RecoveryPoint, Vault, VaultError};

use crate::error::{MysqlError, Result};
use crate::rows::LOAD_FORMAT;
use crate::schema::{DatabaseInfo, Object, TableInfo};
use crate::server::{Dsn, Session, ident, literal};
use crate::snapshot::{Counters, SnapshotMeta, TableEntry, Users};

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Only these databases of the point (default: all).
    pub databases: Option<Vec<String>>,
    /// Restore database `from` as `to`.
    pub renames: Vec<(String, String)>,
    /// Replace non-empty target databases.
    pub force: bool,
    /// Sessions loading in parallel.
    pub parallel: usize,
    /// Also restore users and grants (when the point has them).
    pub users: bool,
    /// Write the restored rows into the target's binary log.
    pub write_binlog: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            databases: None,
            renames: Vec::new(),
            force: false,
            parallel: crate::default_parallel(),
            users: false,
            write_binlog: false,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreReport {
    /// (database in the point, database on the target).
    pub databases: Vec<(String, String)>,
    /// Tables created.
    pub tables: u64,
    /// Rows loaded.
    pub rows: u64,
    /// Bytes of row data loaded.
    pub bytes: u64,
    /// Views, routines, triggers and events created.
    pub objects: u64,
    /// Users created.
    pub users: u64,
    /// Things the user should look at.
    pub warnings: Vec<String>,
    /// Wall time.
    pub duration_s: f64,
}

/// A table of the point, as read from the vault.
#[derive(Debug)]
struct TablePlan {
    entry: TableEntry,
    chunks: Vec<Node>,
}

/// A database of the point, as read from the vault.
#[derive(Debug)]
struct DbPlan {
    source: String,
    target: String,
    header: DatabaseInfo,
    tables: Vec<TablePlan>,
}

/// Reads a file node's bytes.
pub fn read_file(vault: &Vault, index: &Index, node: &Node) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(node.size as usize);
    for id in &node.content {
        out.extend_from_slice(&vault.read_blob(index, id)?);
    }
    Ok(out)
}

fn read_json<T: serde::de::DeserializeOwned>(
    vault: &Vault,
    index: &Index,
    node: &Node,
    what: &str,
) -> Result<T> {
    serde_json::from_slice(&read_file(vault, index, node)?).map_err(|e| {
        MysqlError::Vault(VaultError::Corrupt {
            object: what.to_string(),
            reason: format!("bad JSON: {e}"),
        })
    })
}

fn child<'t>(tree: &'t lifeboat_vault::Tree, name: &str, point: &Id) -> Result<&'t Node> {
    tree.find(name.as_bytes())
        .ok_or_else(|| MysqlError::BadPoint {
            point: point.short(),
            reason: format!("its tree has no `{name}`: not a mysql snapshot"),
        })
}

/// The snapshot meta of a `mysql` point.
pub fn snapshot_meta(id: &Id, point: &RecoveryPoint) -> Result<SnapshotMeta> {
    if point.kind != crate::KIND_SNAPSHOT {
        return Err(MysqlError::BadPoint {
            point: id.short(),
            reason: format!(
                "it is a `{}` point, not a mysql snapshot (see `lifeboat points list`)",
                point.kind
            ),
        });
    }
    serde_json::from_value(point.meta.clone()).map_err(|e| MysqlError::BadPoint {
        point: id.short(),
        reason: format!("unreadable snapshot meta: {e}"),
    })
}

fn plan(
    vault: &Vault,
    index: &Index,
    id: &Id,
    point: &RecoveryPoint,
    opts: &RestoreOptions,
) -> Result<(Vec<DbPlan>, Option<Users>)> {
    let root = vault.read_tree(index, &point.tree)?;
    let dbs_node = child(&root, "databases", id)?;
    let dbs_tree = vault.read_tree(index, &dbs_node.subtree.unwrap_or_default())?;
    let in_point: Vec<String> = dbs_tree.nodes.iter().map(|n| n.name.clone()).collect();
    if let Some(w) = &opts.databases {
        for d in w {
            if !in_point.contains(d) {
                return Err(MysqlError::Usage(format!(
                    "database `{d}` is not in recovery point {} (it has: {})",
                    id.short(),
                    in_point.join(", ")
                )));
            }
        }
    }
    for (from, _) in &opts.renames {
        if !in_point.contains(from) {
            return Err(MysqlError::Usage(format!(
                "--rename {from}=…: database `{from}` is not in recovery point {}",
                id.short()
            )));
        }
    }
    let mut out = Vec::new();
    for dn in &dbs_tree.nodes {
        if opts
            .databases
            .as_ref()
            .is_some_and(|w| !w.contains(&dn.name))
        {
            continue;
        }
        let t = vault.read_tree(index, &dn.subtree.unwrap_or_default())?;
        let header: DatabaseInfo = read_json(
            vault,
            index,
            child(&t, "database.json", id)?,
            "database.json",
        )?;
        let tables_tree =
            vault.read_tree(index, &child(&t, "tables", id)?.subtree.unwrap_or_default())?;
        let mut tables = Vec::new();
        for tn in &tables_tree.nodes {
            let tt = vault.read_tree(index, &tn.subtree.unwrap_or_default())?;
            let entry: TableEntry =
                read_json(vault, index, child(&tt, "table.json", id)?, "table.json")?;
            let chunks = tt
                .nodes
                .iter()
                .filter(|n| n.name.starts_with("data-"))
                .cloned()
                .collect();
            tables.push(TablePlan { entry, chunks });
        }
        let target = opts
            .renames
            .iter()
            .find(|(f, _)| f == &dn.name)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| dn.name.clone());
        out.push(DbPlan {
            source: dn.name.clone(),
            target,
            header,
            tables,
        });
    }
    let users = if opts.users {
        match root.find(b"users.json") {
            Some(n) => Some(read_json(vault, index, n, "users.json")?),
            None => {
                return Err(MysqlError::Usage(format!(
                    "recovery point {} holds no users (it was taken without --users)",
                    id.short()
                )));
            }
        }
    } else {
        None
    };
    Ok((out, users))
}

/// Restores a `mysql` point into the server at `dsn`.
pub fn restore(
    vault: &Vault,
    id: &Id,
    point: &RecoveryPoint,
    dsn: &Dsn,
    opts: &RestoreOptions,
    counters: &Counters,
) -> Result<RestoreReport> {
    let started = Instant::now();
    snapshot_meta(id, point)?;
    let index = vault.load_index()?;
    let (dbs, users) = plan(vault, &index, id, point, opts)?;
    let mut main = Session::connect(dsn)?;
    let mut report = RestoreReport::default();
    // Refuse before changing anything.
    for d in &dbs {
        let n: u64 = main
            .value(
                "inspect the target",
                &format!(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {}",
                    literal(&d.target)
                ),
            )?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if n > 0 && !opts.force {
            return Err(MysqlError::TargetNotEmpty {
                server: main.server.clone(),
                database: d.target.clone(),
                objects: n,
            });
        }
    }
    prepare_session(&mut main, opts, &mut report.warnings)?;
    for d in &dbs {
        let t = ident(&d.target);
        if opts.force {
            main.exec(
                "drop the target database",
                &format!("DROP DATABASE IF EXISTS {t}"),
            )?;
        }
        let mut create = format!("CREATE DATABASE IF NOT EXISTS {t}");
        if !d.header.charset.is_empty() {
            create.push_str(&format!(" CHARACTER SET {}", d.header.charset));
        }
        if !d.header.collation.is_empty() {
            create.push_str(&format!(" COLLATE {}", d.header.collation));
        }
        main.exec("create a database", &create)?;
        main.exec("use the database", &format!("USE {t}"))?;
        for tp in &d.tables {
            let info = &tp.entry.info;
            main.exec(
                &format!("create table {t}.{}", ident(&info.name)),
                &info.create,
            )?;
            if let Some(next) = &info.sequence_next {
                main.exec(
                    "set a sequence",
                    &format!("SELECT SETVAL({}, {next}, 0)", ident(&info.name)),
                )?;
            }
            report.tables += 1;
        }
        report.databases.push((d.source.clone(), d.target.clone()));
    }
    load_data(vault, &index, dsn, &dbs, opts, counters, &mut report)?;
    for d in &dbs {
        main.exec("use the database", &format!("USE {}", ident(&d.target)))?;
        report.objects += create_objects(&mut main, d)?;
    }
    if let Some(users) = users {
        for u in users {
            let acct = format!("{}@{}", literal(&u.user), literal(&u.host));
            let exists = main
                .value(
                    "look up a user",
                    &format!(
                        "SELECT COUNT(*) FROM mysql.user WHERE User = {} AND Host = {}",
                        literal(&u.user),
                        literal(&u.host)
                    ),
                )?
                .is_some_and(|v| v != "0");
            if exists && !opts.force {
                let same = main.value("read a user", &format!("SHOW CREATE USER {acct}"))?
                    == Some(u.create.clone())
                    && main.column("read grants", &format!("SHOW GRANTS FOR {acct}"))? == u.grants;
                if !same {
                    report.warnings.push(format!(
                        "user {acct} exists on the target with other settings or grants: left as it is (--force replaces it)"
                    ));
                }
                continue;
            }
            if exists {
                main.exec("drop a user", &format!("DROP USER {acct}"))?;
            }
            main.exec("create a user", &u.create)?;
            for g in &u.grants {
                main.exec("grant", g)?;
            }
            report.users += 1;
        }
    }
    main.close();
    report.rows = counters.rows.load(Ordering::Relaxed);
    report.bytes = counters.bytes.load(Ordering::Relaxed);
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn prepare_session(
    s: &mut Session,
    opts: &RestoreOptions,
    warnings: &mut Vec<String>,
) -> Result<()> {
    s.exec(
        "prepare the session",
        "SET SESSION foreign_key_checks = 0, unique_checks = 0",
    )?;
    if !opts.write_binlog {
        match s.exec(
            "keep the restore out of the binlog",
            "SET SESSION sql_log_bin = 0",
        ) {
            Ok(()) => {}
            Err(MysqlError::Privilege { .. }) => {
                let w = "the login may not turn the binlog off (BINLOG ADMIN or SUPER): the restored rows were written to the target's binary log".to_string();
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates views (retrying those that depend on views not made yet), then
/// routines, triggers and events, each under the sql_mode it was made with.
fn create_objects(s: &mut Session, d: &DbPlan) -> Result<u64> {
    let rename = |sql: &str| -> String {
        if d.source == d.target {
            sql.to_string()
        } else {
            sql.replace(
                &format!("{}.", ident(&d.source)),
                &format!("{}.", ident(&d.target)),
            )
        }
    };
    let mut n = 0;
    // Each object is created as it was: under its sql_mode, client character
    // set (string literals in its body), and time zone (events).
    let create = |s: &mut Session, o: &Object| -> Result<()> {
        let mut set = vec![format!("sql_mode = {}", literal(&o.sql_mode))];
        if !o.charset_client.is_empty() {
            set.push(format!(
                "character_set_client = {}",
                literal(&o.charset_client)
            ));
        }
        if !o.collation_connection.is_empty() {
            set.push(format!(
                "collation_connection = {}",
                literal(&o.collation_connection)
            ));
        }
        if !o.time_zone.is_empty() {
            set.push(format!("time_zone = {}", literal(&o.time_zone)));
        }
        s.exec(
            "prepare the session",
            &format!("SET SESSION {}", set.join(", ")),
        )?;
        s.exec(
            &format!("create {} {}", o.kind, ident(&o.name)),
            &rename(&o.create),
        )
    };
    let mut views: Vec<&Object> = d
        .header
        .objects
        .iter()
        .filter(|o| o.kind == "view")
        .collect();
    while !views.is_empty() {
        let mut left = Vec::new();
        let mut last_err = None;
        for v in &views {
            match create(s, v) {
                Ok(()) => n += 1,
                Err(e) => {
                    last_err = Some(e);
                    left.push(*v);
                }
            }
        }
        if left.len() == views.len() {
            return Err(last_err.expect("a failure"));
        }
        views = left;
    }
    for o in d.header.objects.iter().filter(|o| o.kind != "view") {
        create(s, o)?;
        n += 1;
    }
    s.exec(
        "reset the session",
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00', \
         character_set_client = binary, collation_connection = binary",
    )?;
    Ok(n)
}

struct LoadJob<'a> {
    db: &'a str,
    table: &'a TableInfo,
    chunk: &'a Node,
    rows: u64,
}

fn load_data(
    vault: &Vault,
    index: &Index,
    dsn: &Dsn,
    dbs: &[DbPlan],
    opts: &RestoreOptions,
    counters: &Counters,
    report: &mut RestoreReport,
) -> Result<()> {
    let mut jobs: Vec<LoadJob<'_>> = Vec::new();
    for d in dbs {
        for t in &d.tables {
            for c in &t.chunks {
                jobs.push(LoadJob {
                    db: &d.target,
                    table: &t.entry.info,
                    chunk: c,
                    rows: c
                        .attrs
                        .get("rows")
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0),
                });
            }
        }
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.chunk.size));
    counters
        .chunks_total
        .store(jobs.len() as u64, Ordering::Relaxed);
    let n = opts.parallel.max(1).min(jobs.len().max(1));
    let mut sessions = Vec::new();
    let mut warnings = Vec::new();
    for _ in 0..n {
        let mut s = Session::connect(dsn)?;
        prepare_session(&mut s, opts, &mut warnings)?;
        sessions.push(s);
    }
    report.warnings.extend(warnings);
    let queue = Mutex::new(jobs);
    let failure: Mutex<Option<MysqlError>> = Mutex::new(None);
    let load_warnings: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let abort = AtomicBool::new(false);
    std::thread::scope(|sc| {
        for mut s in sessions {
            let (queue, failure, load_warnings, abort) = (&queue, &failure, &load_warnings, &abort);
            sc.spawn(move || {
                loop {
                    // Largest first: pop from the front.
                    let job = {
                        let mut q = queue.lock().expect("lock");
                        if q.is_empty() {
                            None
                        } else {
                            Some(q.remove(0))
                        }
                    };
                    let Some(job) = job else { break };
                    if abort.load(Ordering::Relaxed) {
                        break;
                    }
                    match load_chunk(&mut s, vault, index, &job, counters) {
                        Ok(w) => {
                            counters.chunks_done.fetch_add(1, Ordering::Relaxed);
                            load_warnings.lock().expect("lock").extend(w);
                        }
                        Err(e) => {
                            abort.store(true, Ordering::Relaxed);
                            failure.lock().expect("lock").get_or_insert(e);
                            break;
                        }
                    }
                }
                s.close();
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e);
    }
    report
        .warnings
        .extend(load_warnings.into_inner().expect("lock"));
    Ok(())
}

fn load_chunk(
    s: &mut Session,
    vault: &Vault,
    index: &Index,
    job: &LoadJob<'_>,
    counters: &Counters,
) -> Result<Vec<String>> {
    let full = format!("{}.{}", ident(job.db), ident(&job.table.name));
    if job.chunk.content.is_empty() {
        return Ok(Vec::new());
    }
    let (cols, set) = job.table.load_list();
    let sql =
        format!("LOAD DATA LOCAL INFILE 'lifeboat' INTO TABLE {full} {LOAD_FORMAT} ({cols}){set}");
    let what = format!("load {full}");
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let read_error: Mutex<Option<VaultError>> = Mutex::new(None);
    let server = s.server.clone();
    let account = s.account().to_string();
    let (result, affected, warnings) = std::thread::scope(|sc| {
        sc.spawn(|| {
            for id in &job.chunk.content {
                match vault.read_blob(index, id) {
                    Ok(b) => {
                        counters.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                        if tx.blocking_send(Ok(Bytes::from(b))).is_err() {
                            break; // the load stopped
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                        *read_error.lock().expect("lock") = Some(e);
                        break;
                    }
                }
            }
            drop(tx);
        });
        let (rt, conn) = s.raw();
        conn.set_infile_handler(async move {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            Ok(Box::pin(stream) as mysql_async::InfileData)
        });
        let r = rt.block_on(mysql_async::prelude::Queryable::query_drop(
            &mut *conn, &sql,
        ));
        (r, conn.affected_rows(), conn.get_warnings())
    });
    if let Some(e) = read_error.into_inner().expect("lock") {
        return Err(e.into());
    }
    result.map_err(|e| crate::server::sql_error(&server, &account, &what, e))?;
    counters.rows.fetch_add(affected, Ordering::Relaxed);
    if affected != job.rows {
        return Err(MysqlError::Sql {
            server,
            what,
            reason: format!(
                "loaded {affected} rows where the snapshot holds {} (duplicate keys in the target?)",
                job.rows
            ),
            lost: false,
        });
    }
    let mut out = Vec::new();
    if warnings > 0 {
        for r in s.rows("read load warnings", "SHOW WARNINGS LIMIT 5")? {
            let msg = crate::server::text(r.get(2).cloned().flatten());
            out.push(format!("{full}: {msg}"));
        }
        if warnings > 5 {
            out.push(format!("{full}: … {} warnings in all", warnings));
        }
    }
    Ok(out)
}
