//! The browser tests' scripts: a node script driving Debian's Chromium
//! (headless, through playwright-core) from its own directory, which prints
//! its findings as JSON.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory of browser scripts with their node modules installed, and
/// the Chromium they drive (`CHROMIUM`, else `/usr/bin/chromium`).
pub struct Browser {
    dir: PathBuf,
    chromium: String,
}

impl Browser {
    /// The scripts in `dir`; asserts that `modules` are installed there
    /// (`npm ci`), that Chromium is there and that node runs.
    pub fn new(dir: &Path, modules: &[&str]) -> Browser {
        for m in modules {
            assert!(
                dir.join("node_modules").join(m).is_dir(),
                "{m} is not installed: run npm ci --prefix {}",
                dir.display()
            );
        }
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&chromium).exists(),
            "{chromium} is missing: apt-get install chromium"
        );
        assert!(
            Command::new("node").arg("--version").output().is_ok(),
            "node is missing: apt-get install nodejs npm"
        );
        Browser {
            dir: dir.to_path_buf(),
            chromium,
        }
    }

    /// The Chromium the scripts drive.
    pub fn chromium(&self) -> &str {
        &self.chromium
    }

    /// Runs `node SCRIPT ARGS` in the scripts' directory and parses what it
    /// prints; a failed run panics with its output, the screenshot it left
    /// (`failure_shot`) and `log()` (the served program's log).
    pub fn run<A: AsRef<OsStr>>(
        &self,
        script: &str,
        args: &[A],
        failure_shot: &Path,
        log: impl FnOnce() -> String,
    ) -> serde_json::Value {
        let out = Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(&self.dir)
            .env("CHROMIUM", &self.chromium)
            .output()
            .expect("node (apt-get install nodejs)");
        assert!(
            out.status.success(),
            "the browser run failed (see {}):\n{}\n{}\n{}",
            failure_shot.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            log()
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}
