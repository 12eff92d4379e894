//! Locks: who is working on a vault right now.
//!
//! Every backup holds a shared lock at `locks/<64 hex>` (plaintext JSON) for as
//! long as it runs, refreshing it every [`REFRESH`]; prune holds an exclusive
//! one (against other prunes only). Prune never waits for backups: it uses the
//! live shared locks to decide when an obsolete pack may really be deleted
//! (see the format spec). A lock is stale — ignored and removable — when it
//! was not refreshed for [`STALE`], or when it was taken on this host by a
//! process that no longer exists.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::storage::Storage;

/// How often a held lock is refreshed.
pub const REFRESH: Duration = Duration::from_secs(5 * 60);
/// After how long without refresh a lock is stale.
pub const STALE: Duration = Duration::from_secs(30 * 60);

/// Content of a lock file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockInfo {
    /// What holds it: backup, prune, copy…
    pub kind: String,
    /// Exclusive (prune) or shared.
    pub exclusive: bool,
    /// Host of the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// When it was taken.
    pub created: DateTime<Utc>,
    /// When it was last refreshed.
    pub refreshed: DateTime<Utc>,
}

impl LockInfo {
    /// Whether the lock no longer protects anything.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        let age = now.signed_duration_since(self.refreshed);
        if age.num_seconds() > STALE.as_secs() as i64 {
            return true;
        }
        self.host == crate::host_name() && !process_alive(self.pid)
    }
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    match rustix::process::Pid::from_raw(pid as i32) {
        Some(p) => match rustix::process::test_kill_process(p) {
            Ok(()) => true,
            Err(e) => e != rustix::io::Errno::SRCH,
        },
        None => false,
    }
}

/// Storage path of a lock.
pub fn lock_path(id: &Id) -> String {
    format!("locks/{id}")
}

/// Lists locks that are not stale, with their ids.
pub fn live_locks(storage: &Storage) -> Result<Vec<(Id, LockInfo)>> {
    let now = Utc::now();
    let mut out = Vec::new();
    for l in storage.list("locks/")? {
        let Some(id) = l.path.strip_prefix("locks/").and_then(Id::parse) else {
            continue;
        };
        let info = match storage.read(&l.path) {
            Ok(b) => match serde_json::from_slice::<LockInfo>(&b) {
                Ok(i) => i,
                Err(_) => continue, // unreadable locks protect nothing
            },
            Err(VaultError::Missing { .. }) => continue,
            Err(e) => return Err(e),
        };
        if !info.is_stale(now) {
            out.push((id, info));
        }
    }
    Ok(out)
}

/// Removes stale locks; returns how many.
pub fn remove_stale(storage: &Storage) -> Result<usize> {
    let live: Vec<Id> = live_locks(storage)?.into_iter().map(|(i, _)| i).collect();
    let mut n = 0;
    for l in storage.list("locks/")? {
        if let Some(id) = l.path.strip_prefix("locks/").and_then(Id::parse)
            && !live.contains(&id)
        {
            storage.remove(&l.path)?;
            n += 1;
        }
    }
    Ok(n)
}

/// A held lock; refreshed in the background, removed on release or drop.
pub struct LockGuard {
    storage: Storage,
    id: Id,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    last_refresh: Arc<Mutex<Instant>>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockGuard({})", self.id.short())
    }
}

impl LockGuard {
    /// Takes a lock. An exclusive lock fails when another live exclusive lock exists.
    pub fn acquire(storage: &Storage, kind: &str, exclusive: bool) -> Result<LockGuard> {
        let id = Id::random();
        let now = Utc::now();
        let info = LockInfo {
            kind: kind.to_string(),
            exclusive,
            host: crate::host_name(),
            pid: std::process::id(),
            created: now,
            refreshed: now,
        };
        storage.write(&lock_path(&id), serde_json::to_vec(&info).expect("json"))?;
        let mut guard = LockGuard {
            storage: storage.clone(),
            id,
            stop: None,
            thread: None,
            last_refresh: Arc::new(Mutex::new(Instant::now())),
        };
        if exclusive {
            let others: Vec<_> = live_locks(storage)?
                .into_iter()
                .filter(|(i, l)| *i != id && l.exclusive)
                .collect();
            if let Some((oid, o)) = others.first() {
                guard.release()?;
                return Err(VaultError::Refused(format!(
                    "the vault is locked by a {} on {} (pid {}, since {}, lock {}); wait for it to finish, or remove the lock with `lifeboat vault unlock` if that process is gone",
                    o.kind,
                    o.host,
                    o.pid,
                    o.created.to_rfc3339(),
                    oid.short()
                )));
            }
        }
        guard.start_refresh(info);
        Ok(guard)
    }

    fn start_refresh(&mut self, mut info: LockInfo) {
        let (tx, rx) = mpsc::channel::<()>();
        let storage = self.storage.clone();
        let path = lock_path(&self.id);
        let last = self.last_refresh.clone();
        let interval = std::env::var("LIFEBOAT_LOCK_REFRESH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(REFRESH);
        self.stop = Some(tx);
        self.thread = Some(std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                info.refreshed = Utc::now();
                match storage.write(&path, serde_json::to_vec(&info).expect("json")) {
                    Ok(()) => *last.lock().expect("lock") = Instant::now(),
                    Err(e) => tracing::warn!("could not refresh lock {path}: {e}"),
                }
            }
        }));
    }

    /// The lock's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Fails when the lock may have been considered stale by others (it was not
    /// refreshed for too long); a backup must then not write its point.
    pub fn check_fresh(&self) -> Result<()> {
        let age = self.last_refresh.lock().expect("lock").elapsed();
        if age > STALE - REFRESH {
            return Err(VaultError::Refused(format!(
                "the lock {} was not refreshed for {}s; a prune may have treated it as stale, so this run stops without writing its point (run it again)",
                self.id.short(),
                age.as_secs()
            )));
        }
        Ok(())
    }

    /// Stops refreshing and removes the lock.
    pub fn release(mut self) -> Result<()> {
        self.stop_refresh();
        let r = self.storage.remove(&lock_path(&self.id));
        self.stop = None;
        r
    }

    fn stop_refresh(&mut self) {
        if let Some(tx) = self.stop.take() {
            drop(tx);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_refresh();
            let _ = self.storage.remove(&lock_path(&self.id));
        }
    }
}
