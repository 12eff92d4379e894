//! What the replication tests share: a replicator process, its status,
//! `rclone check`, and writing objects the way a well-behaved writer does;
//! and, in its modules, what other tests share (`blobs`: damage aimed at
//! one blob; `copy`: vaults and
//! `lifeboat copy` between them; `recovery`: the world of
//! the recovery tests without a database; `sites`: the two sites).
#![allow(dead_code)]

pub mod blobs;
pub mod copy;
pub mod recovery;
pub mod sites;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

pub struct Replicator {
    child: Child,
    state: PathBuf,
}

impl Replicator {
    pub fn start(from: &str, to: &str, state: &Path, extra: &[&str]) -> Replicator {
        let mut c = Command::new(BIN);
        c.args(["replicate", "--from", from, "--to", to, "--state"])
            .arg(state)
            .args(extra)
            .env("LIFEBOAT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in CREDENTIALS {
            c.env(k, v);
        }
        Replicator {
            child: c.spawn().expect("start lifeboat replicate"),
            state: state.to_path_buf(),
        }
    }

    pub fn status(&self) -> Value {
        status(&self.state)
    }

    /// Waits until `cond(status)` holds.
    pub fn wait(&self, what: &str, secs: u64, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; status: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the backlog is empty after the first listing.
    pub fn settle(&self, secs: u64) -> Value {
        self.wait("an empty backlog", secs, |s| {
            s["phase"] == "replicating" && s["backlog_objects"] == 0 && s["in_flight"] == 0
        })
    }

    /// SIGTERM; asserts a clean exit.
    pub fn stop(mut self) -> Value {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "replicator exited with {st}");
        self.status()
    }

    pub fn peak_rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A source and a destination directory bucket below `dir` (`src` and
/// `dst`, the source made) and the replicator's state directory.
pub fn dir_buckets(dir: &Path, src: &str, dst: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (a, b) = (dir.join(src), dir.join(dst));
    std::fs::create_dir_all(&a).unwrap();
    (a, b, dir.join("state"))
}

/// The location of the directory bucket at `p`.
pub fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

pub fn status(state: &Path) -> Value {
    let o = Command::new(BIN)
        .args(["replicate", "status", "--json", "--state"])
        .arg(state)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .and_then(|a| a.first().cloned())
        .unwrap_or(Value::Null)
}

/// `rclone check` between two remotes/paths; returns (success, output).
pub fn rclone_check(a: &str, b: &str, s3: Option<&S3Server>, extra: &[&str]) -> (bool, String) {
    let mut c = Command::new("rclone");
    // A CA bundle from the environment breaks rclone's S3 client on plain HTTP.
    // The replicator's mark in a replica (`.lifeboat-replicated`) is no
    // object of the content: Lifeboat never lists it, rclone is told.
    c.args(["check", a, b, "--exclude", "/.lifeboat-replicated"])
        .args(extra)
        .env_remove("AWS_CA_BUNDLE");
    if let Some(s) = s3 {
        for r in ["SRC", "DST"] {
            c.env(format!("RCLONE_CONFIG_{r}_TYPE"), "s3")
                .env(format!("RCLONE_CONFIG_{r}_PROVIDER"), "Other")
                .env(format!("RCLONE_CONFIG_{r}_ENDPOINT"), s.endpoint())
                .env(format!("RCLONE_CONFIG_{r}_ACCESS_KEY_ID"), "test")
                .env(format!("RCLONE_CONFIG_{r}_SECRET_ACCESS_KEY"), "test")
                .env(format!("RCLONE_CONFIG_{r}_REGION"), "us-east-1");
        }
    }
    let o = c.output().expect("rclone (apt install rclone)");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

pub fn assert_same(a: &str, b: &str, s3: Option<&S3Server>, extra: &[&str]) {
    let (ok, out) = rclone_check(a, b, s3, extra);
    assert!(ok, "rclone check {a} {b} found differences:\n{out}");
}

/// Writes a directory-bucket object the way a writer should (temp + rename),
/// with metadata in the documented xattrs.
pub fn put_file(
    root: &Path,
    key: &str,
    data: &[u8],
    content_type: Option<&str>,
    meta: &[(&str, &str)],
) {
    let p = root.join(key);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = root.join(format!(".w-{}", key.replace('/', "_")));
    std::fs::write(&tmp, data).unwrap();
    let x = |n: &str, v: &str| {
        rustix::fs::setxattr(&tmp, n, v.as_bytes(), rustix::fs::XattrFlags::empty()).unwrap()
    };
    if let Some(ct) = content_type {
        x("user.lifeboat.content-type", ct);
    }
    for (k, v) in meta {
        x(&format!("user.lifeboat.meta.{k}"), v);
    }
    std::fs::rename(&tmp, &p).unwrap();
}

pub fn xattr(p: &Path, name: &str) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    rustix::fs::getxattr(p, name, &mut buf[..])
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

pub fn raw_put(s3: &S3Server, path: &str, headers: &[(&str, &str)], body: &[u8]) {
    let r = s3.request_with("PUT", path, headers, body).unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "PUT {path}: {r}");
}

pub fn body_of(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("")
}
