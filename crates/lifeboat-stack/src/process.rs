//! Processes a stack runs beyond the command that started them: spawned in
//! their own process group with output to a log file, identified by pid and
//! start time (a reused pid is not ours), stopped by SIGTERM then SIGKILL.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::{Result, StackError};

/// A running process of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    /// Its pid (and process group id).
    pub pid: i32,
    /// Its start time (`/proc/PID/stat` field 22).
    pub start_time: u64,
}

impl Proc {
    /// Whether this process (not a reuse of its pid) is still running.
    pub fn alive(&self) -> bool {
        lifeboat_instance::supervise::start_time(self.pid) == Some(self.start_time)
    }

    /// SIGTERM to its group, SIGKILL after `grace`; true when it had to be killed.
    pub fn stop(&self, grace: Duration) -> bool {
        if !self.alive() {
            return false;
        }
        let Some(p) = Pid::from_raw(self.pid) else {
            return false;
        };
        let _ = rustix::process::kill_process_group(p, Signal::TERM);
        let until = Instant::now() + grace;
        while self.alive() {
            if Instant::now() > until {
                let _ = rustix::process::kill_process_group(p, Signal::KILL);
                let until = Instant::now() + Duration::from_secs(5);
                while self.alive() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Spawns `cmd` in its own process group, stdin closed, stdout and stderr
/// appended to `log`; it is not waited for (it outlives this process).
pub fn spawn(mut cmd: Command, log: &Path) -> Result<(Proc, std::process::Child)> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| StackError::io("open", log, e))?;
    let f2 = f.try_clone().map_err(|e| StackError::io("open", log, e))?;
    let program = format!("{:?}", cmd.get_program());
    let child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .spawn()
        .map_err(|e| StackError::Process(format!("cannot start {program}: {e}")))?;
    let pid = child.id() as i32;
    let start_time = lifeboat_instance::supervise::start_time(pid).ok_or_else(|| {
        StackError::Process(format!("{program} exited at once; see {}", log.display()))
    })?;
    Ok((Proc { pid, start_time }, child))
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| StackError::Process(format!("no free port on 127.0.0.1: {e}")))?;
    Ok(l.local_addr().map(|a| a.port()).unwrap_or(0))
}

/// The last `n` lines of a log, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}
