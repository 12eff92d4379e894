//! The MySQL/MariaDB protector against real throw-away `mariadbd` servers:
//! snapshots under load, every column type, point-in-time recovery checked
//! row by row against a load writer's log, the archive through rotations,
//! restarts and its own kill, gaps, and bad input.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use lifeboat_testkit::archive;
use lifeboat_testkit::load::{LoadWriter, Op, expected_state, parse_state, state_diff};
use lifeboat_testkit::mariadb::{MariaDb, MariaDbOptions};
use lifeboat_testkit::procs::Bg;
use lifeboat_testkit::{Cli, TempDir, fresh_vault, tempdir};

/// A new vault in a temporary directory.
fn vault() -> (TempDir, Cli) {
    fresh_vault(env!("CARGO_BIN_EXE_lifeboat"))
}

/// `lifeboat restore mysql latest --dsn <db> ARGS…`, asserting success.
fn restore(c: &Cli, db: &MariaDb, args: &[&str]) {
    let dsn = db.root_dsn();
    let mut a = vec!["restore", "mysql", "latest", "--dsn", &dsn];
    a.extend_from_slice(args);
    c.ok(&a);
}

/// Runs lifeboat, asserts it fails (exit 1) with `needle` in its stderr.
fn fails(c: &Cli, args: &[&str], needle: &str) {
    let o = c.run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in: {err}"
    );
}

fn state(db: &MariaDb, table: &str) -> std::collections::BTreeMap<i64, i64> {
    parse_state(&db.sql(&format!("SELECT id, val FROM {table} ORDER BY id")))
}

fn archive(c: &Cli, db: &MariaDb, dir: &Path, name: &str) -> Bg {
    let out = std::fs::File::create(dir.join(format!("{name}.jsonl"))).unwrap();
    let err = std::fs::File::create(dir.join(format!("{name}.err"))).unwrap();
    let child = c
        .command(&[
            "archive",
            "mysql",
            "--dsn",
            &db.root_dsn(),
            "--seal-interval",
            "1s",
            "--spool",
            dir.join("spool").to_str().unwrap(),
            "--json",
        ])
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    Bg(child)
}

/// Waits until the vault says the resource is restorable at least up to `t`.
fn wait_restorable(c: &Cli, t: SystemTime) {
    archive::wait_restorable(c, None, t, Duration::from_secs(60), || "the archive".into());
}

