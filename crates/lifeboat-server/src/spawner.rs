//! Starting child jobs from one long-lived thread.
//!
//! A child started by a `Launcher` asks the kernel to kill it when its
//! parent dies (`PR_SET_PDEATHSIG`), and prctl(2) counts as "parent" the
//! *thread* that forked it. tokio ends idle blocking-pool threads, so the
//! server does not fork from them: every child is forked by this one
//! thread, which lives as long as the server. A small thread per child
//! keeps the tail of its stderr and reaps it (a zombie would look alive to
//! the job store), recording how it exited.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};

/// How a child ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// The last 4 KiB of its stderr.
    pub stderr: String,
}

type Request = (Command, tokio::sync::oneshot::Sender<std::io::Result<u32>>);

/// The thread that forks child jobs.
#[derive(Clone)]
pub struct Spawner {
    tx: mpsc::Sender<Request>,
    exits: Arc<Mutex<HashMap<u32, Exit>>>,
}

impl Spawner {
    /// Starts the thread.
    pub fn start() -> Spawner {
        let (tx, rx) = mpsc::channel::<Request>();
        let exits: Arc<Mutex<HashMap<u32, Exit>>> = Arc::default();
        let ex = exits.clone();
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
                            let _ = reply.send(Ok(pid));
                            let ex = ex.clone();
                            let _ = std::thread::Builder::new()
                                .name(format!("lifeboat-reap-{pid}"))
                                .spawn(move || {
                                    let mut buf = Vec::new();
                                    if let Some(mut e) = child.stderr.take() {
                                        let _ = e.read_to_end(&mut buf);
                                    }
                                    let code = child.wait().ok().and_then(|s| s.code());
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
        Spawner { tx, exits }
    }

    /// Forks `cmd`; returns its pid.
    pub async fn spawn(&self, cmd: Command) -> std::io::Result<u32> {
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
