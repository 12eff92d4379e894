//! What a running replication rule reports: a status snapshot written to
//! `status.json` in its state directory every second (read by `lifeboat
//! replicate status`), and the same as OpenMetrics text.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifeboat_vault::openmetrics::{CONTENT_TYPE, Scrape, Value};
use serde::{Deserialize, Serialize};

use crate::error::{BucketError, Result};

/// Status of one replication rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RuleStatus {
    /// Rule id (its state directory's name).
    pub rule: String,
    /// Source bucket address.
    pub from: String,
    /// Destination bucket address.
    pub to: String,
    /// Key prefix filter ("" = all).
    pub prefix: String,
    /// `replicate` or `ignore`.
    pub delete_markers: String,
    /// `starting`, `backfilling`, `replicating`, `stopped`.
    pub phase: String,
    /// Process id of the replicator.
    pub pid: u32,
    /// When this status was written (RFC 3339).
    pub updated: String,
    /// When this run started (RFC 3339).
    pub started: String,
    /// Whether the replicator process is alive and the status is fresh (set by readers).
    #[serde(default)]
    pub running: bool,
    /// Objects waiting to be copied or deleted.
    pub backlog_objects: u64,
    /// Their bytes (as last listed).
    pub backlog_bytes: u64,
    /// Age of the oldest waiting change, seconds.
    pub oldest_pending_s: f64,
    /// Copies running now.
    pub in_flight: u64,
    /// Objects copied by this run.
    pub copied_objects: u64,
    /// Bytes copied by this run.
    pub copied_bytes: u64,
    /// Objects deleted at the destination by this run.
    pub deleted_objects: u64,
    /// Failed attempts (each is retried or parked).
    pub failures: u64,
    /// Objects parked after a permanent failure (retried when they change).
    pub failed_objects: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_time: Option<String>,
    /// Replication lag (source write → visible at the destination), median over the last 5 minutes, seconds.
    pub lag_p50_s: Option<f64>,
    /// 99th percentile of the same.
    pub lag_p99_s: Option<f64>,
    /// Largest lag in the window.
    pub lag_max_s: Option<f64>,
    /// Lag samples in the window.
    pub lag_samples: u64,
    /// Source objects the rule tracks.
    pub objects_tracked: u64,
}

/// A sliding window of lag samples.
#[derive(Debug, Default)]
pub struct LagWindow {
    samples: VecDeque<(Instant, f64)>,
}

const WINDOW: Duration = Duration::from_secs(300);
const MAX_SAMPLES: usize = 100_000;

impl LagWindow {
    /// Adds a sample (seconds).
    pub fn add(&mut self, lag_s: f64) {
        let now = Instant::now();
        self.samples.push_back((now, lag_s.max(0.0)));
        while self.samples.len() > MAX_SAMPLES
            || self.samples.front().is_some_and(|(t, _)| now - *t > WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// (p50, p99, max, count) of the window.
    pub fn quantiles(&mut self) -> (Option<f64>, Option<f64>, Option<f64>, u64) {
        let now = Instant::now();
        while self.samples.front().is_some_and(|(t, _)| now - *t > WINDOW) {
            self.samples.pop_front();
        }
        let mut v: Vec<f64> = self.samples.iter().map(|s| s.1).collect();
        if v.is_empty() {
            return (None, None, None, 0);
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
        (
            Some(q(0.5)),
            Some(q(0.99)),
            v.last().copied(),
            v.len() as u64,
        )
    }
}

/// The default root of replication state: `$XDG_STATE_HOME/lifeboat/replication`
/// or `~/.local/state/lifeboat/replication`.
pub fn default_state_root() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    base.join("lifeboat/replication")
}

/// Writes a status atomically into `dir/status.json`.
pub fn write_status(dir: &Path, s: &RuleStatus) -> Result<()> {
    let tmp = dir.join("status.json.tmp");
    let body = serde_json::to_vec_pretty(s).expect("status serializes");
    std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, dir.join("status.json")))
        .map_err(|e| BucketError::State {
            path: dir.display().to_string(),
            reason: format!("cannot write status.json: {e}"),
        })
}

