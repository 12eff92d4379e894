//! Retention on database points: a locked snapshot, and a binlog archive whose
//! seals and rollups are locked — a rollup still replaces the seals it folds
//! in (its lock is at least as long), and the archive keeps running.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::{Cli, tempdir};

fn wait_for(log: &Path, needle: &str, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
    {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("the archive ended ({s}) before {needle:?}");
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn locked_binlog_seals_are_replaced_by_their_locked_rollup() {
    let t = tempdir().unwrap();
    let c = Cli::new(env!("CARGO_BIN_EXE_lifeboat"), &t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let db = MariaDb::start();
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)");
    let snap = c.json(&[
        "backup",
        "mysql",
        "--dsn",
        &db.root_dsn(),
        "--retain-for",
        "2d",
        "--lock",
        "compliance",
    ]);
    let id = snap["id"].as_str().unwrap();
    assert_eq!(
        c.json(&["points", "show", id])["retention"]["mode"],
        "compliance"
    );

    let log = t.path().join("archive.jsonl");
    let err = t.path().join("archive.err");
    let mut child = c
        .command(&[
            "archive",
            "mysql",
            "--dsn",
            &db.root_dsn(),
            "--seal-interval",
            "200ms",
            "--rollup-interval",
            "1s",
            "--spool",
            t.path().join("spool").to_str().unwrap(),
            "--retain-for",
            "1d",
            "--lock",
            "compliance",
            "--json",
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    for i in 0..5 {
        db.sql(&format!("INSERT INTO shop.t VALUES ({i}, {i})"));
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_for(&log, "\"event\":\"rolled-up\"", &mut child);
    db.sql("INSERT INTO shop.t VALUES (100, 100)");
    std::thread::sleep(Duration::from_millis(1500));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    let errors = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "archive failed: {errors}");
    let events = std::fs::read_to_string(&log).unwrap();
    assert!(
        !events.contains("reconnecting"),
        "the archive stumbled: {events}\n{errors}"
    );

    // Every binlog point is locked; the seals a rollup replaced are gone.
    let points = c.json(&["points", "list"]);
    let binlog: Vec<_> = points
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "mysql-binlog")
        .collect();
    assert!(!binlog.is_empty());
    for p in &binlog {
        assert_eq!(p["retention"]["mode"], "compliance", "{p}");
    }
    let replaced: usize = events
        .lines()
        .filter(|l| l.contains("\"rolled-up\""))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["replaced"]
                .as_u64()
                .unwrap() as usize
        })
        .sum();
    let sealed = events.lines().filter(|l| l.contains("\"sealed\"")).count();
    assert!(replaced > 0);
    assert!(
        binlog.len() < sealed,
        "{} binlog points for {sealed} seals: the rollups did not replace the locked seals",
        binlog.len()
    );
    c.ok(&["vault", "check"]);
}
