//! What the physical database point tests share: a throw-away server with
//! an InnoDB, an Aria and a MyISAM table, waiting for InnoDB to settle, the
//! tables' checksums, a `mariadbd` started on a restored data directory,
//! and the backup and restore commands.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::{Cli, TempDir, fresh_vault, tempdir};

pub const TABLES: &str = "shop.orders, shop.notes, shop.legacy";

pub fn vault() -> (TempDir, Cli) {
    fresh_vault(env!("CARGO_BIN_EXE_lifeboat"))
}

/// A server with an InnoDB table of some MiB, an Aria and a MyISAM table.
pub fn shop() -> MariaDb {
    let db = MariaDb::start();
    db.sql(
        "SET SESSION max_recursive_iterations = 100000;
         CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(255), qty INT) ENGINE=InnoDB;
         INSERT INTO shop.orders
           WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 30000)
           SELECT n, REPEAT(MD5(n), 6), n % 7 FROM s;
         CREATE TABLE shop.notes (id INT PRIMARY KEY, note TEXT) ENGINE=Aria;
         INSERT INTO shop.notes VALUES (1, 'first'), (2, 'second');
         CREATE TABLE shop.legacy (id INT, name VARCHAR(20)) ENGINE=MyISAM;
         INSERT INTO shop.legacy VALUES (1, 'old'), (2, 'older');",
    );
    settle(&db);
    db
}

/// Waits until InnoDB has written every changed page to its files (as a
/// server does on its own after a while): a copy taken right after a bulk
/// load holds the rows in its redo log, the next one in the table's pages.
pub fn settle(db: &MariaDb) {
    db.sql("SET GLOBAL innodb_max_dirty_pages_pct = 0; FLUSH TABLES;");
    let deadline = Instant::now() + Duration::from_secs(60);
    while db
        .sql("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
        .split('\t')
        .nth(1)
        .is_some_and(|n| n.trim() != "0")
    {
        assert!(Instant::now() < deadline, "InnoDB keeps dirty pages");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn checksums(db: &MariaDb) -> String {
    db.sql(&format!("CHECKSUM TABLE {TABLES}"))
}

/// `mariadbd` started on a restored data directory (socket only), stopped when dropped.
pub struct Restored {
    child: Child,
    run: TempDir,
}

impl Restored {
    pub fn start(datadir: &Path) -> Restored {
        let run = tempdir().unwrap();
        let bin = ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mariadbd");
        let child = Command::new(bin)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--socket={}", run.path().join("s.sock").display()))
            .arg(format!("--pid-file={}", run.path().join("pid").display()))
            .arg(format!(
                "--log-error={}",
                run.path().join("err.log").display()
            ))
            .arg(format!("--tmpdir={}", run.path().display()))
            .args([
                "--skip-networking",
                "--user=root",
                "--innodb-buffer-pool-size=64M",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut r = Restored { child, run };
        let deadline = Instant::now() + Duration::from_secs(60);
        while r.sql("SELECT 1").is_err() {
            if let Some(st) = r.child.try_wait().unwrap() {
                panic!(
                    "mariadbd on the restored directory exited ({st}):\n{}",
                    r.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start:\n{}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.run.path().join("err.log")).unwrap_or_default()
    }

    pub fn sql(&self, sql: &str) -> Result<String, String> {
        let o = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.run.path().join("s.sock").display()
            ))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .unwrap();
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        let _ = self.sql("SHUTDOWN");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn physical(c: &Cli, db: &MariaDb) -> serde_json::Value {
    c.json(&["backup", "mysql", "--physical", "--dsn", &db.root_dsn()])
}

pub fn restore(c: &Cli, point: &str, dir: &Path) -> std::process::Output {
    c.run(&[
        "restore",
        "mysql",
        point,
        "--physical",
        "--datadir",
        dir.to_str().unwrap(),
    ])
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
