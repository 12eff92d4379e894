//! A replace restore never leaves the live database worse than it found it
//! (a damaged pack, a failure after the swap), a good one still replaces it
//! (also to a point in time); the binlog spool is private, refuses planted
//! directories and fails loudly when removed; a malformed `--at` is a usage
//! error. Real throw-away `mariadbd` servers, through the `lifeboat` binary.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use lifeboat_testkit::archive;
use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::{Cli, TempDir, files_below, fresh_vault};
use lifeboat_vault::{Location, Vault};

/// A new vault in a temporary directory.
fn vault() -> (TempDir, Cli) {
    fresh_vault(env!("CARGO_BIN_EXE_lifeboat"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SCHEMA: &str = r#"
CREATE DATABASE shop CHARACTER SET utf8mb4;
USE shop;
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40));
INSERT INTO customers SELECT seq, CONCAT('c', seq) FROM seq_1_to_20;
CREATE TABLE orders (id INT PRIMARY KEY, customer INT NOT NULL, total INT,
  FOREIGN KEY (customer) REFERENCES customers (id));
INSERT INTO orders SELECT seq, 1 + seq % 20, seq * 7 FROM seq_1_to_103;
CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(40), w VARCHAR(40));
INSERT INTO big SELECT seq, MD5(seq), SHA1(seq) FROM seq_1_to_4000;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT);
CREATE VIEW v_orders AS SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer;
CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (order_id) VALUES (NEW.id);
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit WHERE id < 0;
"#;

const TABLES: [&str; 4] = ["customers", "orders", "big", "audit"];

/// Everything a user of `shop` sees: each table's rows (count and checksum)
/// and every view, routine, trigger and event with its definition.
fn live(db: &MariaDb) -> Vec<String> {
    let mut out: Vec<String> = TABLES
        .iter()
        .map(|t| {
            format!(
                "{t}: {} rows, checksum {}",
                db.sql(&format!("SELECT COUNT(*) FROM shop.{t}")).trim(),
                db.sql(&format!("CHECKSUM TABLE shop.{t}"))
                    .split('\t')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
            )
        })
        .collect();
    for q in [
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' ORDER BY 1",
        "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'shop' ORDER BY 1",
        "SELECT ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'shop' ORDER BY 1",
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'shop' ORDER BY 1",
        "SELECT EVENT_NAME, EVENT_DEFINITION FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'shop' ORDER BY 1",
        "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'",
    ] {
        out.push(db.sql(q));
    }
    out
}

/// Databases the restore made on the side and did not remove.
fn leftovers(db: &MariaDb) -> Vec<String> {
    db.sql("SHOW DATABASES")
        .lines()
        .filter(|d| d.contains("_lbnew_") || d.contains("_lbold_"))
        .map(str::to_string)
        .collect()
}

/// A server with `shop`, a snapshot of it, then live changes after it (so the
/// live database differs from the point).
fn shop_with_a_point() -> (TempDir, Cli, MariaDb) {
    let (t, c) = vault();
    let db = MariaDb::start();
    db.sql(SCHEMA);
    c.ok(&[
        "backup",
        "mysql",
        "--dsn",
        &db.root_dsn(),
        "--chunk-mib",
        "1",
    ]);
    db.sql("INSERT INTO shop.orders SELECT seq, 3, 1 FROM shop.seq_104_to_110; DELETE FROM shop.big WHERE id > 3500; UPDATE shop.customers SET name = 'renamed' WHERE id = 5");
    (t, c, db)
}

/// Flips a byte inside the first data blob of `table` in the newest point.
fn damage_table(c: &Cli, table: &str) {
    let v = Vault::open(&Location::parse(&c.vault).unwrap(), c.password.as_bytes()).unwrap();
    let index = v.load_index().unwrap();
    let (_, p) = v.find_point("latest", None).unwrap();
    let mut tree = v.read_tree(&index, &p.tree).unwrap();
    for name in ["databases", "shop", "tables", table] {
        let sub = tree.find(name.as_bytes()).unwrap().subtree.unwrap();
        tree = v.read_tree(&index, &sub).unwrap();
    }
    let chunk = tree
        .nodes
        .iter()
        .find(|n| n.name.starts_with("data-") && !n.content.is_empty())
        .expect("a data chunk");
    let loc = index.get(&chunk.content[0]).unwrap();
    let pack = PathBuf::from(&c.vault).join(lifeboat_vault::pack::pack_path(&loc.pack));
    lifeboat_testkit::flip_byte(&pack, (loc.entry.offset + loc.entry.length / 2) as i64);
}

