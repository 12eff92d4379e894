//! Copying a database's points — snapshots, binlog seals and rollups — to a
//! second vault while the archive runs (`copy --follow`), then point-in-time
//! recovery from the second vault alone, with a real `mariadbd` as source
//! and as target. The follow lag (last commit → restorable in the copy) is
//! measured and printed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_testkit::archive::{start_archive, wait_restorable};
use lifeboat_testkit::load::{LoadWriter, Op, expected_state, parse_state, state_diff};
use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::procs::Bg;
use lifeboat_testkit::{Cli, tempdir};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

/// A whole second after `after` that no op straddles.
fn clean_second(ops: &[Op], after: DateTime<Utc>) -> DateTime<Utc> {
    lifeboat_testkit::load::clean_second(ops, after.into()).into()
}

#[test]
fn a_followed_binlog_archive_restores_to_a_point_in_time_from_the_copy_alone() {
    let t = tempdir().unwrap();
    let src = Cli::new(BIN, &t.path().join("primary"));
    src.ok(&["vault", "init"]);
    let mut dst = Cli::new(BIN, &t.path().join("secondary"));
    dst.password = "the secondary's own password".into();
    dst.ok(&["vault", "init"]);
    let db = MariaDb::start();
    let target_db = MariaDb::start();
    db.sql("CREATE DATABASE shop");

    let mut archive = start_archive(&src, &db.root_dsn(), t.path(), &["--seal-interval", "1s"]);
    let writer = LoadWriter::start(db.port, "shop.load_rows", Duration::from_millis(5), 0);
    std::thread::sleep(Duration::from_millis(1000));
    let snap = src.json(&["backup", "mysql", "--dsn", &db.root_dsn()]);
    let mut follow = Bg(src
        .command(&[
            "copy",
            "--to",
            &dst.vault,
            "--follow",
            "--interval",
            "200ms",
            "--json",
        ])
        .env("LIFEBOAT_TO_PASSWORD", &dst.password)
        .stdout(std::fs::File::create(t.path().join("follow.json")).unwrap())
        .stderr(std::fs::File::create(t.path().join("follow.err")).unwrap())
        .spawn()
        .unwrap());
    std::thread::sleep(Duration::from_millis(4000));
    let (ops, err) = writer.stop();
    assert!(err.is_none(), "{err:?}");
    let last: DateTime<Utc> = ops.last().unwrap().committed.into();
    // The lag: from the last commit until the copy alone can restore it.
    wait_restorable(&dst, None, last, Duration::from_secs(60), || {
        "the copy".into()
    });
    let lag = Utc::now() - last;
    eprintln!(
        "follow lag: the secondary could restore the last commit {} ms after it was made",
        lag.num_milliseconds()
    );
    assert!(lag.num_seconds() < 15, "lag {lag}");
    assert_eq!(archive.stop().code(), Some(0), "the archive stops cleanly");
    let code = follow.stop().code();
    let out = std::fs::read_to_string(t.path().join("follow.json")).unwrap();
    let errs = std::fs::read_to_string(t.path().join("follow.err")).unwrap();
    assert!(matches!(code, Some(0) | Some(130)), "{code:?}: {errs}");
    eprintln!("copy --follow: {out}");
    // What the archive wrote at its stop (the rollup) comes along too.
    let o = src
        .command(&["copy", "--to", &dst.vault, "--all", "--json"])
        .env("LIFEBOAT_TO_PASSWORD", &dst.password)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let kinds: Vec<String> = dst
        .json(&["points", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.iter().any(|k| k == "mysql"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "mysql-binlog"), "{kinds:?}");
    let r = dst.json(&["vault", "check"]);
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r:#}");

    // The primary vault is gone.
    std::fs::remove_dir_all(t.path().join("primary")).unwrap();
    let consistent: DateTime<Utc> = snap["consistent_at"].as_str().unwrap().parse().unwrap();
    let at = clean_second(&ops, consistent);
    let tdsn = target_db.root_dsn();
    dst.ok(&[
        "restore",
        "mysql",
        "latest",
        "--dsn",
        &tdsn,
        "--at",
        &at.to_rfc3339(),
    ]);
    let expected = expected_state(&ops, |o| DateTime::<Utc>::from(o.committed) < at);
    let got = parse_state(&target_db.sql("SELECT id, val FROM shop.load_rows ORDER BY id"));
    assert!(
        got == expected,
        "at {at}: {:?}",
        state_diff(&expected, &got)
    );
    dst.ok(&[
        "restore", "mysql", "latest", "--dsn", &tdsn, "--at", "latest", "--force",
    ]);
    assert_eq!(
        db.checksum("shop.load_rows"),
        target_db.checksum("shop.load_rows")
    );
    // The snapshot alone, too.
    let target2 = MariaDb::start();
    dst.ok(&["restore", "mysql", "latest", "--dsn", &target2.root_dsn()]);
    let n: i64 = target2
        .sql("SELECT COUNT(*) FROM shop.load_rows")
        .trim()
        .parse()
        .unwrap();
    assert!(n > 0);
}
