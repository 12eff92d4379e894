//! Starting a restored instance and stopping it again.
//!
//! ```text
//! start: DIR/launch.json → the command in its own process group (setpgid),
//!        stdin /dev/null, stdout and stderr appended to DIR/launch.log,
//!        its pid and start time in DIR/launch.pid
//!        → GET the health URL every 100 ms until it answers 200
//!          exits first / timeout → the whole group stopped (TERM, then KILL),
//!          the error names the cause and quotes the end of launch.log
//! stop:  DIR/launch.pid → same process (pid and start time)? → TERM to the
//!        group, up to 10 s, then KILL → launch.pid removed
//! ```
//! The application outlives the `lifeboat` process that started it (it is a
//! service); `lifeboat instance stop DIR` is how it ends.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::launch::{self, ResolvedLaunch};
use crate::{InstanceError, Result};

/// Output of the started application, in the restore's target.
pub const LAUNCH_LOG: &str = "launch.log";
/// Who runs: pid and start time of the started application.
pub const LAUNCH_PID: &str = "launch.pid";

/// Contents of `launch.pid`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PidFile {
    /// Process id (also its process group id).
    pub pid: i32,
    /// Field 22 of `/proc/PID/stat`: tells a reused pid from ours.
    pub start_time: u64,
    /// The command, for messages.
    pub command: Vec<String>,
}

/// A started application.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    /// Its pid.
    pub pid: i32,
    /// Seconds from start until the health URL answered 200.
    pub started_in_s: f64,
    /// The health URL checked.
    pub health: Option<String>,
    /// Its output.
    pub log: PathBuf,
}

/// A stopped application.
#[derive(Debug, Clone, Serialize)]
pub struct Stopped {
    /// Its pid.
    pub pid: i32,
    /// Whether it had to be killed (did not end within 10 s of SIGTERM).
    pub killed: bool,
    /// Whether it had ended already.
    pub was_running: bool,
}

/// Field 22 of `/proc/PID/stat` (the start time), `None` when the process
/// is gone or a zombie: with the pid it tells our process from a reused pid.
pub fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field 22 is f[19].
    if f.first() == Some(&"Z") {
        return None;
    }
    f.get(19)?.parse().ok()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// One GET; the status code, or why there is none.
pub fn http_status(url: &str, timeout: Duration) -> std::result::Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// is supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let sa = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} has no address"))?;
    let mut s = TcpStream::connect_timeout(&sa, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(e.to_string()),
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {head:?}"))
}

/// Stops a process group: TERM, up to `grace`, then KILL.
fn stop_group(pid: i32, grace: Duration, child: Option<&mut Child>) -> bool {
    let p = Pid::from_raw(pid).expect("a positive pid");
    let _ = rustix::process::kill_process_group(p, Signal::TERM);
    let until = Instant::now() + grace;
    let mut child = child;
    let gone = |child: &mut Option<&mut Child>| match child {
        Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        None => start_time(pid).is_none(),
    };
    while Instant::now() < until {
        if gone(&mut child) {
            // Leftovers of the group (children that ignored TERM) go too.
            let _ = rustix::process::kill_process_group(p, Signal::KILL);
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = rustix::process::kill_process_group(p, Signal::KILL);
    if let Some(c) = child {
        let _ = c.wait();
    }
    true
}

/// Starts the application restored in `dir` and waits until it is healthy.
pub fn start(dir: &Path) -> Result<Started> {
    let l: ResolvedLaunch = launch::read(dir)?;
    let pid_path = dir.join(LAUNCH_PID);
    if let Some(p) = read_pid(dir)?
        && start_time(p.pid) == Some(p.start_time)
    {
        return Err(InstanceError::Start(format!(
            "the instance in {} is already running (pid {}); stop it first with `lifeboat instance stop {}`",
            dir.display(),
            p.pid,
            dir.display()
        )));
    }
    let log_path = dir.join(LAUNCH_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| InstanceError::io("open", &log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| InstanceError::io("open", &log_path, e))?;
    let cwd = l
        .cwd
        .clone()
        .map(PathBuf::from)
        .unwrap_or(dir.to_path_buf());
    let begun = Instant::now();
    let mut child = Command::new(&l.command[0])
        .args(&l.command[1..])
        .current_dir(&cwd)
        .envs(&l.env)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| {
            InstanceError::Start(format!(
                "cannot start {} (in {}): {e}",
                l.command[0],
                cwd.display()
            ))
        })?;
    let pid = child.id() as i32;
    let pf = PidFile {
        pid,
        start_time: start_time(pid).unwrap_or(0),
        command: l.command.clone(),
    };
    std::fs::write(&pid_path, serde_json::to_vec(&pf).expect("serializes"))
        .map_err(|e| InstanceError::io("write", &pid_path, e))?;
    let Some(url) = l.health.clone() else {
        return Ok(Started {
            pid,
            started_in_s: begun.elapsed().as_secs_f64(),
            health: None,
            log: log_path,
        });
    };
    let timeout = Duration::from_secs_f64(l.health_timeout_s);
    let mut last;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            stop_group(pid, Duration::from_secs(2), None);
            let _ = std::fs::remove_file(&pid_path);
            return Err(InstanceError::Start(format!(
                "{} exited ({status}) before {url} answered 200; the end of {}:\n{}",
                l.command[0],
                log_path.display(),
                tail(&log_path, 20)
            )));
        }
        match http_status(&url, Duration::from_secs(1)) {
            Ok(200) => {
                return Ok(Started {
                    pid,
                    started_in_s: begun.elapsed().as_secs_f64(),
                    health: Some(url),
                    log: log_path,
                });
            }
            Ok(code) => last = format!("it answered {code}"),
            Err(e) => last = e,
        }
        if begun.elapsed() >= timeout {
            stop_group(pid, Duration::from_secs(5), Some(&mut child));
            let _ = std::fs::remove_file(&pid_path);
            return Err(InstanceError::Start(format!(
                "{} did not become healthy within {:.0}s: {url} never answered 200 (last: {last}); it was stopped. The end of {}:\n{}",
                l.command[0],
                l.health_timeout_s,
                log_path.display(),
                tail(&log_path, 20)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_pid(dir: &Path) -> Result<Option<PidFile>> {
    let path = dir.join(LAUNCH_PID);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            InstanceError::Usage(format!(
                "{} is not a pid file of lifeboat: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(InstanceError::io("read", &path, e)),
    }
}

/// The pid of the application started in `dir`, if it still runs.
pub fn running(dir: &Path) -> Option<i32> {
    let p = read_pid(dir).ok()??;
    (start_time(p.pid) == Some(p.start_time)).then_some(p.pid)
}

/// Stops the application started in `dir`.
pub fn stop(dir: &Path) -> Result<Stopped> {
    let Some(p) = read_pid(dir)? else {
        return Err(InstanceError::Usage(format!(
            "nothing was started in {} (no {LAUNCH_PID}; start it with `lifeboat restore instance … --start`)",
            dir.display()
        )));
    };
    let running = start_time(p.pid) == Some(p.start_time);
    let killed = if running {
        stop_group(p.pid, Duration::from_secs(10), None)
    } else {
        false
    };
    let path = dir.join(LAUNCH_PID);
    std::fs::remove_file(&path).map_err(|e| InstanceError::io("remove", &path, e))?;
    Ok(Stopped {
        pid: p.pid,
        killed,
        was_running: running,
    })
}
