//! Processes the end-to-end tests start and watch: the sample shop's binary,
//! whether a process is alive.

use std::path::{Path, PathBuf};
use std::process::Command;

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
