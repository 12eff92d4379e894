//! Locks in the state directory: one daemon per state directory
//! (`daemon.lock`), one run per plan (`locks/plan-NAME.lock`); and the mark
//! that keeps a switched-over site from acting as the primary again.
//!
//! Each is an exclusive `flock(2)` on a file that holds the holder's pid and
//! its start time: the kernel releases it when the holder's process ends,
//! however it ends (a killed daemon leaves no stale lock), and the file
//! names the holder for the refusal's message. A lock file is opened
//! close-on-exec, so a child (a hook, a `jobs run`) never inherits it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::state::StateDir;
use crate::{ControlError, Result};

/// A lock held until it is dropped.
#[derive(Debug)]
pub struct Held {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// Another process holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// The lock file.
    pub path: PathBuf,
    /// The holder's pid, when its file names one.
    pub pid: Option<u32>,
}

impl Busy {
    /// "process N" or "another process".
    pub fn holder(&self) -> String {
        self.pid
            .map_or_else(|| "another process".into(), |p| format!("process {p}"))
    }
}

/// Takes the exclusive lock on `path` (created 0600), or says who holds it.
pub fn try_lock(path: &Path) -> Result<std::result::Result<Held, Busy>> {
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ControlError::io("cannot create the lock directory", dir, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| ControlError::io("cannot open the lock file", path, e))?;
    if flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut text = String::new();
        let _ = f.read_to_string(&mut text);
        let pid = text.split_whitespace().next().and_then(|p| p.parse().ok());
        return Ok(Err(Busy {
            path: path.to_path_buf(),
            pid,
        }));
    }
    let me = std::process::id();
    let start = crate::store::process_start(me).unwrap_or_default();
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| f.write_all(format!("{me} {start}\n").as_bytes()))
        .map_err(|e| ControlError::io("cannot write the lock file", path, e))?;
    Ok(Ok(Held {
        _file: f,
        path: path.to_path_buf(),
    }))
}

impl StateDir {
    /// The daemon's lock file.
    pub fn daemon_lock_path(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }

    /// The lock a daemon holds on this state directory for as long as it
    /// runs; refused (naming the holder's pid) while another daemon holds it.
    pub fn lock_daemon(&self) -> Result<Held> {
        self.create()?;
        try_lock(&self.daemon_lock_path())?.map_err(|b| {
            ControlError::Refused(format!(
                "another `lifeboat serve` ({}) runs on the state directory {} (it holds {}): \
                 stop it first, or give this one another --state",
                b.holder(),
                self.root.display(),
                b.path.display()
            ))
        })
    }

    /// The lock file of plan `plan`'s runs (the name escaped: any byte but
    /// letters, digits, `-` and `_` as `%XX`).
    pub fn plan_lock_path(&self, plan: &str) -> PathBuf {
        let mut name = String::from("plan-");
        for b in plan.bytes() {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                name.push(b as char);
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        name.push_str(".lock");
        self.root.join("locks").join(name)
    }

    /// The lock of one run of plan `plan` (from the daemon, the API or the
    /// command line), or who holds it.
    pub fn lock_plan(&self, plan: &str) -> Result<std::result::Result<Held, Busy>> {
        self.create()?;
        try_lock(&self.plan_lock_path(plan))
    }
}

/// `ROOT/stacks/STACK/switched-over.json`: stack `stack` in the site whose
/// root is `root` was switched over to another site. `stack up` there
/// refuses, and the daemon starts no binlog archive of that site's
/// databases of the stack, while it is there.
pub fn switched_over_mark(root: &Path, stack: &str) -> PathBuf {
    root.join("stacks").join(stack).join("switched-over.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_refused_to_a_second_taker_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir {
            root: d.path().join("state"),
        };
        let held = s.lock_daemon().unwrap();
        let e = s.lock_daemon().unwrap_err().to_string();
        assert!(
            e.contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        drop(held);
        s.lock_daemon().unwrap();
        let a = s.lock_plan("nightly/a b").unwrap().unwrap();
        assert!(a.path.ends_with("locks/plan-nightly%2Fa%20b.lock"));
        let busy = s.lock_plan("nightly/a b").unwrap().unwrap_err();
        assert_eq!(busy.pid, Some(std::process::id()));
        assert!(s.lock_plan("other").unwrap().is_ok());
    }
}
