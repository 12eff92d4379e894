//! `unishop load`: places orders through the HTTP API at a steady rate and
//! appends one JSON line per committed order to a log — the yardstick of
//! every recovery drill's RPO.
//!
//! The schedule is open-loop: order `k` is sent at `start + k / rate`,
//! whatever happened to the ones before, so a slow or absent shop does not
//! lower the offered load. Each line is written with a single `write(2)` on a
//! file opened with `O_APPEND` as soon as the success answer has arrived, so
//! the log holds every acknowledged order even if the generator is killed a
//! moment later (it is synced to disk when the run ends):
//!
//! `{"order_id":N,"started_at":"…","committed_at":"…","created_at":"…"}`
//!
//! `started_at`: when the request was sent; `committed_at`: when the success
//! answer arrived (RFC 3339, UTC, µs, this machine's clock); `created_at`: the
//! order's time as the shop stored it, so that `verify` can tell a recovered
//! order from a new one that reused a lost order's id. Failed requests are
//! counted by kind in the report and never logged as committed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::util::rfc3339_micros;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Base URL of the shop (`http://127.0.0.1:8080`).
    pub url: String,
    /// Orders per second.
    pub rate: f64,
    /// How long.
    pub duration: Duration,
    /// Log of committed orders (appended to).
    pub log: PathBuf,
    /// Most requests in flight; a due request beyond it is counted as failed ("overloaded").
    pub max_in_flight: usize,
    /// Time limit of one request.
    pub timeout: Duration,
    /// Seed of the random choice of products.
    pub seed: u64,
}

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogLine {
    /// The order's id.
    pub order_id: u64,
    /// When the request was sent.
    pub started_at: String,
    /// When the success answer arrived.
    pub committed_at: String,
    /// The order's time as stored by the shop (absent in logs of other writers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// Latency figures of committed orders, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The log file.
    pub log: String,
    /// Orders due by the schedule.
    pub attempted: u64,
    /// Orders acknowledged by the shop (one log line each).
    pub committed: u64,
    /// Orders not acknowledged.
    pub failed: u64,
    /// Failures by kind (`HTTP 503`, `connection failed`, `timeout`, …).
    pub failures: BTreeMap<String, u64>,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Committed orders per second.
    pub committed_per_second: f64,
    /// Latency of committed orders.
    pub latency: Latency,
    /// `committed_at` of the first and the last committed order.
    pub first_committed_at: Option<String>,
    /// See `first_committed_at`.
    pub last_committed_at: Option<String>,
}

#[derive(Debug, Default)]
struct Tally {
    failures: BTreeMap<String, u64>,
    latencies_us: Vec<u64>,
    first: Option<String>,
    last: Option<String>,
}

struct Shared {
    client: reqwest::Client,
    orders_url: String,
    log: File,
    log_path: String,
    committed: AtomicU64,
    tally: Mutex<Tally>,
}

impl Shared {
    fn fail(&self, kind: String) {
        *self.tally.lock().unwrap().failures.entry(kind).or_default() += 1;
    }
}

/// xorshift64*: the product choice only needs to be varied and repeatable.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| Error::Other(format!("HTTP client: {e}")))
}

