//! Starting child jobs from one long-lived thread.
//!
//! A child started by a `Launcher` asks the kernel to kill it when its
//! parent dies (`PR_SET_PDEATHSIG`), and prctl(2) counts as "parent" the
//! *thread* that forked it. tokio ends idle blocking-pool threads, so the
//! server does not fork from them: every child is forked by this one
//! thread, which lives as long as the server. A small thread per child
//! keeps the tail of its stderr and reaps it (a zombie would look alive to
//! the job store), recording how it exited.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How a child ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// The last 4 KiB of its stderr.
    pub stderr: String,
}

/// A started child: its pid and start time (see
/// [`lifeboat_control::store::process_start`]), read before it can be reaped,
/// so that its jobs are told from those of an earlier process with the same pid.
#[derive(Debug, Clone)]
pub struct Started {
    /// Its pid.
    pub pid: u32,
    /// Its start time.
    pub start: String,
}

type Request = (
    Command,
    tokio::sync::oneshot::Sender<std::io::Result<Started>>,
);

/// The thread that forks child jobs.
#[derive(Clone)]
pub struct Spawner {
    tx: mpsc::Sender<Request>,
    exits: Arc<Mutex<HashMap<u32, Exit>>>,
    running: Arc<Mutex<HashSet<u32>>>,
}

impl Spawner {
    /// Starts the thread.
    pub fn start() -> Spawner {
        let (tx, rx) = mpsc::channel::<Request>();
        let exits: Arc<Mutex<HashMap<u32, Exit>>> = Arc::default();
        let running: Arc<Mutex<HashSet<u32>>> = Arc::default();
        let (ex, run) = (exits.clone(), running.clone());
        std::thread::Builder::new()
            .name("lifeboat-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    cmd.stderr(Stdio::piped());
                    match cmd.spawn() {
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                        Ok(mut child) => {
                            let pid = child.id();
                            // Not reaped before the reaper below: readable.
                            let start =
                                lifeboat_control::store::process_start(pid).unwrap_or_default();
                            let _ = reply.send(Ok(Started { pid, start }));
                            run.lock().expect("running").insert(pid);
                            let (ex, run) = (ex.clone(), run.clone());
                            let _ = std::thread::Builder::new()
                                .name(format!("lifeboat-reap-{pid}"))
                                .spawn(move || {
                                    let mut buf = Vec::new();
                                    if let Some(mut e) = child.stderr.take() {
                                        let _ = e.read_to_end(&mut buf);
                                    }
                                    let code = child.wait().ok().and_then(|s| s.code());
                                    run.lock().expect("running").remove(&pid);
                                    let tail = &buf[buf.len().saturating_sub(4096)..];
                                    ex.lock().expect("exits").insert(
                                        pid,
                                        Exit {
                                            code,
                                            stderr: String::from_utf8_lossy(tail)
                                                .trim()
                                                .to_string(),
                                        },
                                    );
                                });
                        }
                    }
                }
            })
            .expect("cannot start the spawner thread");
        Spawner { tx, exits, running }
    }

    /// How many children are running.
    pub fn running(&self) -> usize {
        self.running.lock().expect("running").len()
    }

    /// SIGTERM to every running child (a run or restore records itself
    /// `cancelled`); waits up to `grace` for them to end, then SIGKILL.
    pub async fn stop_all(&self, grace: Duration) {
        let signal = |sig| {
            for pid in self.running.lock().expect("running").iter() {
                if let Some(p) = rustix::process::Pid::from_raw(*pid as i32) {
                    let _ = rustix::process::kill_process(p, sig);
                }
            }
        };
        signal(rustix::process::Signal::TERM);
        let deadline = Instant::now() + grace;
        while self.running() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        signal(rustix::process::Signal::KILL);
    }

    /// Forks `cmd`; returns its pid and start time.
    pub async fn spawn(&self, cmd: Command) -> std::io::Result<Started> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send((cmd, reply))
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
        rx.await
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
    }

    /// How child `pid` exited, once it has.
    pub fn exit(&self, pid: u32) -> Option<Exit> {
        self.exits.lock().expect("exits").get(&pid).cloned()
    }
}
