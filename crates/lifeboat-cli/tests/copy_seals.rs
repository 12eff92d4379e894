//! A database's binlog archive copied into a second vault (`copy --follow`,
//! as the daemon runs it for `copy_to`): the archive writes a seal point
//! every second, busy or idle (issue 21 C14), and folds them into a rollup
//! in its own vault; the copy folds the seal copies in the target as soon as
//! their rollup arrives there, so the second vault does not keep one point
//! per second, and stays restorable as far as the first. An idle stretch
//! leaves one rollup, not one per rollup interval, in both.

use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_testkit::archive::{reach, start_archive};
use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::procs::Bg;
use lifeboat_testkit::wait::wait_until;
use lifeboat_testkit::{Cli, tempdir};

/// The binary under test (`LIFEBOAT_TEST_BIN` runs the test against another
/// build).
fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

/// The vault's binlog points of `db`, and how far it can restore it.
fn binlog(c: &Cli) -> (usize, Option<DateTime<Utc>>) {
    let list = c.json(&["points", "list"]);
    let points: Vec<&serde_json::Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["resource"] == "db")
        .collect();
    let n = points
        .iter()
        .filter(|p| p["kind"] == "mysql-binlog")
        .count();
    (n, reach(&list, Some("db")))
}

#[test]
fn a_followed_copy_folds_the_seal_copies_into_their_rollup() {
    let t = tempdir().unwrap();
    let src = Cli::new(bin(), &t.path().join("primary"));
    src.ok(&["vault", "init"]);
    let mut dst = Cli::new(bin(), &t.path().join("secondary"));
    dst.password = "the secondary's own password".into();
    dst.ok(&["vault", "init"]);
    let db = MariaDb::start();
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)");
    src.ok(&[
        "backup",
        "mysql",
        "--dsn",
        &db.root_dsn(),
        "--resource",
        "db",
    ]);
    let mut archive = start_archive(
        &src,
        &db.root_dsn(),
        t.path(),
        &["--resource", "db", "--rollup-interval", "3s"],
    );
    let mut follow = Bg(src
        .command(&[
            "copy",
            "--to",
            &dst.vault,
            "--follow",
            "--interval",
            "200ms",
        ])
        .env("LIFEBOAT_TO_PASSWORD", &dst.password)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(t.path().join("follow.err")).unwrap())
        .spawn()
        .unwrap());
    // A write, then idle: a seal every second, a rollup every 3 s.
    db.sql("INSERT INTO shop.t VALUES (1)");
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(archive.stop().code(), Some(0), "the archive stops cleanly");
    // Its last rollup reaches the copy; then both vaults hold the same
    // binlog points (rollups only) and restore as far.
    let (want, reach) = binlog(&src);
    // The archive's own vault: the rollup with the write, and one for the
    // idle stretch (each idle rollup replaced the one before it).
    assert!(want <= 2, "{want} binlog points in the archive's vault");
    wait_until(Duration::from_secs(30), Duration::from_millis(300), || {
        let (n, r) = binlog(&dst);
        if n == want && r == reach {
            return Ok(());
        }
        Err(format!(
            "the copy holds {n} binlog points (restorable to {r:?}), the source {want} (to {reach:?}): {}",
            std::fs::read_to_string(t.path().join("follow.err")).unwrap_or_default()
        ))
    });
    assert!(reach.is_some());
    let code = follow.stop().code();
    assert!(matches!(code, Some(0) | Some(130)), "{code:?}");
    dst.ok(&["vault", "check"]);
}
