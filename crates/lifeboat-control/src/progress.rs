//! Live progress of a running job, for the API's event stream and the console.
//!
//! The job runs in its own process; it writes its protector's counters (read
//! through `lifeboat_protector::Watch`: [`StoreWatch`]) into
//! the job store (`jobs.progress`, JSON text) at most once a second, and
//! readers (the REST API) poll the store. The JSON object is
//! `{"unit": "files"|"rows"|"objects", "items": N, "items_total": N|null,
//! "bytes": N, "bytes_total": N|null, "updated": RFC 3339}`.

use std::time::Duration;

use serde::Serialize;

use crate::store::JobStore;

/// How often a running job writes its progress.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// One progress reading.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Progress {
    /// What `items` counts.
    pub unit: &'static str,
    /// Items done.
    pub items: u64,
    /// Items to do, when known.
    pub items_total: Option<u64>,
    /// Bytes read (backup) or written (restore).
    pub bytes: u64,
    /// Bytes to do, when known.
    pub bytes_total: Option<u64>,
    /// When it was read.
    pub updated: String,
}

/// A protector's work watched for the job store: its readings recorded
/// as the job's progress (`lifeboat_protector::Watch`).
pub struct StoreWatch<'a> {
    /// The store.
    pub store: &'a dyn JobStore,
    /// The job.
    pub job: i64,
}

impl lifeboat_protector::Watch for StoreWatch<'_> {
    fn watch(
        &self,
        read: &(dyn Fn() -> lifeboat_protector::Reading + Sync),
        work: &mut (dyn FnMut() + Send),
    ) {
        let progress = || {
            let r = read();
            Progress {
                unit: r.unit,
                items: r.items,
                items_total: r.items_total,
                bytes: r.bytes,
                bytes_total: r.bytes_total,
                updated: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }
        };
        recording(self.store, self.job, &progress, work)
    }
}

/// Runs `f` on a scoped thread while this thread records `read()` as job
/// `job`'s progress every [`INTERVAL`] when it changed.
fn recording<T: Send>(
    store: &dyn JobStore,
    job: i64,
    read: &dyn Fn() -> Progress,
    f: impl FnOnce() -> T + Send,
) -> T {
    std::thread::scope(|s| {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = s.spawn(move || {
            let out = f();
            drop(done_tx);
            out
        });
        let mut last = None;
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(INTERVAL) {
            let p = read();
            let key = (p.items, p.bytes, p.items_total, p.bytes_total);
            if last != Some(key) {
                last = Some(key);
                let text = serde_json::to_string(&p).expect("progress serializes");
                if let Err(e) = store.set_progress(job, &text) {
                    tracing::warn!("job {job}: cannot record progress: {e}");
                }
            }
        }
        match worker.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
