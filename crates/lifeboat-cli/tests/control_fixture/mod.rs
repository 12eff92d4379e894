//! What the control-plane tests share: a working directory with a
//! `lifeboat.toml`, a `Cli` whose environment names the file and the state
//! directory, the two-site set-up (a directory vault and an S3 vault on moto,
//! a real mariadbd, files and a bucket), and a running daemon whose JSON
//! events the test reads.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lifeboat_testkit::Cli;
use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use serde_json::Value;

pub fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

/// A `Cli` for directory `w`: `w/lifeboat.toml`, state in `w/state`, S3 credentials.
pub fn control_cli(w: &Path) -> Cli {
    let mut c = Cli::new(bin(), &w.join("unused"));
    c.env = CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.with_workdir(w)
}

/// Two sites: S3 (moto) with bucket `dr-vault`, a mariadbd with a `backup`
/// user (password `db-secret-1`) and a `shop.orders` table, an app tree in
/// `w/app` and a bucket directory in `w/bucket`.
pub struct TwoSites {
    pub s3: S3Server,
    pub db: MariaDb,
    /// The S3 vault's URL.
    pub dr: String,
}

impl TwoSites {
    pub fn start(w: &Path) -> TwoSites {
        let s3 = S3Server::start();
        s3.create_bucket("dr-vault");
        let db = MariaDb::start(); // binlog on
        db.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, total INT); INSERT INTO shop.orders VALUES (1, 10), (2, 20);");
        db.sql(
            "CREATE USER 'backup'@'%' IDENTIFIED BY 'db-secret-1'; GRANT ALL ON *.* TO 'backup'@'%';",
        );
        lifeboat_testkit::make_sample_tree(&w.join("app"), 5);
        lifeboat_testkit::make_sample_tree(&w.join("bucket"), 6);
        let dr = s3.url("dr-vault", "lifeboat");
        TwoSites { s3, db, dr }
    }

    /// The sites, vaults and the three resources (`shop-db`, `shop-files`,
    /// `shop-assets`) as TOML; `db_extra` goes into the database's table.
    pub fn toml(&self, w: &Path, db_extra: &str) -> String {
        format!(
            r#"[site.primary]
root = "{w}"
[site.secondary]
endpoint = "{endpoint}"

[vault.main]
site = "primary"
location = "file://{w}/main"
[vault.dr]
site = "secondary"
location = "{dr}"
password_env = "DR_PASSWORD"

[resource.shop-db]
site = "primary"
dsn = "mysql://backup@127.0.0.1:{port}"
password_env = "SHOP_DB_PASSWORD"
{db_extra}
[resource.shop-files]
paths = ["{w}/app"]
[resource.shop-assets]
kind = "bucket"
location = "file://{w}/bucket"
"#,
            w = w.display(),
            endpoint = self.s3.endpoint(),
            port = self.db.port,
            dr = self.dr,
        )
    }

    /// `control_cli` plus the two sites' passwords.
    pub fn cli(&self, w: &Path) -> Cli {
        let mut c = control_cli(w);
        c.env
            .push(("DR_PASSWORD".into(), "dr password for tests".into()));
        c.env
            .push(("SHOP_DB_PASSWORD".into(), "db-secret-1".into()));
        c
    }
}

/// A running `lifeboat serve --json`, its events read on a thread.
pub struct Daemon {
    pub child: Child,
    rx: mpsc::Receiver<Value>,
    /// Every event read so far.
    pub seen: Vec<Value>,
}

impl Daemon {
    /// Starts `lifeboat serve --json ARGS` with `c`'s environment.
    pub fn start(c: &Cli, args: &[&str]) -> Daemon {
        // The REST API on a free port: tests run side by side.
        let mut a = vec!["serve", "--json", "--listen", "127.0.0.1:0"];
        a.extend(args);
        let mut cmd: Command = c.command(&a);
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start lifeboat serve");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("serve (not JSON): {line}"),
                }
            }
        });
        Daemon {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// The next event (after those seen) that matches, within `limit`.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "no daemon event {what} within {limit:?}; events:\n{}",
                    self.seen
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }

    /// The next event named `event`.
    pub fn wait_event(&mut self, limit: Duration, event: &str) -> Value {
        self.wait_for(limit, event, |v| v["event"] == event)
    }

    /// Events named `event` seen so far.
    pub fn seen(&self, event: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|v| v["event"] == event)
            .cloned()
            .collect()
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// SIGTERM, then waits for the exit (reading the remaining events).
    pub fn stop(mut self) -> (ExitStatus, Vec<Value>) {
        self.signal(rustix::process::Signal::TERM);
        let st = self.child.wait().unwrap();
        while let Ok(v) = self.rx.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(v);
        }
        (st, std::mem::take(&mut self.seen))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each point of the vault (`v`'s) as `resource:kind`, in its list's order.
pub fn point_kinds(v: &Cli) -> Vec<String> {
    v.json(&["points", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p["resource"].as_str().unwrap(),
                p["kind"].as_str().unwrap()
            )
        })
        .collect()
}

/// Jobs in the history (newest first), as JSON.
pub fn jobs(c: &Cli, extra: &[&str]) -> Vec<Value> {
    let mut a = vec!["jobs", "list", "--limit", "1000"];
    a.extend(extra);
    c.json(&a).as_array().unwrap().clone()
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

pub fn state_dir(w: &Path) -> PathBuf {
    w.join("state")
}
