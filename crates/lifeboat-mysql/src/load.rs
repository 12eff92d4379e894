//! Loading a point's table data: every chunk through `LOAD DATA LOCAL INFILE`,
//! fed straight from the vault, in parallel sessions, largest chunks first,
//! each chunk's row count checked against the snapshot.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use lifeboat_vault::tree::Node;
use lifeboat_vault::{Index, Vault, VaultError};

use crate::error::{MysqlError, Result};
use crate::restore::{DbPlan, RestoreOptions, RestoreReport, prepare_session};
use crate::rows::LOAD_FORMAT;
use crate::schema::TableInfo;
use crate::server::{Dsn, Session, ident};
use crate::snapshot::Counters;

struct LoadJob<'a> {
    db: &'a str,
    table: &'a TableInfo,
    chunk: &'a Node,
    rows: u64,
}

pub(crate) fn load_data(
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
                    db: &d.shadow,
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

/// How often a chunk whose load the server chose as a deadlock's victim
/// (or whose lock wait timed out) is loaded again.
const LOAD_TRIES: u32 = 5;

/// Loads one chunk; again when the server rolled the load back as a
/// deadlock's victim (error 1213) or on a lock wait timeout (1205): chunks
/// of one table load side by side and InnoDB may pick one of them. A load
/// statement runs in its own transaction (autocommit), so a rolled-back one
/// left nothing behind.
fn load_chunk(
    s: &mut Session,
    vault: &Vault,
    index: &Index,
    job: &LoadJob<'_>,
    counters: &Counters,
) -> Result<Vec<String>> {
    let mut tries = 1;
    loop {
        match load_chunk_once(s, vault, index, job, counters) {
            Err(MysqlError::Sql { reason, .. })
                if tries < LOAD_TRIES
                    && (reason.ends_with("(error 1213)") || reason.ends_with("(error 1205)")) =>
            {
                tracing::info!(
                    "loading a chunk of {}.{} again ({reason})",
                    job.db,
                    job.table.name
                );
                std::thread::sleep(std::time::Duration::from_millis(100 * u64::from(tries)));
                tries += 1;
            }
            r => return r,
        }
    }
}

fn load_chunk_once(
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
