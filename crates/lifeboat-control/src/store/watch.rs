//! Job changes published by the store, whatever process commits them.
//!
//! Runs and restores are recorded by child processes, each with a
//! connection of its own, so nothing can tell the store of a commit. One
//! watcher per process that follows jobs (the server) holds one long-lived
//! connection and asks SQLite's `PRAGMA data_version`, which changes when
//! any other connection commits, every tick; only after a commit does it
//! read the jobs that can have changed (those running, those it saw
//! running, new ones) and publish each that did on a
//! `tokio::sync::broadcast` channel every subscriber shares. While jobs run
//! it also marks those whose process is gone `interrupted`, as every opener
//! of the store does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::params;
use tokio::sync::broadcast;

use super::sqlite::{COLUMNS, row_to_job};
use super::{Job, JobStore, SqliteStore, status};
use crate::Result;

/// How many changes a subscriber may fall behind before it is told it
/// lagged (it then reads its job from the store again).
const CAPACITY: usize = 1024;

/// The publishing side: dropping it stops the watcher.
pub struct JobWatch {
    changes: broadcast::Sender<Arc<Job>>,
    stop: Arc<AtomicBool>,
}

impl JobWatch {
    /// A receiver of every job change committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Job>> {
        self.changes.subscribe()
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a job looked like when last published: its status and progress.
type Seen = (String, Option<String>);

/// The watcher's own state, on its thread.
struct Watcher {
    store: SqliteStore,
    /// `PRAGMA data_version` at the last look.
    version: i64,
    /// The highest job id seen.
    newest: i64,
    /// Jobs seen running, as last published.
    live: BTreeMap<i64, Seen>,
    changes: broadcast::Sender<Arc<Job>>,
}

impl SqliteStore {
    /// Publishes every job change committed to this store, by any process,
    /// from a thread of its own that looks every `tick` (see the module).
    pub fn watch(self, tick: Duration) -> Result<JobWatch> {
        let (changes, _) = broadcast::channel(CAPACITY);
        let mut w = Watcher {
            version: 0,
            newest: 0,
            live: BTreeMap::new(),
            changes: changes.clone(),
            store: self,
        };
        w.version = w.data_version()?;
        w.newest = w.highest_id()?;
        for j in w.running_or_newer()? {
            w.live.insert(j.id, (j.status.clone(), j.progress.clone()));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("job-watch".into())
            .spawn(move || w.run(tick, &stopped))
            .map_err(|e| {
                crate::ControlError::Refused(format!("cannot start the job watcher: {e}"))
            })?;
        Ok(JobWatch { changes, stop })
    }
}

impl Watcher {
    /// Looks every `tick` until stopped; a failed look is logged and tried again.
    fn run(mut self, tick: Duration, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            if let Err(e) = self.look() {
                tracing::warn!("job watcher: {e}");
            }
        }
    }

    /// One look: publishes the jobs changed since the last commit seen.
    fn look(&mut self) -> Result<()> {
        if !self.live.is_empty() {
            // A job whose process died is finished here (a commit of our own,
            // which `data_version` does not count: look at the jobs then too).
            if self.store.mark_interrupted()? > 0 {
                self.version = -1;
            }
        }
        let version = self.data_version()?;
        if version == self.version {
            return Ok(());
        }
        self.version = version;
        for job in self.changed()? {
            // No subscriber is no error: changes are published whether or not
            // anyone follows.
            let _ = self.changes.send(Arc::new(job));
        }
        Ok(())
    }

