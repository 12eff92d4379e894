//! Every child process the daemon started and that is still running, so
//! that a shutdown can stop them: SIGTERM, a grace period, then SIGKILL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// The running children (pid → what it is).
#[derive(Debug, Clone, Default)]
pub struct Children {
    inner: Arc<Mutex<BTreeMap<u32, String>>>,
}

impl Children {
    /// Notes a started child.
    pub fn add(&self, pid: u32, what: &str) {
        self.lock().insert(pid, what.to_string());
    }

    /// Forgets a child that ended.
    pub fn remove(&self, pid: u32) {
        self.lock().remove(&pid);
    }

    /// How many are running.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, String>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `sig` to every running child.
    pub fn signal_all(&self, sig: Signal) {
        for pid in self.lock().keys() {
            signal(*pid, sig);
        }
    }

    /// SIGTERM to all; waits up to `grace` for them to end (their waiters
    /// remove them); then SIGKILL to the rest.
    pub async fn stop_all(&self, grace: Duration) {
        self.signal_all(Signal::TERM);
        let deadline = Instant::now() + grace;
        while !self.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !self.is_empty() {
            self.signal_all(Signal::KILL);
        }
    }
}

/// Sends `sig` to one process (gone already: nothing to do).
pub fn signal(pid: u32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid as i32) {
        let _ = kill_process(p, sig);
    }
}
