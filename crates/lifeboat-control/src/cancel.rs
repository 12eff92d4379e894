//! Cancelling a running job: SIGTERM to the process that runs it, which
//! stops the backup cleanly (no point; the data stored so far is kept for
//! the next run) and records the job `cancelled`. `lifeboat jobs cancel`
//! and the REST API both call [`cancel`].

use serde::Serialize;

use crate::store::{JobStore, SqliteStore, job_process_alive, status};
use crate::{ControlError, Result};

/// What a cancel request found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Cancel {
    /// The job's process was asked to stop.
    Requested {
        /// The process signalled.
        pid: u32,
    },
    /// There is no such job.
    NotFound,
    /// The job is not running (or its process is gone).
    NotRunning {
        /// Its status.
        status: String,
    },
}

/// Asks job `id`'s process to stop (SIGTERM).
pub fn cancel(store: &SqliteStore, id: i64) -> Result<Cancel> {
    let Some(j) = store.get(id)? else {
        return Ok(Cancel::NotFound);
    };
    if j.status != status::RUNNING || !job_process_alive(store, &j)? {
        return Ok(Cancel::NotRunning { status: j.status });
    }
    // Never the daemon itself: a job it runs in its own process (a retention
    // pass) is not cancelled by signalling it, which would stop every job.
    if j.pid == std::process::id() || is_daemon(j.pid) {
        return Err(ControlError::Refused(format!(
            "job {id} ({}) runs inside `lifeboat serve` (process {}): it cannot be cancelled on its own; it ends by itself, or stop the daemon",
            j.kind, j.pid
        )));
    }
    let pid = rustix::process::Pid::from_raw(j.pid as i32)
        .ok_or_else(|| ControlError::Refused(format!("job {id} has no valid process id")))?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).map_err(|e| {
        ControlError::Refused(format!("cannot signal process {} of job {id}: {e}", j.pid))
    })?;
    Ok(Cancel::Requested { pid: j.pid })
}

/// Whether process `pid` is a `lifeboat serve` (its command line has the
/// `serve` subcommand).
fn is_daemon(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_lifeboat = args
        .first()
        .is_some_and(|a| a.ends_with(b"lifeboat") || a.ends_with(b"lifeboat (deleted)"));
    is_lifeboat && args.iter().skip(1).any(|a| *a == b"serve")
}
