//! A snapshot's dump: tables cut into jobs (key ranges of big tables), the
//! jobs dumped by the workers in parallel, rows streamed through the
//! LOAD DATA text format into the vault.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use lifeboat_vault::{BackupWriter, Id};

use super::Counters;
use crate::error::{MysqlError, Result};
use crate::rows::encode_fields;
use crate::schema::{DatabaseInfo, TableInfo};
use crate::server::{Session, field, ident, text};

/// A part of a table to dump.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) db: usize,
    pub(super) table: usize,
    pub(super) chunk: usize,
    /// `WHERE …` for key ranges, or empty.
    pub(super) filter: String,
    pub(super) weight: u64,
}

/// What a dumped chunk became.
#[derive(Debug, Clone)]
pub(super) struct Dumped {
    pub(super) content: Vec<Id>,
    pub(super) bytes: u64,
    pub(super) rows: u64,
}

/// Cuts tables into jobs. Runs inside a worker's snapshot, so MIN/MAX are consistent.
pub(super) fn plan(s: &mut Session, dbs: &[DatabaseInfo], chunk_bytes: u64) -> Result<Vec<Job>> {
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

/// Dumps the jobs on the workers in parallel (each takes the next job);
/// the first failure stops them all.
pub(super) fn dump_all(
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

/// Dumps one chunk of a table through worker `s` into the vault.
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

/// Bytes of rows encoded at a time.
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
