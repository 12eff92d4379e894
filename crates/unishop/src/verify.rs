//! `unishop verify`: compares a load log with a (recovered) database and
//! tells exactly which acknowledged orders are present and which were lost.
//!
//! An order of the log is *present* when the `orders` table has its id and —
//! when the log recorded the order's `created_at` — the same `created_at`. A
//! row with the id but another time is a new order that reused a lost id
//! after the recovery (AUTO_INCREMENT restarts after the newest recovered
//! order): it counts as missing and is listed as `replaced`.
//!
//! The data-loss window is the time from the last present order acknowledged
//! before the first lost one to the newest lost order's acknowledgement
//! (for the usual loss — a tail of the log — that is newest logged commit
//! minus newest present commit); 0 when nothing is missing.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use mysql_async::Value;
use mysql_async::prelude::*;
use serde::Serialize;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::load::LogLine;
use crate::util::{id_ranges, parse_time};

/// A log read from disk.
#[derive(Debug, Default)]
pub struct Log {
    /// Readable lines, in file order.
    pub lines: Vec<LogLine>,
    /// Line numbers (from 1) that are not a log line (e.g. a torn last line).
    pub unreadable: Vec<usize>,
}

/// Reads a load log.
pub fn read_log(path: &Path) -> Result<Log> {
    let f = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let mut log = Log::default();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<LogLine>(&line) {
            Ok(l) if parse_time(&l.committed_at).is_some() => log.lines.push(l),
            _ => log.unreadable.push(n + 1),
        }
    }
    Ok(log)
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The log file.
    pub log: String,
    /// Orders in the log.
    pub orders_in_log: u64,
    /// Log lines that could not be read.
    pub unreadable_log_lines: Vec<usize>,
    /// Orders of the log found in the database.
    pub present: u64,
    /// Orders of the log not found (or replaced), count.
    pub missing: u64,
    /// Their ids, ascending.
    pub missing_ids: Vec<u64>,
    /// The ids as ranges (`101-140, 145`).
    pub missing_ranges: String,
    /// Missing ids that the database has for another, newer order.
    pub replaced_ids: Vec<u64>,
    /// The newest present order (by acknowledgement): id.
    pub newest_present_order_id: Option<u64>,
    /// Its time in the database (`created_at`).
    pub newest_present_created_at: Option<String>,
    /// Its acknowledgement time in the log.
    pub newest_present_committed_at: Option<String>,
    /// The newest acknowledgement time in the log.
    pub newest_committed_in_log: Option<String>,
    /// The oldest acknowledgement time of a missing order.
    pub first_missing_committed_at: Option<String>,
    /// Seconds of acknowledged orders lost (see the module docs).
    pub data_loss_window_seconds: f64,
    /// The newest `created_at` in the `orders` table, log or not.
    pub newest_order_in_database: Option<String>,
}

const CREATED_AT: &str = "DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ')";