fn alive(pid: u32) -> bool {
    rustix::process::Pid::from_raw(pid as i32)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// Reads the status of every rule below `root` (or of the rule whose state
/// directory `root` is), sorted by rule id.
pub fn read_statuses(root: &Path) -> Result<Vec<RuleStatus>> {
    let mut dirs = Vec::new();
    if root.join("status.json").exists() {
        dirs.push(root.to_path_buf());
    } else if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            if e.path().join("status.json").exists() {
                dirs.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    for d in dirs {
        let p = d.join("status.json");
        let raw = std::fs::read(&p).map_err(|e| BucketError::State {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut s: RuleStatus = serde_json::from_slice(&raw).map_err(|e| BucketError::State {
            path: p.display().to_string(),
            reason: format!("unreadable: {e}"),
        })?;
        let fresh = chrono::DateTime::parse_from_rfc3339(&s.updated)
            .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds() < 15)
            .unwrap_or(false);
        s.running = s.phase != "stopped" && fresh && alive(s.pid);
        out.push(s);
    }
    out.sort_by(|a, b| a.rule.cmp(&b.rule));
    Ok(out)
}

/// A number of a rule's status, as a sample's value.
type Field = fn(&RuleStatus) -> Value;

/// The gauges and counters of a rule's status: sample name, type, help, value.
const SERIES: [(&str, bool, &str, Field); 9] = [
    (
        "lifeboat_replication_up",
        false,
        "1 when the replicator of the rule runs.",
        |r| r.running.into(),
    ),
    (
        "lifeboat_replication_backlog_objects",
        false,
        "Objects waiting to be replicated.",
        |r| r.backlog_objects.into(),
    ),
    (
        "lifeboat_replication_backlog_bytes",
        false,
        "Bytes waiting to be replicated.",
        |r| r.backlog_bytes.into(),
    ),
    (
        "lifeboat_replication_oldest_pending_seconds",
        false,
        "Age of the oldest waiting change.",
        |r| r.oldest_pending_s.into(),
    ),
    (
        "lifeboat_replication_copied_objects_total",
        true,
        "Objects copied since the replicator started.",
        |r| r.copied_objects.into(),
    ),
    (
        "lifeboat_replication_copied_bytes_total",
        true,
        "Bytes copied since the replicator started.",
        |r| r.copied_bytes.into(),
    ),
    (
        "lifeboat_replication_deleted_objects_total",
        true,
        "Objects deleted at the destination since the replicator started.",
        |r| r.deleted_objects.into(),
    ),
    (
        "lifeboat_replication_failures_total",
        true,
        "Failed copy attempts since the replicator started.",
        |r| r.failures.into(),
    ),
    (
        "lifeboat_replication_failed_objects",
        false,
        "Objects parked after a permanent failure.",
        |r| r.failed_objects.into(),
    ),
];

/// The labels of a rule.
fn rule_labels(r: &RuleStatus) -> [(&'static str, &str); 3] {
    [("rule", &r.rule), ("from", &r.from), ("to", &r.to)]
}

/// OpenMetrics text of some rules' status (the lag's quantiles as a gauge
/// with a `quantile` label, the window's samples as `…_lag_seconds_count`).
pub fn prometheus(rules: &[RuleStatus]) -> String {
    let mut o = Scrape::new();
    for (name, counter, help, field) in SERIES {
        let family = if counter {
            o.counter(name, help)
        } else {
            o.gauge(name, help)
        };
        for r in rules {
            family.sample(&rule_labels(r), field(r));
        }
    }
    let lag = o.gauge(
        "lifeboat_replication_lag_seconds",
        "Time from a source write to the object being visible at the destination (last 5 minutes).",
    );
    for r in rules {
        let [rule, from, to] = rule_labels(r);
        for (q, v) in [("0.5", r.lag_p50_s), ("0.99", r.lag_p99_s)] {
            if let Some(v) = v {
                lag.sample(&[rule, from, to, ("quantile", q)], v);
            }
        }
    }
    let samples = o.gauge(
        "lifeboat_replication_lag_seconds_count",
        "Lag samples in the last 5 minutes.",
    );
    for r in rules {
        samples.sample(&rule_labels(r), r.lag_samples);
    }
    o.text()
}

/// Serves the rule's Prometheus text on `addr` (any path).
pub(crate) async fn serve_metrics(addr: &str, text: Arc<Mutex<String>>) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| BucketError::BadAddress {
            address: addr.to_string(),
            reason: format!("cannot listen for metrics: {e}"),
        })?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let text = text.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = 0;
                while got < buf.len() {
                    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf[got..]))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                        Ok(Ok(n)) => got += n,
                    }
                    if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let body = text.lock().expect("metrics lock").clone();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_window() {
        let mut w = LagWindow::default();
        assert_eq!(w.quantiles().3, 0);
        for i in 1..=100 {
            w.add(i as f64 / 10.0);
        }
        let (p50, p99, max, n) = w.quantiles();
        assert_eq!((p50, p99, max, n), (Some(5.0), Some(9.9), Some(10.0), 100));
    }

    #[test]
    fn prometheus_text_names_every_rule() {
        let r = RuleStatus {
            rule: "r1".into(),
            from: "file:///a\"b".into(),
            lag_p99_s: Some(1.5),
            backlog_objects: 7,
            ..RuleStatus::default()
        };
        let t = prometheus(&[r]);
        assert!(t.contains("lifeboat_replication_backlog_objects{rule=\"r1\",from=\"file:///a\\\"b\",to=\"\"} 7\n"), "{t}");
        assert!(t.contains("quantile=\"0.99\"} 1.5\n"), "{t}");
        assert!(
            t.contains("# TYPE lifeboat_replication_copied_objects counter\n"),
            "{t}"
        );
        assert!(t.contains("lifeboat_replication_lag_seconds_count{rule=\"r1\",from=\"file:///a\\\"b\",to=\"\"} 0\n"), "{t}");
        assert!(t.ends_with("# EOF\n"), "{t}");
    }
}
