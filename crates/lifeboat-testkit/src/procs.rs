//! Processes the end-to-end tests start and watch: the sample shop's binary,
//! whether a process is alive, a background process killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

/// The `unishop` binary built next to `lifeboat_bin` (the test's
/// `CARGO_BIN_EXE_lifeboat`); built here when a filtered test run did not
/// build it.
pub fn unishop_bin(lifeboat_bin: &str) -> PathBuf {
    let p = Path::new(lifeboat_bin).with_file_name("unishop");
    if !p.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "unishop", "--bin", "unishop"])
            .status()
            .expect("cargo");
        assert!(st.success(), "cargo build -p unishop");
    }
    p
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(st) => {
            st[st.rfind(')').map_or(0, |i| i + 1)..]
                .split_whitespace()
                .next()
                != Some("Z")
        }
        Err(_) => false,
    }
}

/// A background process (a `lifeboat archive`, `copy --follow`, `serve`),
/// killed on drop (the children a daemon started die with it).
pub struct Bg(pub Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Bg {
    /// Sends `sig` to the process.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.0.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, sig);
    }

    /// SIGTERM, then waits (at most 60 s) for it to exit; its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        crate::wait::wait_until(Duration::from_secs(60), Duration::from_millis(50), || {
            self.0
                .try_wait()
                .unwrap()
                .ok_or_else(|| "did not stop on SIGTERM".to_string())
        })
    }
}