/// Waits until the archive's JSON lines contain `needle`.
fn wait_event(log: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "no {needle} in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const SCHEMA: &str = r#"
SET NAMES utf8mb4;
CREATE DATABASE shop CHARACTER SET utf8mb4;
USE shop;
CREATE TABLE all_types (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, i INT, bi BIGINT, bu BIGINT UNSIGNED,
  dec1 DECIMAL(30,10), fl FLOAT, db DOUBLE,
  d DATE, t TIME(6), dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, y YEAR,
  c CHAR(10), vc VARCHAR(200), tx TEXT,
  bn BINARY(8), vb VARBINARY(64), bl BLOB, lb LONGBLOB,
  j JSON, e ENUM('a','b','c'), s SET('x','y','z'), b BIT(13), b1 BIT(1),
  gv BIGINT AS (i * 2) VIRTUAL, gs VARCHAR(220) AS (CONCAT(vc, '!')) STORED,
  g GEOMETRY NULL
) CHARACTER SET utf8mb4;
INSERT INTO all_types (ti,si,mi,i,bi,bu,dec1,fl,db,d,t,dt,ts,y,c,vc,tx,bn,vb,bl,lb,j,e,s,b,b1,g) VALUES
 (-128, 65535, -8388608, -2147483648, -9223372036854775808, 18446744073709551615,
  -12345678901234567890.0123456789, 1.2345678, 0.30000000000000004e0,
  '1000-01-01', '-838:59:59.000000', '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01.000000', 1901,
  'ab', _utf8mb4 X'F09F9AA3206C696665626F617420F09F8C8A', 'tab\there\nnewline \\ back \\N', X'00FF0A090D5C4E00', X'5C4E',
  X'000102030405060708090A0B0C0D0E0F', REPEAT(X'00FF5C0A09', 50000),
  '{"a": [1, 2.5, "x"], "emoji": "🚣"}', 'b', 'x,z', b'1010101010101', b'1', ST_GeomFromText('POINT(1 2)')),
 (NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL),
 (0, 0, 0, 0, 0, 0, 0, 3.4028234e38, 1e308, '9999-12-31', '838:59:59.999999', '9999-12-31 23:59:59.999999',
  '2038-01-19 03:14:07.999999', 2155, '', '', '', X'', X'', X'', X'', '[]', 'a', '', b'0', b'0',
  ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')),
 (1, 1, 1, 1, 1, 1, 0.0000000001, -1.17549435e-38, 4.9e-324, '2024-02-29', '00:00:00.5', '2024-02-29 12:34:56.789012',
  '2024-02-29 12:34:56.789012', 2024, 'é', 'ünïcödé 中文 🚀', REPEAT('ß', 10000), X'FFFFFFFFFFFFFFFF', X'00', X'0D0A', X'1A',
  '{}', 'c', 'x,y,z', b'1111111111111', b'0', NULL);
CREATE TABLE nopk (a INT, b VARCHAR(10)) ENGINE=InnoDB;
INSERT INTO nopk VALUES (1, 'x'), (1, 'x'), (NULL, NULL), (2, '');
CREATE TABLE latin (id INT PRIMARY KEY, s VARCHAR(20)) CHARACTER SET latin1;
INSERT INTO latin VALUES (1, _latin1 X'E9E8FF'), (2, 'plain');
CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(40), n INT, KEY (n));
INSERT INTO big SELECT seq, MD5(seq), seq % 1000 FROM seq_1_to_1000000;
ANALYZE TABLE big;
CREATE VIEW v_big AS SELECT id, v FROM big WHERE id < 10;
CREATE VIEW v_v AS SELECT id FROM v_big;
CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE PROCEDURE count_big(OUT n INT) SELECT COUNT(*) INTO n FROM big;
CREATE TRIGGER nopk_upper BEFORE INSERT ON nopk FOR EACH ROW SET NEW.b = UPPER(NEW.b);
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM nopk WHERE a IS NULL;
CREATE SEQUENCE order_no START WITH 1000;
SELECT NEXTVAL(order_no), NEXTVAL(order_no);
CREATE USER 'shopapp'@'%' IDENTIFIED BY 's3cret';
GRANT SELECT, INSERT ON shop.* TO 'shopapp'@'%';
GRANT SELECT ON shop.v_v TO PUBLIC;
"#;

const STATIC_TABLES: [&str; 4] = ["shop.all_types", "shop.nopk", "shop.latin", "shop.big"];

#[test]
fn snapshot_under_load_restores_every_type_and_matches_its_coordinates() {
    let (t, c) = vault();
    let src = MariaDb::start();
    let dst = MariaDb::start();
    src.sql(SCHEMA);
    let writer = LoadWriter::start(src.port, "shop.load_rows", Duration::from_millis(2), 0);
    std::thread::sleep(Duration::from_millis(500));
    let snap = c.json(&[
        "backup",
        "mysql",
        "--dsn",
        &src.root_dsn(),
        "--users",
        "--chunk-mib",
        "8",
        "--parallel",
        "3",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let (ops, err) = writer.stop();
    assert!(err.is_none(), "{err:?}");
    assert_eq!(snap["method"], "backup-stage", "{snap}");
    let gtid = snap["binlog"]["gtid"].as_str().unwrap().to_string();
    let seq: u64 = gtid.rsplit('-').next().unwrap().parse().unwrap();
    let during = ops.iter().filter(|o| o.gtid_seq > seq).count();
    assert!(
        during > 10 && ops.len() - during > 10,
        "the load ran on both sides of the snapshot"
    );

    restore(&c, &dst, &["--users"]);
    for table in STATIC_TABLES {
        assert_eq!(src.checksum(table), dst.checksum(table), "{table}");
    }
    // The load table holds exactly what was committed at the snapshot's GTID.
    let expected = expected_state(&ops, |o| o.gtid_seq <= seq);
    let got = state(&dst, "shop.load_rows");
    assert!(got == expected, "{:?}", state_diff(&expected, &got));
    // Views, routines, triggers, events, sequences, users came along.
    assert_eq!(dst.sql("SELECT COUNT(*) FROM shop.v_v").trim(), "9");
    assert_eq!(dst.sql("SELECT shop.twice(21)").trim(), "42");
    assert_eq!(
        dst.sql("CALL shop.count_big(@n); SELECT @n").trim(),
        "1000000"
    );
    dst.sql("INSERT INTO shop.nopk VALUES (9, 'low')");
    assert_eq!(dst.sql("SELECT b FROM shop.nopk WHERE a = 9").trim(), "LOW");
    assert!(dst.sql("SHOW EVENTS FROM shop").contains("nightly"));
    // A sequence goes on after what the source had handed out or cached, as
    // after a server restart: no number is ever given twice.
    let next = src.sql("SELECT next_not_cached_value FROM shop.order_no");
    assert_eq!(dst.sql("SELECT NEXTVAL(shop.order_no)").trim(), next.trim());
    assert!(
        dst.sql("SHOW GRANTS FOR 'shopapp'@'%'")
            .contains("GRANT SELECT, INSERT ON `shop`.*")
    );
    // MariaDB's PUBLIC (a stock install grants it `test.*`) is never made
    // again (error 1959), its grants are.
    assert!(
        dst.sql("SHOW GRANTS FOR PUBLIC")
            .contains("GRANT SELECT ON `shop`.`v_v` TO PUBLIC"),
        "{}",
        dst.sql("SHOW GRANTS FOR PUBLIC")
    );

    // A non-empty target is refused; a renamed copy is not.
    let o = c.run(&["restore", "mysql", "latest", "--dsn", &dst.root_dsn()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not empty"));
    restore(
        &c,
        &dst,
        &["--databases", "shop", "--rename", "shop=shop_copy"],
    );
    assert_eq!(src.checksum("shop.big"), dst.checksum("shop_copy.big"));
    assert_eq!(dst.sql("SELECT COUNT(*) FROM shop_copy.v_v").trim(), "9");

    // Unchanged tables cost almost nothing in the next snapshot.
    let again = c.json(&[
        "backup",
        "mysql",
        "--dsn",
        &src.root_dsn(),
        "--chunk-mib",
        "8",
    ]);
    let (size, new) = (
        again["size"].as_u64().unwrap(),
        again["bytes_new"].as_u64().unwrap(),
    );
    assert!(size > 40 << 20, "{again}");
    assert!(
        new < size / 20,
        "second snapshot stored {new} new bytes of {size}"
    );
    c.ok(&["vault", "check", "--read-data"]);
    drop(t);
}

/// A whole second after `after` that no op straddles.
fn clean_second(ops: &[Op], after: DateTime<Utc>) -> DateTime<Utc> {
    lifeboat_testkit::load::clean_second(ops, after.into()).into()
}

#[test]
fn point_in_time_restore_holds_exactly_the_rows_committed_before_t() {
    let (t, c) = vault();
    let src = MariaDb::start();
    let dst = MariaDb::start();
    src.sql("CREATE DATABASE shop");
    let mut arch = archive(&c, &src, t.path(), "archive");
    let writer = LoadWriter::start(src.port, "shop.load_rows", Duration::from_millis(5), 0);
    std::thread::sleep(Duration::from_millis(1500));
    let snap = c.json(&["backup", "mysql", "--dsn", &src.root_dsn()]);
    std::thread::sleep(Duration::from_millis(4500));
    let (ops, err) = writer.stop();
    assert!(err.is_none(), "{err:?}");
    wait_restorable(&c, ops.last().unwrap().committed);
    assert!(
        arch.stop().success(),
        "the archive stops cleanly on SIGTERM"
    );
    let events = std::fs::read_to_string(t.path().join("archive.jsonl")).unwrap();
    assert!(events.contains("\"event\":\"rolled-up\""), "{events}");

    let consistent: DateTime<Utc> = snap["consistent_at"].as_str().unwrap().parse().unwrap();
    let at = clean_second(&ops, consistent);
    let before = ops
        .iter()
        .filter(|o| DateTime::<Utc>::from(o.committed) < at)
        .count();
    assert!(before > 0 && before < ops.len());
    restore(&c, &dst, &["--at", &at.to_rfc3339()]);
    let expected = expected_state(&ops, |o| DateTime::<Utc>::from(o.committed) < at);
    let got = state(&dst, "shop.load_rows");
    assert!(
        got == expected,
        "at {at}: {:?}",
        state_diff(&expected, &got)
    );

    // Everything archived.
    restore(&c, &dst, &["--at", "latest", "--force"]);
    assert_eq!(
        src.checksum("shop.load_rows"),
        dst.checksum("shop.load_rows")
    );

    // Up to one GTID, inclusive.
    let mid = &ops[ops.len() * 3 / 4];
    let gtid = format!("0-1-{}", mid.gtid_seq);
    restore(&c, &dst, &["--at", &gtid, "--force"]);
    let expected = expected_state(&ops, |o| o.gtid_seq <= mid.gtid_seq);
    let got = state(&dst, "shop.load_rows");
    assert_eq!(
        got,
        expected,
        "at {gtid}: {:?}",
        state_diff(&expected, &got)
    );

    // Before the first snapshot, nothing can be restored; the error says what can.
    let o = c.run(&[
        "restore",
        "mysql",
        "latest",
        "--dsn",
        &dst.root_dsn(),
        "--force",
        "--at",
        &(consistent - chrono::Duration::seconds(60)).to_rfc3339(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("restorable windows"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let list = c.ok(&["points", "list"]);
    assert!(list.contains("restorable from"), "{list}");

    // Retention keeps the binlog a kept snapshot needs, and only that.
    src.sql("FLUSH BINARY LOGS; INSERT INTO shop.load_rows VALUES (-1, 1, 'after')");
    let mut arch = archive(&c, &src, t.path(), "archive2");
    let newer = c.json(&["backup", "mysql", "--dsn", &src.root_dsn()]);
    src.sql("INSERT INTO shop.load_rows VALUES (-2, 2, 'later')");
    wait_restorable(&c, SystemTime::now());
    assert!(arch.stop().success());
    let f = c.json(&["forget", "--keep-last", "1"]);
    let forgotten: Vec<&serde_json::Value> = f["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == false)
        .collect();
    assert!(forgotten.iter().any(|d| d["id"] == snap["id"]), "{f:#}");
    assert!(
        forgotten.iter().any(|d| d["kind"] == "mysql-binlog"),
        "the binlog before the kept snapshot's file goes: {f:#}"
    );
    c.ok(&["prune"]);
    c.ok(&["vault", "check", "--read-data"]);
    c.ok(&[
        "restore",
        "mysql",
        newer["id"].as_str().unwrap(),
        "--dsn",
        &dst.root_dsn(),
        "--at",
        "latest",
        "--force",
    ]);
    assert_eq!(
        src.checksum("shop.load_rows"),
        dst.checksum("shop.load_rows")
    );
}

#[test]
fn archive_follows_rotation_and_server_restart_and_resumes_after_its_own_kill() {
    let (t, c) = vault();
    let mut src = MariaDb::start();
    let dst = MariaDb::start();
    src.sql("CREATE DATABASE shop");
    c.ok(&["backup", "mysql", "--dsn", &src.root_dsn()]);
    let mut arch = archive(&c, &src, t.path(), "a1");
    let w = LoadWriter::start(src.port, "shop.load_rows", Duration::from_millis(5), 0);
    std::thread::sleep(Duration::from_millis(700));
    src.sql("FLUSH BINARY LOGS");
    std::thread::sleep(Duration::from_millis(700));
    src.sql("FLUSH BINARY LOGS");
    std::thread::sleep(Duration::from_millis(500));
    let (_, err) = w.stop();
    assert!(err.is_none(), "{err:?}");
    src.restart();
    let w = LoadWriter::start(
        src.port,
        "shop.load_rows",
        Duration::from_millis(5),
        1_000_000,
    );
    std::thread::sleep(Duration::from_millis(1500));
    arch.signal(rustix::process::Signal::KILL);
    let _ = arch.0.wait();
    std::thread::sleep(Duration::from_millis(1000)); // changes while no archive runs
    let mut arch = archive(&c, &src, t.path(), "a2");
    wait_event(&t.path().join("a2.jsonl"), "\"event\":\"started\"");
    let spool = t.path().join("s3");
    let second = [
        "archive",
        "mysql",
        "--dsn",
        &src.root_dsn(),
        "--spool",
        spool.to_str().unwrap(),
    ];
    fails(&c, &second, "another binlog archive");
    std::thread::sleep(Duration::from_millis(1000));
    let (ops, err) = w.stop();
    assert!(err.is_none(), "{err:?}");
    wait_restorable(&c, ops.last().unwrap().committed);
    assert!(arch.stop().success());
    let log = std::fs::read_to_string(t.path().join("a1.jsonl")).unwrap();
    assert!(
        log.contains("reconnecting"),
        "the restart was noticed: {log}"
    );
    let files: std::collections::BTreeSet<String> = c
        .json(&["points", "list"])
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["paths"].as_array().unwrap().clone())
        .filter_map(|f| f.as_str().map(String::from))
        .filter(|f| f.starts_with("binlog."))
        .collect();
    assert!(
        files.len() >= 4,
        "rotations and the restart made new files: {files:?}"
    );
    restore(&c, &dst, &["--at", "latest"]);
    assert_eq!(
        src.checksum("shop.load_rows"),
        dst.checksum("shop.load_rows")
    );
    c.ok(&["vault", "check", "--read-data"]);
}

/// B.13: two archives of one resource started together: exactly one runs.
/// The pause hook holds an archive that found no other running, where the
/// old check-then-lock let a second one through.
#[test]
fn two_archives_started_together_one_runs_and_the_other_backs_off() {
    let (t, c) = vault();
    let src = MariaDb::start();
    src.sql("CREATE DATABASE shop");
    let start = |name: &str| {
        let pause = t.path().join(format!("pause-{name}"));
        std::fs::create_dir_all(&pause).unwrap();
        let out = std::fs::File::create(t.path().join(format!("{name}.jsonl"))).unwrap();
        let err = std::fs::File::create(t.path().join(format!("{name}.err"))).unwrap();
        let child = c
            .command(&[
                "archive",
                "mysql",
                "--dsn",
                &src.root_dsn(),
                "--spool",
                t.path().join(format!("spool-{name}")).to_str().unwrap(),
                "--json",
            ])
            .env(
                "LIFEBOAT_TEST_PAUSE",
                format!("archive-checked:{}", pause.display()),
            )
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        (Bg(child), pause)
    };
    let (mut a, pa) = start("a");
    let (mut b, pb) = start("b");
    // Each is held once it found no other archive running; once one is held,
    // the other has two seconds to get there too (as the old check-then-lock
    // let it); then both go on.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pa.join("archive-checked.reached").exists()
        && !pb.join("archive-checked.reached").exists()
    {
        assert!(Instant::now() < deadline, "neither archive started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    for p in [&pa, &pb] {
        std::fs::write(p.join("archive-checked.go"), b"").unwrap();
    }
    // One of them backs off (exit 1, naming the other); the other runs on.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (loser, winner) = loop {
        if let Some(s) = a.0.try_wait().unwrap() {
            break ((s, "a"), &mut b);
        }
        if let Some(s) = b.0.try_wait().unwrap() {
            break ((s, "b"), &mut a);
        }
        assert!(
            Instant::now() < deadline,
            "both archives of one resource run at once"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(loser.0.code(), Some(1), "{loser:?}");
    let err = std::fs::read_to_string(t.path().join(format!("{}.err", loser.1))).unwrap();
    assert!(err.contains("another binlog archive"), "{err}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(winner.0.try_wait().unwrap().is_none(), "the winner runs on");
    assert!(winner.stop().success(), "the winner stops cleanly");
}

#[test]
fn archive_says_loudly_when_binlogs_were_purged_before_it_saw_them() {
    let (t, c) = vault();
    let src = MariaDb::start();
    let dst = MariaDb::start();
    src.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)");
    c.ok(&["backup", "mysql", "--dsn", &src.root_dsn()]);
    let mut arch = archive(&c, &src, t.path(), "a1");
    src.sql("INSERT INTO shop.t VALUES (1)");
    wait_restorable(&c, SystemTime::now());
    assert!(arch.stop().success());
    // While no archive runs, changes are made and their binlogs purged.
    src.sql("INSERT INTO shop.t VALUES (2); FLUSH BINARY LOGS; INSERT INTO shop.t VALUES (3); FLUSH BINARY LOGS");
    let current = src.sql("SHOW MASTER STATUS");
    let current = current.split('\t').next().unwrap();
    src.sql(&format!("PURGE BINARY LOGS TO '{current}'"));
    src.sql("INSERT INTO shop.t VALUES (4)");
    let mut arch = archive(&c, &src, t.path(), "a2");
    wait_event(&t.path().join("a2.jsonl"), "\"through\":\"");
    let now = Utc::now();
    assert!(arch.stop().success());
    let err = std::fs::read_to_string(t.path().join("a2.err")).unwrap();
    let events = std::fs::read_to_string(t.path().join("a2.jsonl")).unwrap();
    assert!(events.contains("\"event\":\"gap\""), "{events}");
    assert!(err.contains("GAP"), "said loudly on stderr: {err}");
    // Across the gap nothing can be restored…
    let o = c.run(&[
        "restore",
        "mysql",
        "latest",
        "--dsn",
        &dst.root_dsn(),
        "--at",
        &now.to_rfc3339(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // …until a new snapshot starts a new window.
    c.ok(&["backup", "mysql", "--dsn", &src.root_dsn()]);
    let mut arch = archive(&c, &src, t.path(), "a3");
    src.sql("INSERT INTO shop.t VALUES (5)");
    let later = SystemTime::now();
    wait_restorable(&c, later);
    assert!(arch.stop().success());
    restore(&c, &dst, &["--at", "latest"]);
    // A reset binary log is refused: its new files would carry old names.
    src.sql("RESET MASTER");
    let spool = t.path().join("s");
    let again = [
        "archive",
        "mysql",
        "--dsn",
        &src.root_dsn(),
        "--spool",
        spool.to_str().unwrap(),
    ];
    fails(&c, &again, "RESET MASTER");
    assert_eq!(
        dst.sql("SELECT GROUP_CONCAT(id ORDER BY id) FROM shop.t")
            .trim(),
        "1,2,3,4,5"
    );
}

#[test]
fn bad_input_is_refused_clearly_and_leaves_no_point() {
    let (t, c) = vault();
    let src = MariaDb::start();
    src.sql("CREATE DATABASE shop; CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(40)); INSERT INTO shop.big SELECT seq, MD5(seq) FROM shop.seq_1_to_1000");
    let wrong_pw = format!("mysql://root:wrong@127.0.0.1:{}", src.port);
    fails(
        &c,
        &["backup", "mysql", "--dsn", &wrong_pw],
        "refused the login",
    );
    let nobody = format!(
        "mysql://root@127.0.0.1:{}",
        lifeboat_testkit::mariadb::free_port()
    );
    fails(&c, &["backup", "mysql", "--dsn", &nobody], "cannot connect");
    fails(
        &c,
        &["backup", "mysql", "--dsn", "postgres://x@y"],
        "bad DSN",
    );
    fails(
        &c,
        &[
            "backup",
            "mysql",
            "--dsn",
            &src.root_dsn(),
            "--databases",
            "nope",
        ],
        "does not exist",
    );

    // Without RELOAD the snapshot is still consistent, through one connection.
    src.sql("CREATE USER 'dumper'@'%' IDENTIFIED BY 'pw'; GRANT SELECT, SHOW VIEW, BINLOG MONITOR ON *.* TO 'dumper'@'%'");
    let dumper = format!("mysql://dumper:pw@127.0.0.1:{}", src.port);
    let o = c
        .command(&["backup", "mysql", "--dsn", &dumper, "--json"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["method"], "single-transaction");
    assert!(j["warnings"][0].as_str().unwrap().contains("RELOAD"));
    assert!(
        j["binlog"]["file"].is_string(),
        "coordinates without RELOAD: {j}"
    );
    // Archiving needs REPLICATION SLAVE, and says so.
    fails(
        &c,
        &[
            "archive",
            "mysql",
            "--dsn",
            &dumper,
            "--spool",
            t.path().join("s").to_str().unwrap(),
        ],
        "REPLICATION SLAVE",
    );
    src.sql("CREATE USER 'blind'@'%' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO 'blind'@'%'");
    let blind = format!("mysql://blind:pw@127.0.0.1:{}", src.port);
    fails(&c, &["archive", "mysql", "--dsn", &blind], "BINLOG MONITOR");

    // Binlog off: snapshots work, the archive refuses and says how to enable it.
    let nobin = MariaDb::start_with(&MariaDbOptions {
        binlog: false,
        server_id: 7,
        ..Default::default()
    });
    nobin.sql("CREATE DATABASE d; CREATE TABLE d.t (i INT); INSERT INTO d.t VALUES (1)");
    let j = c.json(&["backup", "mysql", "--dsn", &nobin.root_dsn()]);
    assert!(j["binlog"].is_null());
    fails(
        &c,
        &["archive", "mysql", "--dsn", &nobin.root_dsn()],
        "--log-bin",
    );

    // The server dies in the middle of a snapshot: no point, a clean vault.
    let points_before = c.json(&["points", "list"]).as_array().unwrap().len();
    let mut victim = MariaDb::start();
    victim.sql("CREATE DATABASE shop; CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(40)); INSERT INTO shop.big SELECT seq, MD5(seq) FROM shop.seq_1_to_600000");
    let mut backup = Bg(c
        .command(&[
            "backup",
            "mysql",
            "--dsn",
            &victim.root_dsn(),
            "--parallel",
            "1",
            "--chunk-mib",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !victim
        .sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT % FROM `shop`.`big`%'")
        .trim()
        .starts_with('1')
    {
        assert!(Instant::now() < deadline, "the dump never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.kill();
    let status = backup.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut backup.0.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("connection was lost") || err.contains("cannot connect"),
        "{err}"
    );
    assert_eq!(
        c.json(&["points", "list"]).as_array().unwrap().len(),
        points_before
    );
    c.ok(&["vault", "check", "--read-data"]);
}

#[test]
fn snapshot_archive_and_point_in_time_restore_through_an_s3_vault() {
    let t = tempdir().unwrap();
    let s3 = lifeboat_testkit::s3::S3Server::start();
    s3.create_bucket("dr-vault");
    let mut c = Cli::at(
        env!("CARGO_BIN_EXE_lifeboat"),
        &s3.url("dr-vault", "lifeboat/db"),
    );
    c.env = lifeboat_testkit::s3::CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.ok(&["vault", "init"]);
    let src = MariaDb::start();
    let dst = MariaDb::start();
    src.sql("CREATE DATABASE shop");
    let w = LoadWriter::start(src.port, "shop.load_rows", Duration::from_millis(10), 0);
    std::thread::sleep(Duration::from_millis(500));
    c.ok(&["backup", "mysql", "--dsn", &src.root_dsn()]);
    let mut arch = archive(&c, &src, t.path(), "archive");
    std::thread::sleep(Duration::from_millis(2500));
    let (ops, err) = w.stop();
    assert!(err.is_none(), "{err:?}");
    wait_restorable(&c, ops.last().unwrap().committed);
    assert!(arch.stop().success());
    restore(&c, &dst, &["--at", "latest"]);
    assert_eq!(
        src.checksum("shop.load_rows"),
        dst.checksum("shop.load_rows")
    );
    c.ok(&["vault", "check", "--read-data"]);
    // The archive's points really are objects in the bucket.
    let listing = s3
        .request("GET", "/dr-vault?list-type=2&prefix=lifeboat/db/points/")
        .unwrap();
    assert!(listing.contains("<Key>lifeboat/db/points/"), "{listing}");
}