/// A.2: a damaged pack makes `restore mysql --force` fail before it replaces
/// anything: every table, row and object of the live database is as it was.
#[test]
fn a_replace_restore_from_a_damaged_pack_leaves_the_live_database_as_it_was() {
    let (_t, c, db) = shop_with_a_point();
    let before = live(&db);
    damage_table(&c, "big");
    let o = c.run(&[
        "restore",
        "mysql",
        "latest",
        "--dsn",
        &db.root_dsn(),
        "--force",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(live(&db), before, "the live database changed: {err}");
    assert!(err.contains("Nothing was replaced"), "{err}");
    assert!(leftovers(&db).is_empty(), "{:?}", leftovers(&db));
}

/// A.2: a failure after the tables were swapped in (here: a function of the
/// point's name made meanwhile) puts the old tables and objects back.
#[test]
fn a_replace_restore_that_fails_after_the_swap_puts_everything_back() {
    let (t, c, db) = shop_with_a_point();
    let before = live(&db);
    let hook = t.path().join("hook");
    std::fs::create_dir(&hook).unwrap();
    let mut restore = c
        .command(&[
            "restore",
            "mysql",
            "latest",
            "--dsn",
            &db.root_dsn(),
            "--force",
        ])
        .env(
            "LIFEBOAT_TEST_PAUSE",
            format!("mysql-swapped:{}", hook.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !hook.join("mysql-swapped.reached").exists() {
        if let Some(st) = restore.try_wait().unwrap() {
            panic!("the restore ended ({st}) before its swap");
        }
        assert!(Instant::now() < deadline, "the restore never swapped");
        std::thread::sleep(Duration::from_millis(50));
    }
    db.sql("CREATE FUNCTION shop.twice(x INT) RETURNS INT DETERMINISTIC RETURN x + 1");
    std::fs::write(hook.join("mysql-swapped.go"), b"").unwrap();
    let o = restore.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Nothing was replaced"), "{err}");
    assert_eq!(live(&db), before, "the live database changed: {err}");
    assert!(leftovers(&db).is_empty(), "{:?}", leftovers(&db));
}

/// Waits until the vault says the resource is restorable at least up to `t`.
fn wait_restorable(c: &Cli, t: SystemTime) {
    archive::wait_restorable(c, None, t, Duration::from_secs(60), || "the archive".into());
}

/// A background `lifeboat archive mysql`, killed when dropped.
struct Archive {
    child: Child,
    log: PathBuf,
    err: PathBuf,
}

impl Drop for Archive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Archive {
    fn start(c: &Cli, db: &MariaDb, dir: &Path, spool: &Path) -> Archive {
        let log = dir.join("archive.jsonl");
        let err = dir.join("archive.err");
        let child = c
            .command(&[
                "archive",
                "mysql",
                "--dsn",
                &db.root_dsn(),
                "--spool",
                spool.to_str().unwrap(),
                "--json",
            ])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Archive { child, log, err }
    }

    /// Waits until the JSON lines hold `needle` (or the archive exited).
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .contains(needle)
        {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("the archive exited ({st}): {}", self.stderr());
            }
            assert!(Instant::now() < deadline, "no {needle} from the archive");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits up to a minute for the archive to end by itself, else stops it
    /// with SIGTERM; returns its exit code.
    fn end(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        self.child.wait().unwrap().code()
    }
}

/// A.2: a good replace restore still replaces the live database, also to a
/// point in time (the binlog is replayed into the shadow before the swap).
#[test]
fn a_good_replace_restore_replaces_the_live_database_also_to_a_point_in_time() {
    let (t, c) = vault();
    let db = MariaDb::start();
    db.sql(SCHEMA);
    let mut archive = Archive::start(&c, &db, t.path(), &t.path().join("spool"));
    archive.wait_for("\"started\"");
    c.ok(&["backup", "mysql", "--dsn", &db.root_dsn()]);
    let at_point = live(&db);
    db.sql("INSERT INTO shop.orders SELECT seq, 2, 5 FROM shop.seq_104_to_108; UPDATE shop.big SET v = 'x' WHERE id < 100");
    let archived = live(&db);
    wait_restorable(&c, SystemTime::now());
    assert_eq!(archive.end(), Some(0), "{}", archive.stderr());
    // Changes the archive never saw: a restore must undo them.
    db.sql("DELETE FROM shop.orders WHERE id > 50; DROP VIEW shop.v_orders; CREATE TABLE shop.extra (i INT)");

    let dsn = db.root_dsn();
    c.ok(&[
        "restore", "mysql", "latest", "--dsn", &dsn, "--force", "--at", "latest",
    ]);
    assert_eq!(live(&db), archived);
    assert!(
        db.try_sql("SELECT * FROM shop.extra").is_err(),
        "the old table is gone"
    );
    assert!(leftovers(&db).is_empty(), "{:?}", leftovers(&db));

    c.ok(&["restore", "mysql", "latest", "--dsn", &dsn, "--force"]);
    assert_eq!(live(&db), at_point);
    // The restored trigger works on the restored tables.
    db.sql("INSERT INTO shop.orders VALUES (999, 1, 1)");
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM shop.audit WHERE order_id = 999")
            .trim(),
        "1"
    );
    assert!(leftovers(&db).is_empty(), "{:?}", leftovers(&db));
}

/// D.21: a malformed `--at` is a usage error (exit 2) naming the accepted forms.
#[test]
fn a_malformed_point_in_time_is_a_usage_error() {
    let (_t, c) = vault();
    let o = c.run(&[
        "restore",
        "mysql",
        "latest",
        "--dsn",
        "mysql://root@127.0.0.1:1",
        "--at",
        "yesterday",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for form in ["RFC 3339", "latest", "GTID", "FILE:POS"] {
        assert!(err.contains(form), "{form} missing: {err}");
    }
}

/// Whatever `nobody` can read below `dir`: the files' bytes it could open.
fn readable_by_nobody(dir: &Path) -> String {
    let o = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "sh", "-c"])
        .arg("find \"$1\" -type f -exec cat {} + 2>/dev/null; true")
        .arg("sh")
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Waits until a file below `dir` holds `needle` (as this, root, user sees it).
fn wait_spooled(dir: &Path, needle: &str, archive: &mut Archive) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for f in files_below(dir) {
            let b = std::fs::read(&f).unwrap_or_default();
            if b.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                return f;
            }
        }
        if let Some(st) = archive.child.try_wait().unwrap() {
            panic!("the archive exited ({st}): {}", archive.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "{needle} never reached the spool"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// B.6: the spooled binlog (row changes in plain text) is neither readable
/// nor listable by another local user, even below world-readable directories.
#[test]
fn the_binlog_spool_is_private() {
    let (t, c) = vault();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let spool = t.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = MariaDb::start();
    db.sql("CREATE DATABASE pay; CREATE TABLE pay.cards (n VARCHAR(20))");
    let mut archive = Archive::start(&c, &db, t.path(), &spool);
    archive.wait_for("\"started\"");
    let card = "4111111111111111";
    db.sql(&format!("INSERT INTO pay.cards VALUES ('{card}')"));
    let file = wait_spooled(&spool, card, &mut archive);
    let seen = readable_by_nobody(&spool);
    assert!(
        !seen.contains(card),
        "nobody read the card number from {}",
        file.display()
    );
    for d in walkdirs(&spool) {
        let mode = std::fs::symlink_metadata(&d).unwrap().mode();
        assert_eq!(mode & 0o077, 0, "{} is {:o}", d.display(), mode & 0o7777);
    }
    archive.end();
}

/// Every directory and file strictly below `dir`.
fn walkdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walkdirs(&p));
        }
        out.push(p);
    }
    out
}

/// B.6: a spool directory another user made (even 0777), or a symbolic link
/// in its place, is refused before anything is spooled.
#[test]
fn a_planted_spool_directory_is_refused() {
    let (t, c) = vault();
    let db = MariaDb::start();
    let theirs = t.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let mut a = Archive::start(&c, &db, t.path(), &theirs);
    assert_eq!(a.end(), Some(1), "{}", a.stderr());
    assert!(a.stderr().contains("owned by uid 65534"), "{}", a.stderr());
    assert!(
        files_below(&theirs).is_empty(),
        "something was spooled there"
    );

    let link = t.path().join("link");
    let victim = t.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let mut a = Archive::start(&c, &db, t.path(), &link);
    assert_eq!(a.end(), Some(1), "{}", a.stderr());
    assert!(a.stderr().contains("symbolic link"), "{}", a.stderr());
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
}

/// B.6: a spool removed under a running archive stops it with an error that
/// names the spool (what the follower writes elsewhere would be a silent gap).
#[test]
fn a_spool_removed_under_a_running_archive_fails_loudly() {
    let (t, c) = vault();
    let spool = t.path().join("spool");
    let db = MariaDb::start();
    db.sql("CREATE DATABASE d; CREATE TABLE d.t (s VARCHAR(20))");
    let mut archive = Archive::start(&c, &db, t.path(), &spool);
    archive.wait_for("\"started\"");
    db.sql("INSERT INTO d.t VALUES ('first-commit')");
    wait_spooled(&spool, "first-commit", &mut archive);
    for e in std::fs::read_dir(&spool).unwrap().flatten() {
        std::fs::remove_dir_all(e.path()).unwrap();
    }
    db.sql("INSERT INTO d.t VALUES ('second-commit')");
    let code = archive.end();
    let err = archive.stderr();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("binlog spool") && err.contains("removed"),
        "{err}"
    );
}