    /// The jobs that differ from what was last published, forgetting those
    /// that ended.
    fn changed(&mut self) -> Result<Vec<Job>> {
        let mut jobs = self.running_or_newer()?;
        let gone: Vec<i64> = self
            .live
            .keys()
            .filter(|id| !jobs.iter().any(|j| j.id == **id))
            .copied()
            .collect();
        for id in gone {
            match self.store.get(id)? {
                Some(j) => jobs.push(j),
                None => {
                    self.live.remove(&id);
                }
            }
        }
        let mut out = Vec::new();
        for j in jobs {
            self.newest = self.newest.max(j.id);
            let seen = (j.status.clone(), j.progress.clone());
            if self.live.get(&j.id) == Some(&seen) {
                continue;
            }
            if j.status == status::RUNNING {
                self.live.insert(j.id, seen);
            } else {
                self.live.remove(&j.id);
            }
            out.push(j);
        }
        Ok(out)
    }

    /// Jobs running now, and any newer than the newest seen (they may have
    /// started and ended between two looks).
    fn running_or_newer(&self) -> Result<Vec<Job>> {
        let s = &self.store;
        let mut stmt = s
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE status = ?1 OR id > ?2 ORDER BY id"
            ))
            .map_err(|e| s.err(e))?;
        let rows = stmt
            .query_map(params![status::RUNNING, self.newest], row_to_job)
            .map_err(|e| s.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| s.err(e))
    }

    /// The highest job id recorded (0 for none).
    fn highest_id(&self) -> Result<i64> {
        let s = &self.store;
        s.conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM jobs", [], |r| r.get(0))
            .map_err(|e| s.err(e))
    }

    /// SQLite's count of commits by other connections.
    fn data_version(&self) -> Result<i64> {
        let s = &self.store;
        s.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(|e| s.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{JobEnd, NewJob};
    use super::*;

    fn job() -> NewJob {
        NewJob {
            kind: "backup".into(),
            resource: Some("data".into()),
            plan: None,
            trigger: "manual".into(),
            vault: None,
        }
    }

    /// The next change within a few seconds.
    fn next(rx: &mut broadcast::Receiver<Arc<Job>>) -> Arc<Job> {
        let t = std::time::Instant::now();
        loop {
            match rx.try_recv() {
                Ok(j) => return j,
                Err(broadcast::error::TryRecvError::Empty) => {
                    assert!(t.elapsed() < Duration::from_secs(5), "no change published");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn another_connections_commits_are_published_once_each() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("jobs.sqlite");
        let watch = SqliteStore::open(&path)
            .unwrap()
            .watch(Duration::from_millis(10))
            .unwrap();
        let mut rx = watch.subscribe();
        // Another connection, as a child process has.
        let writer = SqliteStore::open(&path).unwrap();
        let id = writer.start(&job()).unwrap();
        let j = next(&mut rx);
        assert_eq!((j.id, j.status.as_str()), (id, status::RUNNING));
        writer.set_progress(id, "{\"bytes\":1}").unwrap();
        assert_eq!(next(&mut rx).progress.as_deref(), Some("{\"bytes\":1}"));
        // A job that starts and ends between two looks is still published.
        let quick = writer.start(&job()).unwrap();
        writer
            .finish(
                quick,
                &JobEnd {
                    status: status::SUCCEEDED.into(),
                    ..JobEnd::default()
                },
            )
            .unwrap();
        writer
            .finish(
                id,
                &JobEnd {
                    status: status::FAILED.into(),
                    ..JobEnd::default()
                },
            )
            .unwrap();
        // Each change once, until both have ended.
        let mut seen: Vec<(i64, String, Option<String>)> = Vec::new();
        let ended = |seen: &[(i64, String, Option<String>)], id: i64| {
            seen.iter().rev().find(|c| c.0 == id).map(|c| c.1.clone())
        };
        while ended(&seen, id).as_deref() != Some(status::FAILED)
            || ended(&seen, quick).as_deref() != Some(status::SUCCEEDED)
        {
            let j = next(&mut rx);
            let change = (j.id, j.status.clone(), j.progress.clone());
            assert!(!seen.contains(&change), "published twice: {change:?}");
            seen.push(change);
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(rx.try_recv().is_err(), "published after the end");
    }
}
