//! The engine's mark in the replica (`super::super::caught_up`): while it
//! has nothing left to copy, the moment through which the replica holds
//! every change of the source, written now and then.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Engine;
use super::changes::Listing;
use crate::replicate::caught_up;

/// How often the mark is written at most: a directory replica costs a local
/// write, an S3 one a request.
const EVERY_DIR: Duration = Duration::from_secs(2);
const EVERY_S3: Duration = Duration::from_secs(15);

/// How far behind "now" a watched directory source's changes may still be
/// on their way to the engine (the watch's debounce).
const FEED_LATENCY: chrono::Duration = chrono::Duration::seconds(1);

/// What the engine last wrote into the replica.
#[derive(Debug, Default)]
pub(super) struct CaughtUp {
    written: Option<DateTime<Utc>>,
    at: Option<Instant>,
}

impl Engine {
    /// Nothing queued, copying, failed or left of the first backfill.
    fn idle(&self) -> bool {
        self.queue.is_empty()
            && self.tasks.is_empty()
            && self.in_flight.is_empty()
            && self.parked.is_empty()
            && self.backfill_left.as_ref().is_some_and(|b| b.is_empty())
    }

    /// Writes the mark when the engine is idle and it moved on: a watched
    /// directory source is caught up through about now, an S3 source
    /// through the start of its last complete listing.
    pub(super) async fn mark_caught_up(&mut self, list: &Listing) {
        if !self.idle() {
            return;
        }
        let (through, every) = match self.src.dir_root() {
            Some(_) => (Some(Utc::now() - FEED_LATENCY), EVERY_DIR),
            None => (list.last_complete, EVERY_S3),
        };
        let Some(through) = through else { return };
        let due = self.caught.at.is_none_or(|at| at.elapsed() >= every);
        if !due || self.caught.written.is_some_and(|w| w >= through) {
            return;
        }
        match caught_up::write(&self.dst, through).await {
            Ok(()) => {
                self.caught = CaughtUp {
                    written: Some(through),
                    at: Some(Instant::now()),
                };
            }
            Err(err) => self.note_error(&err),
        }
    }

    /// After one pass (`--once`) that left nothing behind: the replica holds
    /// every change of the source made before the pass's first listing.
    pub(super) async fn mark_once(&mut self, listed: DateTime<Utc>) {
        if self.idle()
            && let Err(err) = caught_up::write(&self.dst, listed).await
        {
            self.note_error(&err);
        }
    }
}
