//! Continuous replication of a bucket to a bucket in another site.
//!
//! ```text
//! lock the rule's state directory; load the resume state
//! start the change feed (inotify for a directory source)
//! reconcile: list destination (a resumed rule) and source;
//!     new / changed / destination-drifted keys → queue;
//!     first run without --existing: what is there is recorded, not copied;
//!     keys the state knows that the source lacks → queue (deletes)
//! loop until SIGINT/SIGTERM:
//!     feed events → queue (debounced 50 ms; one entry per key)
//!     dispatch ≤ concurrency copies (copy::handle), oldest first
//!     results → state (journal), counters, lag samples; retryable failures
//!         back off (the whole rule pauses up to 5 s while the destination
//!         fails), permanent ones park the key until it changes
//!     listing loop: S3 sources every 1–15 s (adaptive), every source as a
//!         safety net (default 60 s)
//!     every second: checkpoint the journal, write status.json
//! stop: finish the copies in flight (≤ 30 s), sync the destination, checkpoint
//! ```

pub mod caught_up;
pub mod copy;
mod engine;
pub mod feed;
pub mod fence;
pub mod state;
pub mod status;

use std::path::PathBuf;
use std::time::Duration;

pub use copy::DeletePolicy;
pub use engine::{Report, run};
pub use status::{RuleStatus, default_state_root, prometheus, read_statuses};

/// A replication rule and how to run it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Source bucket address.
    pub from: String,
    /// Destination bucket address.
    pub to: String,
    /// Only keys starting with this.
    pub prefix: String,
    /// What deletes at the source do at the destination.
    pub delete_markers: DeletePolicy,
    /// Copy what the source held before the rule's first start.
    pub existing: bool,
    /// Copies at once.
    pub concurrency: usize,
    /// The rule's own state directory.
    pub state_dir: PathBuf,
    /// Serve Prometheus text on this address (`127.0.0.1:9464`).
    pub metrics_listen: Option<String>,
    /// Full listing of the source as a safety net.
    pub rescan_every: Duration,
    /// Shortest interval of the S3 listing loop.
    pub poll_min: Duration,
    /// Longest interval of the S3 listing loop.
    pub poll_max: Duration,
    /// Stop as soon as nothing waits (a one-shot sync) instead of following changes.
    pub once: bool,
}

impl Options {
    /// A rule with the defaults: deletes replicated, no backfill, 16 copies
    /// at once, state under the default root.
    pub fn new(from: &str, to: &str, prefix: &str) -> Options {
        Options {
            from: from.to_string(),
            to: to.to_string(),
            prefix: prefix.to_string(),
            delete_markers: DeletePolicy::Replicate,
            existing: false,
            concurrency: 16,
            state_dir: default_state_root().join(rule_id(from, to, prefix)),
            metrics_listen: None,
            rescan_every: Duration::from_secs(60),
            poll_min: Duration::from_secs(1),
            poll_max: Duration::from_secs(15),
            once: false,
        }
    }
}

/// A rule's id: `r-` and 12 hex digits of a hash of source, destination and prefix.
pub fn rule_id(from: &str, to: &str, prefix: &str) -> String {
    let h = blake3::hash(format!("{from}\0{to}\0{prefix}").as_bytes());
    format!("r-{}", &h.to_hex()[..12])
}

/// Runs a rule on a new runtime until SIGINT or SIGTERM.
pub fn run_until_signalled(opts: Options) -> crate::Result<Report> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2),
        )
        .thread_name("lifeboat-replicate")
        .enable_all()
        .build()
        .map_err(|e| crate::BucketError::State {
            path: opts.state_dir.display().to_string(),
            reason: format!("cannot start the I/O runtime: {e}"),
        })?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tracing::info!("stopping: finishing the copies in flight");
            let _ = tx.send(true);
        });
        run(opts, rx).await
    })
}
