//! What the instance tests share: a `Cli` on a vault, paths as text, a
//! command's errors, an outside tool run that must succeed.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use lifeboat_testkit::Cli;

pub const MIB: u64 = 1 << 20;

/// The `lifeboat` binary on `vault`.
pub fn cli(vault: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_lifeboat"), vault)
}

/// `p` as text.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs an outside tool (`mkfs.ext4`, `debugfs`, …) that must succeed.
pub fn sh(cmd: &str, args: &[&str]) -> Output {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    o
}