/// The ids of the products in stock, from `GET /api/products`.
pub async fn product_ids(client: &reqwest::Client, base: &str) -> Result<Vec<u64>> {
    let url = format!("{base}/api/products?limit=1000");
    let r = client
        .get(&url)
        .send()
        .await
        .map_err(|e| Error::Other(format!("GET {url}: {e}")))?;
    let status = r.status();
    let body = r
        .bytes()
        .await
        .map_err(|e| Error::Other(format!("GET {url}: {e}")))?;
    if !status.is_success() {
        return Err(Error::Other(format!(
            "GET {url}: {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let list: Vec<crate::shop::Product> = serde_json::from_slice(&body)
        .map_err(|e| Error::Other(format!("GET {url}: unexpected answer: {e}")))?;
    let ids: Vec<u64> = list
        .iter()
        .filter(|p| p.stock > 0)
        .map(|p| u64::from(p.id))
        .collect();
    if ids.is_empty() {
        return Err(Error::Other(format!(
            "{url}: no product in stock; run: unishop seed --products 50"
        )));
    }
    Ok(ids)
}

fn failure_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

async fn place_one(shared: Arc<Shared>, body: String) {
    let started_at = Utc::now();
    let t0 = Instant::now();
    let sent = shared
        .client
        .post(&shared.orders_url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let r = match sent {
        Ok(r) => r,
        Err(e) => return shared.fail(failure_kind(&e)),
    };
    let status = r.status();
    let bytes = match r.bytes().await {
        Ok(b) => b,
        Err(e) => return shared.fail(failure_kind(&e)),
    };
    if status != reqwest::StatusCode::CREATED {
        return shared.fail(format!("HTTP {}", status.as_u16()));
    }
    let committed_at = Utc::now();
    let latency = t0.elapsed();
    #[derive(Deserialize)]
    struct Answer {
        order_id: u64,
        created_at: Option<String>,
    }
    let Ok(a) = serde_json::from_slice::<Answer>(&bytes) else {
        return shared.fail("answer without order_id".into());
    };
    let line = LogLine {
        order_id: a.order_id,
        started_at: rfc3339_micros(started_at),
        committed_at: rfc3339_micros(committed_at),
        created_at: a.created_at,
    };
    let mut text = serde_json::to_string(&line).expect("serializable");
    text.push('\n');
    if let Err(e) = (&shared.log).write_all(text.as_bytes()) {
        // An order we cannot log must not vanish silently.
        tracing::error!(order_id = a.order_id, error = %e, log = %shared.log_path, "cannot append to the log");
        return shared.fail("log write failed".into());
    }
    shared.committed.fetch_add(1, Ordering::Relaxed);
    let mut t = shared.tally.lock().unwrap();
    t.latencies_us.push(latency.as_micros() as u64);
    if t.first.is_none() {
        t.first = Some(line.committed_at.clone());
    }
    t.last = Some(line.committed_at);
}

fn order_body(rng: &mut Rng, ids: &[u64]) -> String {
    let lines = 1 + rng.next(3).min(ids.len() - 1);
    let mut picked: Vec<u64> = Vec::new();
    while picked.len() < lines {
        let id = ids[rng.next(ids.len())];
        if !picked.contains(&id) {
            picked.push(id);
        }
    }
    let items: Vec<String> = picked
        .iter()
        .map(|id| format!(r#"{{"product_id":{id},"quantity":{}}}"#, 1 + rng.next(2)))
        .collect();
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Runs the load until the duration is over or `stop` resolves; waits for
/// the requests in flight, syncs the log and reports.
#[tracing::instrument(skip_all, fields(url = %opts.url, rate = opts.rate, log = %opts.log.display()))]
pub async fn run(opts: &LoadOptions, stop: impl Future<Output = ()>) -> Result<LoadReport> {
    if !(opts.rate > 0.0 && opts.rate <= 100_000.0) {
        return Err(Error::Other(format!(
            "--rate {} must be above 0 and at most 100000 orders per second",
            opts.rate
        )));
    }
    let base = opts.url.trim_end_matches('/').to_string();
    let client = http_client(opts.timeout)?;
    let ids = product_ids(&client, &base).await?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&opts.log)
        .map_err(|e| Error::Io {
            path: opts.log.display().to_string(),
            source: e,
        })?;
    let shared = Arc::new(Shared {
        client,
        orders_url: format!("{base}/api/orders"),
        log,
        log_path: opts.log.display().to_string(),
        committed: AtomicU64::new(0),
        tally: Mutex::new(Tally::default()),
    });
    let period = Duration::from_secs_f64(1.0 / opts.rate);
    let start = tokio::time::Instant::now();
    let end = start + opts.duration;
    let mut rng = Rng(opts.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut attempted = 0u64;
    let mut next_progress = start + Duration::from_secs(10);
    tokio::pin!(stop);
    loop {
        let due = start + period.mul_f64(attempted as f64);
        if due >= end {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = &mut stop => break,
        }
        while tasks.try_join_next().is_some() {}
        attempted += 1;
        if tasks.len() >= opts.max_in_flight {
            shared.fail("overloaded (too many requests in flight)".into());
        } else {
            tasks.spawn(place_one(shared.clone(), order_body(&mut rng, &ids)));
        }
        if due >= next_progress {
            let failed: u64 = shared.tally.lock().unwrap().failures.values().sum();
            tracing::info!(
                attempted,
                committed = shared.committed.load(Ordering::Relaxed),
                failed,
                "load running"
            );
            next_progress += Duration::from_secs(10);
        }
    }
    while tasks.join_next().await.is_some() {}
    let seconds = start.elapsed().as_secs_f64();
    let _ = shared.log.sync_all();
    let mut t = std::mem::take(&mut *shared.tally.lock().unwrap());
    t.latencies_us.sort_unstable();
    let committed = shared.committed.load(Ordering::Relaxed);
    Ok(LoadReport {
        log: shared.log_path.clone(),
        attempted,
        committed,
        failed: t.failures.values().sum(),
        failures: t.failures,
        seconds,
        committed_per_second: committed as f64 / seconds.max(1e-9),
        latency: Latency {
            p50_ms: percentile(&t.latencies_us, 0.50),
            p99_ms: percentile(&t.latencies_us, 0.99),
            max_ms: percentile(&t.latencies_us, 1.0),
        },
        first_committed_at: t.first,
        last_committed_at: t.last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_bodies_are_valid_requests() {
        let mut rng = Rng(7);
        for _ in 0..200 {
            let b = order_body(&mut rng, &[3, 5, 8, 13]);
            let r: crate::shop::OrderRequest = serde_json::from_str(&b).unwrap();
            crate::shop::validate(&r).unwrap();
            assert!((1..=3).contains(&r.items.len()));
        }
        let b = order_body(&mut rng, &[42]);
        assert!(b.contains(r#""product_id":42"#));
    }

    #[test]
    fn log_lines_round_trip() {
        let l = LogLine {
            order_id: 7,
            started_at: "2026-11-25T10:00:00.000001Z".into(),
            committed_at: "2026-11-25T10:00:00.004001Z".into(),
            created_at: None,
        };
        let s = serde_json::to_string(&l).unwrap();
        assert_eq!(
            s,
            r#"{"order_id":7,"started_at":"2026-11-25T10:00:00.000001Z","committed_at":"2026-11-25T10:00:00.004001Z"}"#
        );
        assert_eq!(serde_json::from_str::<LogLine>(&s).unwrap(), l);
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
