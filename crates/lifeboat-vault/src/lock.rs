//! Locks: who is working on a vault right now.
//!
//! Every backup holds a shared lock at `locks/<64 hex>` (plaintext JSON) for as
//! long as it runs, refreshing it every [`REFRESH`]; prune holds an exclusive
//! one (against other prunes only). Prune never waits for backups: it uses the
//! live shared locks to decide when an obsolete pack may really be deleted
//! (see the format spec). Readers (restore, check, listing a point's
//! content) hold shared locks too, so a prune never deletes a pack a running
//! reader may still read.
//!
//! A lock is stale — ignored and removable — when it was not refreshed for
//! [`STALE`], or when it was taken by a process of *this* identity (same host
//! name, boot id and pid namespace) that no longer exists (the pid is gone, or
//! belongs to a process started at another time). A lock of another identity
//! (another machine, container or boot) is judged by its age only.
//!
//! A holder that finds its lock removed stops refreshing it and
//! [`LockGuard::check_fresh`] fails: a backup then never writes its point.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
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
/// Kinds of the shared locks of readers (see [`reader_lock`]): they own no packs.
pub const READER_KINDS: &[&str] = &["restore", "check", "list", "copy-source"];

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
    /// The kernel's boot id of the holder's machine
    /// (`/proc/sys/kernel/random/boot_id`); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The inode of the holder's pid namespace (`/proc/self/ns/pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<u64>,
    /// The holder's start time in clock ticks after boot (`/proc/PID/stat`,
    /// field 22): tells a reused pid from the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
}

impl LockInfo {
    /// Whether the lock no longer protects anything.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        let age = now.signed_duration_since(self.refreshed);
        if age.num_seconds() > STALE.as_secs() as i64 {
            return true;
        }
        let me = Identity::get();
        let same = self.host == crate::host_name()
            && me.boot_id.is_some()
            && self.boot_id == me.boot_id
            && me.pid_ns.is_some()
            && self.pid_ns == me.pid_ns;
        if !same {
            return false; // another machine, container or boot: age only
        }
        if self.pid == std::process::id() {
            return self.start_time != me.start_time;
        }
        match process_start_time(self.pid) {
            None => !process_exists(self.pid),
            Some(t) => self.start_time.is_some_and(|s| s != t),
        }
    }
}

/// What tells this process apart from every other holder of a lock.
#[derive(Debug)]
struct Identity {
    boot_id: Option<String>,
    pid_ns: Option<u64>,
    start_time: Option<u64>,
}

impl Identity {
    fn get() -> &'static Identity {
        static ME: OnceLock<Identity> = OnceLock::new();
        ME.get_or_init(|| {
            let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
            // /proc must show our own pid namespace for pids to be judged.
            let proc_is_ours = std::fs::read_link("/proc/self")
                .ok()
                .is_some_and(|p| p.as_os_str() == std::process::id().to_string().as_str());
            let pid_ns = proc_is_ours
                .then(|| {
                    use std::os::unix::fs::MetadataExt;
                    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
                })
                .flatten();
            Identity {
                boot_id,
                pid_ns,
                start_time: process_start_time(std::process::id()),
            }
        })
    }
}

/// Field 22 of `/proc/PID/stat`: when the process started (clock ticks after boot).
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn process_exists(pid: u32) -> bool {
    match rustix::process::Pid::from_raw(pid as i32) {
        Some(p) => match rustix::process::test_kill_process(p) {
            Ok(()) => true,
            Err(e) => e != rustix::io::Errno::SRCH,
        },
        None => false,
    }
}

/// Seconds on a clock that keeps counting while the machine is suspended
/// (`CLOCK_BOOTTIME`, read from `/proc/uptime`), when there is one.
fn boot_clock() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/uptime").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// When a lock was last refreshed, on the clocks that count a suspend.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    wall: DateTime<Utc>,
    boot: Option<f64>,
    mono: Instant,
}

