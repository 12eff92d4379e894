//! How the engine learns of the source's changes: a directory bucket's
//! watch, and the listings of either kind of bucket.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::super::feed::{DirFeed, FeedEvent};
use super::super::state::fingerprint;
use super::{Engine, Listed};
use crate::error::{BucketError, Result};

/// Starts the source's change feed: a directory bucket's watch (an S3
/// source has none; its changes come from listings).
pub(super) fn start_feed(
    e: &Engine,
) -> Result<(Option<DirFeed>, mpsc::UnboundedReceiver<FeedEvent>)> {
    let (feed_tx, feed_rx) = mpsc::unbounded_channel();
    let feed = match e.src.dir_root() {
        Some(root) => Some(
            DirFeed::start(root, &e.opts.prefix, feed_tx).map_err(|err| BucketError::Io {
                bucket: e.src.address().to_string(),
                op: "watch",
                key: String::new(),
                source: std::io::Error::other(err.to_string()),
            })?,
        ),
        None => {
            drop(feed_tx);
            None
        }
    };
    Ok((feed, feed_rx))
}

/// The source's listings: one at a time on a task of its own; on S3 more
/// often while they find changes (`poll_min`, doubling up to `poll_max`,
/// never more often than twice a listing's time), on a directory bucket
/// every `rescan_every`.
pub(super) struct Listing {
    tx: mpsc::Sender<Result<Vec<Listed>>>,
    pub(super) rx: mpsc::Receiver<Result<Vec<Listed>>>,
    /// A listing runs.
    running: bool,
    poll: Duration,
    is_s3: bool,
    /// When the next listing is due.
    pub(super) next: Instant,
    /// When the running one started.
    started: Instant,
    /// ... by the clock, and when the last one that succeeded did: every
    /// change of the source before it was seen.
    started_at: chrono::DateTime<chrono::Utc>,
    pub(super) last_complete: Option<chrono::DateTime<chrono::Utc>>,
}

impl Listing {
    /// The listings of `e`'s source, the first one due after one interval.
    pub(super) fn new(e: &Engine) -> Listing {
        let (tx, rx) = mpsc::channel::<Result<Vec<Listed>>>(1);
        let poll = e.opts.poll_min;
        let is_s3 = e.src.dir_root().is_none();
        Listing {
            tx,
            rx,
            running: false,
            poll,
            is_s3,
            next: Instant::now() + if is_s3 { poll } else { e.opts.rescan_every },
            started: Instant::now(),
            started_at: chrono::Utc::now(),
            last_complete: None,
        }
    }

    /// Takes a listing's result into `e` and sets when the next one is due.
    pub(super) fn done(&mut self, e: &mut Engine, res: Result<Vec<Listed>>) {
        self.running = false;
        let took = self.started.elapsed();
        let changed = match res {
            Ok(list) => {
                self.last_complete = Some(self.started_at);
                e.apply_listing(list)
            }
            Err(err) => {
                e.note_error(&err);
                true
            }
        };
        let base = if self.is_s3 {
            self.poll = if changed {
                e.opts.poll_min
            } else {
                (self.poll * 2).min(e.opts.poll_max)
            };
            self.poll.max(took * 2)
        } else {
            e.opts.rescan_every
        };
        self.next = Instant::now() + base;
    }

    /// Starts a listing when one is due and none runs.
    pub(super) fn start_if_due(&mut self, e: &Engine) {
        if self.running || Instant::now() < self.next {
            return;
        }
        self.running = true;
        self.started = Instant::now();
        self.started_at = chrono::Utc::now();
        let (src, prefix, tx) = (e.src.clone(), e.opts.prefix.clone(), self.tx.clone());
        tokio::spawn(async move {
            let mut v = Vec::new();
            let r = src
                .list(&prefix, &mut |o| {
                    v.push((o.key, fingerprint(&o.version), o.size, o.version))
                })
                .await;
            let _ = tx.send(r.map(|_| v)).await;
        });
    }
}
