//! The store's clock: "now" for every retention, lock and grace decision.
//!
//! A client's clock is whatever its user set (or `faketime` fakes). Judged by
//! it, a compliance lock would end when the client says so, and a vault lock
//! configuration that has been immutable for days would be changeable again.
//! So the engine takes "now" from the storage ([`Storage::now`]):
//!
//! - on a directory, the modification time the kernel gives a probe file this
//!   process creates under `tmp/` (and removes at once): the time of the
//!   machine that owns the directory, which no `LD_PRELOAD` or per-process
//!   setting changes (only whoever may set the system clock — who may also
//!   rewrite the directory: see the format spec, §13);
//! - on S3, the `Date` header of the store's answer to a `HEAD` of the bucket
//!   (present on every answer, a refusal included).
//!
//! A probe is made at most once a minute per storage handle; in between,
//! "now" is the probe's time plus the time elapsed since on the process's
//! monotonic clock, so a long-running writer (a binlog archive writing a
//! point a second) asks the store once a minute, and a clock that runs fast
//! or slow is off by at most a minute. The times the store gives the objects
//! themselves (file mtime, S3 `LastModified`) are listed by
//! [`Storage::list_modified`]: forget judges points and prune judges locks by them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::error::{Result, VaultError};
use crate::storage::{Location, Storage};

/// How long a probe of the store's clock is used before the next one.
const PROBE_EVERY: Duration = Duration::from_secs(60);

/// A probe: the store's time, and when it was taken on this process's
/// monotonic clock.
type Probe = (DateTime<Utc>, Instant);

/// The last probe of a storage's clock. Shared by clones of a handle.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClockCache(Arc<Mutex<Option<Probe>>>);

impl Storage {
    /// Now, on the storage's clock (see the module). Fails when the storage
    /// cannot be probed (a directory this process may not write to, an
    /// object store that does not answer): nothing is then decided.
    pub fn now(&self) -> Result<DateTime<Utc>> {
        let mut cache = self.clock_cache().0.lock().expect("clock");
        if let Some((at, when)) = *cache
            && when.elapsed() < PROBE_EVERY
        {
            return Ok(at + chrono::Duration::from_std(when.elapsed()).expect("short"));
        }
        let t = self.probe_clock()?;
        *cache = Some((t, Instant::now()));
        Ok(t)
    }

    fn probe_clock(&self) -> Result<DateTime<Utc>> {
        match self.loc() {
            Location::Dir(root) => probe_dir(root),
            Location::S3 { .. } => {
                let ol = crate::objectlock::ObjectLock::for_location(self.loc())?
                    .expect("an S3 location");
                ol.server_time()
            }
        }
    }

    /// Lists every object below `dir` with the time the storage last wrote
    /// it (file mtime, S3 `LastModified`; asked with a stat when the listing
    /// does not carry it): times the writing client cannot choose.
    pub fn list_modified(&self, dir: &str) -> Result<Vec<(String, Option<DateTime<Utc>>)>> {
        let entries = match self.run("list", dir, async {
            self.operator().list_with(dir).recursive(true).await
        }) {
            Ok(v) => v,
            Err(VaultError::Missing { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in entries {
            if e.metadata().is_dir() {
                continue;
            }
            let t = match e.metadata().last_modified() {
                Some(t) => Some(t),
                None => match self.run("stat", e.path(), self.operator().stat(e.path())) {
                    Ok(m) => m.last_modified(),
                    Err(VaultError::Missing { .. }) => continue,
                    Err(err) => return Err(err),
                },
            };
            let t = t.map(|t| DateTime::<Utc>::from(std::time::SystemTime::from(t)));
            out.push((e.path().to_string(), t));
        }
        Ok(out)
    }
}

/// Creates `ROOT/tmp/clock-<random>`, reads the modification time the
/// kernel gave it, removes it.
fn probe_dir(root: &std::path::Path) -> Result<DateTime<Utc>> {
    let tmp = root.join("tmp");
    crate::private::create_dir_all(&tmp)
        .map_err(|e| VaultError::io("create directory", &tmp, e))?;
    let t = probe_in(&tmp).map_err(|(what, path, e)| VaultError::io(what, path, e))?;
    Ok(DateTime::<Utc>::from(t))
}

/// The file system's time in `dir`: the modification time it gives a new
/// empty file `clock-<random>` there (removed at once). On failure: what
/// failed, on which path.
pub(crate) fn probe_in(
    dir: &std::path::Path,
) -> std::result::Result<std::time::SystemTime, (&'static str, std::path::PathBuf, std::io::Error)>
{
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = [0u8; 8];
    getrandom::fill(&mut name).expect("getrandom");
    let path = dir.join(format!("clock-{}", hex::encode(name)));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ("probe the storage's clock: create", path.clone(), e))?;
    let stamp = f.metadata().and_then(|m| m.modified());
    drop(f);
    let removed = std::fs::remove_file(&path);
    let stamp = stamp.map_err(|e| ("read the modification time of", path.clone(), e))?;
    removed.map_err(|e| ("remove", path, e))?;
    Ok(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_probe_leaves_nothing_and_tells_the_kernels_time() {
        let d = tempfile::tempdir().unwrap();
        let s = Storage::open(&Location::Dir(d.path().join("v")), true).unwrap();
        let before = Utc::now();
        let t = s.now().unwrap();
        let after = Utc::now();
        // The kernel's coarse clock may lag the fine one by a tick.
        assert!(
            t >= before - chrono::Duration::milliseconds(50) && t <= after,
            "{t}"
        );
        assert_eq!(
            std::fs::read_dir(d.path().join("v/tmp")).unwrap().count(),
            0
        );
        // Within a minute the cached probe is used: nothing is created.
        std::fs::remove_dir(d.path().join("v/tmp")).unwrap();
        assert!(s.now().unwrap() >= t);
        assert!(!d.path().join("v/tmp").exists());
    }
}