impl Stamp {
    fn now() -> Stamp {
        Stamp {
            wall: Utc::now(),
            boot: boot_clock(),
            mono: Instant::now(),
        }
    }

    /// The longest of the ages the clocks tell (a suspended host's monotonic
    /// clock stands still; the wall clock may be set back).
    fn age(&self) -> Duration {
        let wall = Utc::now()
            .signed_duration_since(self.wall)
            .to_std()
            .unwrap_or_default();
        let boot = match (self.boot, boot_clock()) {
            (Some(a), Some(b)) if b > a => Duration::from_secs_f64(b - a),
            _ => Duration::ZERO,
        };
        wall.max(boot).max(self.mono.elapsed())
    }
}

/// Storage path of a lock.
pub fn lock_path(id: &Id) -> String {
    format!("locks/{id}")
}

/// Reads every lock; unreadable ones (damaged) are left out. When a listed
/// lock vanishes while the locks are read, the listing is made again, so the
/// result is one moment's set of locks (a holder that replaced a claim by
/// another lock is seen with one of them). A lock's `refreshed` is the time
/// the storage last wrote it (file mtime, S3 `LastModified`) where the
/// storage gives one: its holder's clock is not trusted (format spec §10).
fn read_locks(storage: &Storage) -> Result<Vec<(Id, LockInfo)>> {
    'again: for _ in 0..8 {
        let mut out = Vec::new();
        for (path, stored) in storage.list_modified("locks/")? {
            let Some(id) = path.strip_prefix("locks/").and_then(Id::parse) else {
                continue;
            };
            match storage.read(&path) {
                Ok(b) => {
                    if let Ok(mut i) = serde_json::from_slice::<LockInfo>(&b) {
                        i.refreshed = stored.unwrap_or(i.refreshed);
                        out.push((id, i));
                    }
                }
                Err(VaultError::Missing { .. }) => continue 'again,
                Err(e) => return Err(e),
            }
        }
        return Ok(out);
    }
    Err(VaultError::Storage {
        op: "list",
        path: "locks/".into(),
        message: "the locks kept changing while they were read; run the command again".into(),
        retryable: true,
        no_space: false,
    })
}

/// Lists locks that are not stale, with their ids. Their age is judged on
/// the storage's clock ([`Storage::now`]), never this machine's.
pub fn live_locks(storage: &Storage) -> Result<Vec<(Id, LockInfo)>> {
    let now = storage.now()?;
    Ok(read_locks(storage)?
        .into_iter()
        .filter(|(_, i)| !i.is_stale(now))
        .collect())
}

/// Removes stale locks; returns how many. Only locks that were read and
/// judged stale are removed: a lock written meanwhile is never touched.
pub fn remove_stale(storage: &Storage) -> Result<usize> {
    let now = storage.now()?;
    let stale: Vec<Id> = read_locks(storage)?
        .into_iter()
        .filter(|(_, i)| i.is_stale(now))
        .map(|(id, _)| id)
        .collect();
    crate::testhook::pause("stale-judged");
    for id in &stale {
        storage.remove(&lock_path(id))?;
    }
    Ok(stale.len())
}