/// The children of `pid` named `comm`.
fn children_named(pid: u32, comm: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(n) = e.file_name().to_string_lossy().parse::<i64>() else {
            continue;
        };
        let Ok(st) = std::fs::read_to_string(format!("/proc/{n}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (st.find('('), st.rfind(')')) else {
            continue;
        };
        let ppid = st[close + 1..].split_whitespace().nth(1);
        if &st[open + 1..close] == comm && ppid == Some(&pid.to_string()) {
            out.push(n);
        }
    }
    out
}

/// B.6: an archive killed with SIGKILL leaves no `mariadb-binlog` running
/// on, connected to the server and writing into a spool nobody reads.
#[test]
fn an_archive_killed_hard_leaves_no_follower_behind() {
    let (t, c) = vault();
    let spool = t.path().join("spool");
    let db = MariaDb::start();
    let mut archive = Archive::start(&c, &db, t.path(), &spool);
    archive.wait_for("\"started\"");
    let deadline = Instant::now() + Duration::from_secs(30);
    let follower = loop {
        if let Some(&f) = children_named(archive.child.id(), "mariadb-binlog").first() {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no follower: {}",
            archive.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    archive.child.kill().unwrap();
    archive.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lifeboat_testkit::procs::alive(follower) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alive = lifeboat_testkit::procs::alive(follower);
    if alive {
        let _ = std::process::Command::new("kill")
            .args(["-9", &follower.to_string()])
            .status();
    }
    assert!(!alive, "the follower {follower} outlived its archive");
}

/// On a server that resolves no host names (`skip-name-resolve`), an
/// account named by a host name cannot be shown: the snapshot with users
/// leaves it out with a warning naming it, and keeps every other account.
#[test]
fn an_account_the_server_cannot_show_is_left_out_with_a_warning() {
    let (_t, c) = vault();
    let src = MariaDb::start_with(&lifeboat_testkit::mariadb::MariaDbOptions {
        args: vec!["--skip-name-resolve".into()],
        ..Default::default()
    });
    src.sql(SCHEMA);
    src.sql(
        "CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'pw'; GRANT SELECT ON shop.* TO 'app'@'127.0.0.1';",
    );
    // A point all the same, said incomplete (exit 3).
    let (code, snap) = c.json_exit(&["backup", "mysql", "--dsn", &src.root_dsn(), "--users"]);
    assert_eq!(code, Some(3), "{snap:#}");
    let warnings = snap["warnings"].to_string();
    // `mariadb-install-db` made root@HOSTNAME, which this server cannot show.
    assert!(
        warnings.contains("is not in the point: the server cannot show it")
            && warnings.contains("skip-name-resolve"),
        "{snap:#}"
    );
    let dst = MariaDb::start();
    c.ok(&[
        "restore",
        "mysql",
        "latest",
        "--dsn",
        &dst.root_dsn(),
        "--users",
    ]);
    let grants = dst.sql("SHOW GRANTS FOR 'app'@'127.0.0.1'");
    assert!(grants.contains("GRANT SELECT ON `shop`.*"), "{grants}");
}
