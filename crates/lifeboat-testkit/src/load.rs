//! A load writer for database tests: one connection that inserts, updates and
//! deletes rows of a table at a steady pace and logs every change it saw
//! committed, with the GTID it got and when it started and ended. From the
//! log a test computes exactly what the table held at any GTID or moment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use mysql_async::prelude::Queryable;

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A new row.
    Insert,
    /// `val` changed.
    Update,
    /// The row was removed.
    Delete,
}

/// One committed change.
#[derive(Debug, Clone)]
pub struct Op {
    /// What it did.
    pub kind: OpKind,
    /// The row.
    pub id: i64,
    /// The row's value afterwards (inserts, updates).
    pub val: i64,
    /// The sequence number of its GTID (`@@last_gtid`).
    pub gtid_seq: u64,
    /// When the statement was sent.
    pub started: SystemTime,
    /// When the server's OK arrived.
    pub committed: SystemTime,
}

/// A running writer.
pub struct LoadWriter {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Vec<Op>, Option<String>)>,
}

fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

impl LoadWriter {
    /// Creates `table` (`db.name`; `id BIGINT PRIMARY KEY, val BIGINT, note
    /// VARCHAR(64)`) if needed and starts changing it every `pause`, as root
    /// on 127.0.0.1:`port`. Ids it inserts start after `id_base`.
    pub fn start(port: u16, table: &str, pause: Duration, id_base: i64) -> LoadWriter {
        LoadWriter::start_as(
            &format!("mysql://root@127.0.0.1:{port}"),
            table,
            pause,
            id_base,
        )
    }

    /// The same, logged in as `url` says (`mysql://user:password@host:port`).
    pub fn start_as(url: &str, table: &str, pause: Duration, id_base: i64) -> LoadWriter {
        let url = url.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let table = table.to_string();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut c = mysql_async::Conn::from_url(url).await.expect("load writer connects");
                c.query_drop(format!(
                    "CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, val BIGINT NOT NULL, note VARCHAR(64)) CHARACTER SET utf8mb4"
                ))
                .await
                .expect("create load table");
                ready_tx.send(()).unwrap();
                let mut ops = Vec::new();
                let mut live: Vec<i64> = Vec::new();
                let mut vals: BTreeMap<i64, i64> = BTreeMap::new();
                let mut next = id_base + 1;
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ id_base as u64;
                while !s.load(Ordering::Relaxed) {
                    let r = rng(&mut seed) % 10;
                    let (kind, id, val, sql) = if live.is_empty() || r < 6 {
                        let id = next;
                        next += 1;
                        let val = (rng(&mut seed) % 1_000_000) as i64;
                        (OpKind::Insert, id, val, format!("INSERT INTO {table} VALUES ({id}, {val}, 'row {id} 🚣')"))
                    } else if r < 9 {
                        let id = live[(rng(&mut seed) % live.len() as u64) as usize];
                        let val = vals[&id] + 1;
                        (OpKind::Update, id, val, format!("UPDATE {table} SET val = {val} WHERE id = {id}"))
                    } else {
                        let i = (rng(&mut seed) % live.len() as u64) as usize;
                        let id = live.swap_remove(i);
                        (OpKind::Delete, id, 0, format!("DELETE FROM {table} WHERE id = {id}"))
                    };
                    let started = SystemTime::now();
                    if let Err(e) = c.query_drop(&sql).await {
                        return (ops, Some(format!("{sql}: {e}")));
                    }
                    let committed = SystemTime::now();
                    match kind {
                        OpKind::Insert => {
                            live.push(id);
                            vals.insert(id, val);
                        }
                        OpKind::Update => {
                            vals.insert(id, val);
                        }
                        OpKind::Delete => {
                            vals.remove(&id);
                        }
                    }
                    let gtid: Option<String> = match c.query_first("SELECT @@last_gtid").await {
                        Ok(g) => g,
                        Err(e) => return (ops, Some(format!("SELECT @@last_gtid: {e}"))),
                    };
                    let gtid_seq = gtid
                        .and_then(|g| g.rsplit('-').next().and_then(|n| n.parse().ok()))
                        .unwrap_or(0);
                    ops.push(Op {
                        kind,
                        id,
                        val,
                        gtid_seq,
                        started,
                        committed,
                    });
                    tokio::time::sleep(pause).await;
                }
                let _ = c.disconnect().await;
                (ops, None)
            })
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("load writer started");
        LoadWriter { stop, handle }
    }

    /// Stops the writer; returns its log and the error that stopped it early, if any.
    pub fn stop(self) -> (Vec<Op>, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("load writer thread")
    }
}

/// The table's content (id → val) after applying, in order, the ops `keep` selects.
pub fn expected_state(ops: &[Op], keep: impl Fn(&Op) -> bool) -> BTreeMap<i64, i64> {
    let mut m = BTreeMap::new();
    for o in ops.iter().filter(|o| keep(o)) {
        match o.kind {
            OpKind::Insert | OpKind::Update => {
                m.insert(o.id, o.val);
            }
            OpKind::Delete => {
                m.remove(&o.id);
            }
        }
    }
    m
}

/// Parses `id\tval` lines (as from `MariaDb::sql("SELECT id, val …")`).
pub fn parse_state(text: &str) -> BTreeMap<i64, i64> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (a, b) = l.split_once('\t').expect("id<TAB>val");
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect()
}

/// The differences between two states, for assertion messages (at most 10).
pub fn state_diff(expected: &BTreeMap<i64, i64>, actual: &BTreeMap<i64, i64>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in expected {
        match actual.get(k) {
            None => out.push(format!("row {k} missing (expected val {v})")),
            Some(a) if a != v => out.push(format!("row {k}: val {a}, expected {v}")),
            _ => {}
        }
    }
    for (k, v) in actual {
        if !expected.contains_key(k) {
            out.push(format!("row {k} (val {v}) should not exist"));
        }
    }
    out.truncate(10);
    out
}

/// A whole second after `after` and before the last op that no op straddles
/// (started before it, committed at or after it): a time a point-in-time
/// restore (whose binlog stop is second-granular) reaches exactly.
pub fn clean_second(ops: &[Op], after: SystemTime) -> SystemTime {
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let last = secs(ops.last().expect("ops").committed);
    for s in secs(after) + 1..last {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        if !ops.iter().any(|o| o.started < t && o.committed >= t) {
            return t;
        }
    }
    panic!("no clean second after {after:?} before the end of the load");
}