/// Compares `log` with the database.
#[tracing::instrument(skip(db), fields(database = %db.shown_url()))]
pub async fn verify(db: &Db, log_path: &Path) -> Result<VerifyReport> {
    let log = read_log(log_path)?;
    let mut c = db.conn().await?;
    let mut in_db: HashMap<u64, String> = HashMap::new();
    let mut ids: Vec<u64> = log.lines.iter().map(|l| l.order_id).collect();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(1000) {
        let marks = vec!["?"; chunk.len()].join(",");
        let params: Vec<Value> = chunk.iter().map(|id| Value::from(*id)).collect();
        let rows: Vec<(u64, String)> = c
            .exec(
                format!("SELECT id, {CREATED_AT} FROM orders WHERE id IN ({marks})"),
                params,
            )
            .await
            .map_err(|e| Error::db("read orders", e))?;
        in_db.extend(rows);
    }
    let newest_in_db: Option<Option<String>> = c
        .query_first(format!(
            "SELECT {CREATED_AT} FROM orders ORDER BY created_at DESC LIMIT 1"
        ))
        .await
        .map_err(|e| Error::db("read the newest order", e))?;
    drop(c);

    // Judge every log line; order them by acknowledgement time.
    let mut judged: Vec<(chrono::DateTime<chrono::Utc>, &LogLine, bool)> = log
        .lines
        .iter()
        .map(|l| {
            let present = match (in_db.get(&l.order_id), &l.created_at) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(db_time), Some(logged)) => same_time(db_time, logged),
            };
            (
                parse_time(&l.committed_at).expect("checked on read"),
                l,
                present,
            )
        })
        .collect();
    judged.sort_by_key(|(t, l, _)| (*t, l.order_id));
    let mut missing_ids: Vec<u64> = judged
        .iter()
        .filter(|(_, _, p)| !p)
        .map(|(_, l, _)| l.order_id)
        .collect();
    missing_ids.sort_unstable();
    missing_ids.dedup();
    let replaced_ids: Vec<u64> = missing_ids
        .iter()
        .copied()
        .filter(|id| in_db.contains_key(id))
        .collect();
    let newest_present = judged.iter().rev().find(|(_, _, p)| *p);
    let first_missing = judged.iter().find(|(_, _, p)| !p);
    let newest_missing = judged.iter().rev().find(|(_, _, p)| !p);
    let window = match (first_missing, newest_missing) {
        (Some((first_t, first_l, _)), Some((last_t, _, _))) => {
            // The last safe point: the newest present order acknowledged before the first loss.
            let safe = judged
                .iter()
                .rev()
                .find(|(t, _, p)| *p && t < first_t)
                .map(|(t, _, _)| *t)
                .or_else(|| parse_time(&first_l.started_at))
                .unwrap_or(*first_t);
            (*last_t - safe).num_microseconds().unwrap_or(0) as f64 / 1e6
        }
        _ => 0.0,
    };
    let present = judged.iter().filter(|(_, _, p)| *p).count() as u64;
    Ok(VerifyReport {
        log: log_path.display().to_string(),
        orders_in_log: log.lines.len() as u64,
        unreadable_log_lines: log.unreadable,
        present,
        missing: log.lines.len() as u64 - present,
        missing_ranges: id_ranges(&missing_ids),
        missing_ids,
        replaced_ids,
        newest_present_order_id: newest_present.map(|(_, l, _)| l.order_id),
        newest_present_created_at: newest_present
            .and_then(|(_, l, _)| in_db.get(&l.order_id).cloned()),
        newest_present_committed_at: newest_present.map(|(_, l, _)| l.committed_at.clone()),
        newest_committed_in_log: judged.last().map(|(_, l, _)| l.committed_at.clone()),
        first_missing_committed_at: first_missing.map(|(_, l, _)| l.committed_at.clone()),
        data_loss_window_seconds: window,
        newest_order_in_database: newest_in_db.flatten(),
    })
}

fn same_time(a: &str, b: &str) -> bool {
    match (parse_time(a), parse_time(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

impl VerifyReport {
    /// The report for people.
    pub fn text(&self) -> String {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let mut s = String::new();
        s += &format!(
            "log:                       {} ({} orders",
            self.log, self.orders_in_log
        );
        if !self.unreadable_log_lines.is_empty() {
            s += &format!(", unreadable lines: {:?}", self.unreadable_log_lines);
        }
        s += ")\n";
        s += &format!("orders present:            {}\n", self.present);
        s += &format!("orders missing:            {}", self.missing);
        if self.missing > 0 {
            s += &format!(" (ids {})", self.missing_ranges);
        }
        s += "\n";
        if !self.replaced_ids.is_empty() {
            s += &format!(
                "  of which replaced:       {} (ids reused by newer orders: {})\n",
                self.replaced_ids.len(),
                id_ranges(&self.replaced_ids)
            );
        }
        match self.newest_present_order_id {
            Some(id) => {
                s += &format!(
                    "newest present order:      #{id}, created {}, acknowledged {}\n",
                    or_dash(&self.newest_present_created_at),
                    or_dash(&self.newest_present_committed_at)
                )
            }
            None => s += "newest present order:      -\n",
        }
        s += &format!(
            "newest committed in log:   {}\n",
            or_dash(&self.newest_committed_in_log)
        );
        s += &format!(
            "newest order in database:  {}\n",
            or_dash(&self.newest_order_in_database)
        );
        s += &format!(
            "data loss window:          {:.6} s\n",
            self.data_loss_window_seconds
        );
        s
    }
}
