//! The world of the recovery tests without a database (`recover_edges`,
//! `recover_protect`): two sites, the secondary's vault `dr`, a bucket
//! `assets` in the primary replicated into the secondary at the demo's
//! place (`ROOT/buckets/assets`), and stack `s` of members each test
//! declares; with the runs of `recover`, `drill` and `stack down` on it.

use std::path::{Path, PathBuf};
use std::process::Output;

use lifeboat_testkit::{Cli, TempDir, tempdir};
use serde_json::Value;

use super::BIN;
use super::sites::two_sites;

/// A working directory with its `lifeboat.toml` applied, and the runner of
/// its vault `dr` (the stack is taken down, not purged, on drop).
pub struct World {
    pub t: TempDir,
    pub c: Cli,
}

impl World {
    /// Writes the file — the sites, `dr` and the replicated bucket, then
    /// `members(w)` (the test's own resources and `[stack.s]`) — and applies
    /// it; `prepare(w)` runs first, to lay out the members' data.
    pub fn new(prepare: impl FnOnce(&Path), members: impl FnOnce(&Path) -> String) -> World {
        let t = tempdir().unwrap();
        let w = t.path().to_path_buf();
        std::fs::create_dir_all(w.join("primary/buckets/assets")).unwrap();
        prepare(&w);
        let text = format!(
            r#"{sites}[resource.assets]
kind = "bucket"
site = "primary"
location = "file://{w}/primary/buckets/assets"
[replication.assets]
from = "assets"
to = "file://{w}/secondary/buckets/assets"
{members}"#,
            sites = two_sites(&w, "dr"),
            w = w.display(),
            members = members(&w),
        );
        std::fs::write(w.join("lifeboat.toml"), text).unwrap();
        let c = Cli::new(BIN, &w.join("dr")).with_workdir(&w);
        let summary = c.json(&["validate"]);
        assert_eq!(
            (summary["stacks"].as_u64(), summary["drills"].as_u64()),
            (Some(1), Some(0))
        );
        c.ok(&["apply", "--auto-approve"]);
        World { t, c }
    }

    /// The working directory.
    pub fn w(&self) -> &Path {
        self.t.path()
    }

    /// The bucket in the primary.
    pub fn primary_bucket(&self) -> PathBuf {
        self.w().join("primary/buckets/assets")
    }

    /// Its replica in the secondary.
    pub fn replica(&self) -> PathBuf {
        self.w().join("secondary/buckets/assets")
    }

    /// A point of the bucket in `dr`.
    pub fn backup_bucket(&self) {
        let b = format!("file://{}", self.primary_bucket().display());
        self.c
            .ok(&["backup", "bucket", "--bucket", &b, "--resource", "assets"]);
    }

    /// One pass of the bucket's replication into the secondary (its output:
    /// a fenced replica refuses it).
    pub fn replicate(&self) -> Output {
        let from = format!("file://{}", self.primary_bucket().display());
        let to = format!("file://{}", self.replica().display());
        self.c
            .command(&[
                "replicate",
                "--from",
                &from,
                "--to",
                &to,
                "--existing",
                "--once",
                "--state",
            ])
            .arg(self.w().join("replication"))
            .output()
            .unwrap()
    }

    /// `recover` of stack `s` into the secondary with `extra` flags: its report.
    pub fn recover(&self, extra: &[&str]) -> Value {
        let mut args = vec!["recover", "--stack", "s", "--to", "secondary"];
        args.extend_from_slice(extra);
        self.c.json(&args)
    }

    /// `drill` of stack `s` into the secondary with `extra` flags, whatever
    /// its outcome: its exit code and report.
    pub fn drill(&self, extra: &[&str]) -> (Option<i32>, Value) {
        let mut args = vec!["drill", "--stack", "s", "--to", "secondary"];
        args.extend_from_slice(extra);
        self.c.json_exit(&args)
    }

    /// `stack down --purge` of `s` in the secondary.
    pub fn down(&self) {
        self.c.ok(&[
            "stack",
            "down",
            "--stack",
            "s",
            "--site",
            "secondary",
            "--purge",
        ]);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self
            .c
            .run(&["stack", "down", "--stack", "s", "--site", "secondary"]);
    }
}

/// Member `m`'s source in a recovery's report.
pub fn source<'a>(r: &'a Value, m: &str) -> &'a Value {
    r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["member"] == m)
        .unwrap_or_else(|| panic!("no source {m}: {r:#}"))
}