/// Takes the shared lock of a reader (`kind`: "restore", "check", "list"…),
/// before it loads the index: a prune then defers deleting any pack it marks
/// until the reader is done, so a long (or frozen) read never finds a pack
/// gone. On storage this process may not write to (a read-only copy of a
/// vault) the read goes on unlocked, with a warning, and `None` is returned.
pub fn reader_lock(storage: &Storage, kind: &str) -> Result<Option<LockGuard>> {
    match LockGuard::acquire(storage, kind, false) {
        Ok(g) => Ok(Some(g)),
        Err(e) if e.is_not_writable() => {
            tracing::warn!(
                "cannot write a reader lock into the vault ({e}); reading without one: a prune running meanwhile may remove packs this {kind} needs"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Claims the right to be the only holder of a lock of `kind` (one binlog
/// archive per resource). Returns the claim, to be released only after the
/// caller has taken its lock of `kind`; or, when another process holds or
/// wins the claim, that process's lock.
///
/// Every contender writes a claim (kind `claim KIND`), then lists the locks:
/// a live lock of `kind`, or a claim with a smaller id, means it lost; no
/// other claim means it won; otherwise it waits until the claims with larger
/// ids are withdrawn (their holders saw this one and lost) or become locks of
/// `kind` (their holders listed before this claim existed, and won). Two
/// contenders never both win: the later of the two claims is written after
/// the earlier one's listing, so its holder sees the earlier claim (or the
/// lock that replaced it). A winner writes its lock before it removes its
/// claim, and listings are re-read when a lock vanishes meanwhile.
pub fn claim_sole(
    storage: &Storage,
    kind: &str,
) -> Result<std::result::Result<LockGuard, (Id, LockInfo)>> {
    let claim_kind = format!("claim {kind}");
    let claim = LockGuard::acquire(storage, &claim_kind, false)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live = live_locks(storage)?;
        let other = |(i, l): &&(Id, LockInfo)| *i != claim.id() && l.kind == claim_kind;
        let lost = live
            .iter()
            .find(|(_, l)| l.kind == kind)
            .or_else(|| live.iter().filter(other).find(|(i, _)| *i < claim.id()))
            .or_else(|| {
                (Instant::now() > deadline)
                    .then(|| live.iter().find(other))
                    .flatten()
            });
        if let Some(l) = lost {
            claim.release()?;
            return Ok(Err(l.clone()));
        }
        if !live.iter().any(|l| other(&l)) {
            return Ok(Ok(claim));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A held lock; refreshed in the background, removed on release or drop.
pub struct LockGuard {
    storage: Storage,
    id: Id,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    last_refresh: Arc<Mutex<Stamp>>,
    /// Set when a refresh found the lock removed by someone else.
    lost: Arc<AtomicBool>,
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
            boot_id: Identity::get().boot_id.clone(),
            pid_ns: Identity::get().pid_ns,
            start_time: Identity::get().start_time,
        };
        storage.write(&lock_path(&id), serde_json::to_vec(&info).expect("json"))?;
        let mut guard = LockGuard {
            storage: storage.clone(),
            id,
            stop: None,
            thread: None,
            last_refresh: Arc::new(Mutex::new(Stamp::now())),
            lost: Arc::new(AtomicBool::new(false)),
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
        let lost = self.lost.clone();
        let interval = std::env::var("LIFEBOAT_LOCK_REFRESH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(REFRESH);
        self.stop = Some(tx);
        self.thread = Some(std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                match storage.stat(&path) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        // Removed by someone else (a prune judged it stale,
                        // or `vault unlock`): never write it again.
                        tracing::error!(
                            "lock {path} was removed by another process; this run will not write its point"
                        );
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!("could not check lock {path}: {e}");
                        continue;
                    }
                }
                info.refreshed = Utc::now();
                let stamp = Stamp::now();
                match storage.write(&path, serde_json::to_vec(&info).expect("json")) {
                    Ok(()) => *last.lock().expect("lock") = stamp,
                    Err(e) => tracing::warn!("could not refresh lock {path}: {e}"),
                }
            }
        }));
    }

    /// The lock's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Pretends the last refresh happened `ago` earlier on the wall clock
    /// only (as after a suspend, when the monotonic clock stood still): for
    /// tests of [`LockGuard::check_fresh`].
    #[doc(hidden)]
    pub fn backdate_refresh_for_test(&self, ago: Duration) {
        let mut s = self.last_refresh.lock().expect("lock");
        s.wall -= chrono::Duration::from_std(ago).expect("small duration");
        s.boot = s.boot.map(|b| b - ago.as_secs_f64());
    }

    /// Fails when the lock may have been considered stale by others (it was not
    /// refreshed for too long, counting time the machine was suspended) or
    /// was removed; a backup must then not write its point.
    pub fn check_fresh(&self) -> Result<()> {
        let removed = || {
            VaultError::Refused(format!(
                "the lock {} of this run was removed by another process (a prune that judged it stale, or `lifeboat vault unlock`); its data may have been deleted, so this run stops without writing its point (run it again)",
                self.id.short()
            ))
        };
        if self.lost.load(Ordering::SeqCst) || self.storage.stat(&lock_path(&self.id))?.is_none() {
            return Err(removed());
        }
        let age = self.last_refresh.lock().expect("lock").age();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Location;

    fn storage(dir: &std::path::Path) -> Storage {
        Storage::open(&Location::Dir(dir.to_path_buf()), true).unwrap()
    }

    /// B.14: a host suspended for half an hour (its monotonic clock stood
    /// still, the wall clock and CLOCK_BOOTTIME went on) must not write a point.
    #[test]
    fn freshness_counts_time_the_host_was_suspended() {
        let d = tempfile::tempdir().unwrap();
        let s = storage(d.path());
        let g = LockGuard::acquire(&s, "backup", false).unwrap();
        g.check_fresh().unwrap();
        g.backdate_refresh_for_test(Duration::from_secs(26 * 60));
        let e = g.check_fresh().unwrap_err().to_string();
        assert!(e.contains("not refreshed"), "{e}");
    }

    #[test]
    fn identity_decides_who_may_be_judged_by_pid() {
        let now = Utc::now();
        let me = Identity::get();
        let base = LockInfo {
            kind: "backup".into(),
            exclusive: false,
            host: crate::host_name(),
            pid: 999_999_999, // no such process
            created: now,
            refreshed: now,
            boot_id: me.boot_id.clone(),
            pid_ns: me.pid_ns,
            start_time: Some(1),
        };
        if me.boot_id.is_some() && me.pid_ns.is_some() {
            assert!(base.is_stale(now), "same identity, no such pid");
        }
        let other_ns = LockInfo {
            pid_ns: Some(1),
            ..base.clone()
        };
        assert!(!other_ns.is_stale(now), "another pid namespace");
        let other_boot = LockInfo {
            boot_id: Some("another boot".into()),
            ..base.clone()
        };
        assert!(!other_boot.is_stale(now), "another boot or machine");
        let unknown = LockInfo {
            boot_id: None,
            pid_ns: None,
            start_time: None,
            ..base.clone()
        };
        assert!(!unknown.is_stale(now), "no identity: age only");
        let old = LockInfo {
            refreshed: now - chrono::Duration::minutes(31),
            ..other_ns
        };
        assert!(old.is_stale(now), "age applies to every lock");
        // Our own pid, recorded with another start time: a reused pid.
        let reused = LockInfo {
            pid: std::process::id(),
            start_time: me.start_time.map(|t| t + 1),
            ..base
        };
        if me.pid_ns.is_some() && me.start_time.is_some() {
            assert!(reused.is_stale(now));
        }
    }

    /// B.13: of many contenders started together, exactly one wins.
    #[test]
    fn exactly_one_contender_claims_a_sole_lock() {
        let d = tempfile::tempdir().unwrap();
        let s = storage(d.path());
        for _ in 0..3 {
            let barrier = std::sync::Barrier::new(6);
            let won = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|sc| {
                for _ in 0..6 {
                    sc.spawn(|| {
                        barrier.wait();
                        if let Ok(claim) = claim_sole(&s, "archive r").unwrap() {
                            let held = LockGuard::acquire(&s, "archive r", false).unwrap();
                            claim.release().unwrap();
                            won.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(300));
                            held.release().unwrap();
                        }
                    });
                }
            });
            assert_eq!(won.load(Ordering::SeqCst), 1);
        }
    }
}
