//! A physical point rolled forward (`restore mysql --physical --datadir DIR
//! --at T`) against a real server, its binlog archive and the real
//! `mariadb-backup`: the restored directory holds every commit before T and
//! none after, starts with a plain `mariadbd`, and leaves no server of ours
//! running; `latest` brings it to the source's checksum; a moment the
//! physical points cannot reach is refused before anything is written;
//! account changes in the window (`CREATE USER`, `GRANT`) replay too; a
//! restore killed half-way leaves no server and a directory marked as such.

use std::time::{Duration, SystemTime};

use lifeboat_testkit::archive::{start_archive, wait_restorable};
use lifeboat_testkit::mariadb::{MariaDb, MariaDbOptions};
use lifeboat_testkit::{Cli, TempDir, fresh_vault, tempdir};

fn vault() -> (TempDir, Cli) {
    fresh_vault(env!("CARGO_BIN_EXE_lifeboat"))
}

fn insert(db: &MariaDb, from: u32, to: u32) {
    db.sql(&format!(
        "INSERT INTO shop.orders SELECT seq, CONCAT('order ', seq), seq % 7 FROM shop.seq_{from}_to_{to}"
    ));
}

fn count(db: &MariaDb) -> String {
    db.sql("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM shop.orders")
        .trim()
        .to_string()
}

/// A server of the test's own on a restored directory, without binlog.
fn start_on(dir: &std::path::Path) -> MariaDb {
    MariaDb::start_with(&MariaDbOptions {
        binlog: false,
        datadir: Some(dir.to_path_buf()),
        ..Default::default()
    })
}

/// Servers started on `dir` by anyone (a private roll-forward server must
/// be gone when the restore returns).
fn servers_on(dir: &std::path::Path) -> usize {
    let me = format!("--datadir={}", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| c.split(|b| *b == 0).any(|a| a == me.as_bytes()))
        .count()
}

/// `restore mysql latest --physical --datadir DIR` and `extra`.
fn restore_args<'a>(dir: &'a std::path::Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "restore",
        "mysql",
        "latest",
        "--physical",
        "--datadir",
        dir.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    a
}

/// A server with database `shop` (table `orders`) holding rows 1..=`rows`.
fn shop(rows: u32) -> MariaDb {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(64), qty INT) ENGINE=InnoDB;",
    );
    insert(&db, 1, rows);
    db
}

#[test]
fn a_physical_point_rolls_forward_to_a_moment_and_to_the_archive_s_end() {
    let db = shop(5000);
    let (_v, c) = vault();
    let work = tempdir().unwrap();
    let _archive = start_archive(&c, &db.root_dsn(), work.path(), &[]);
    let p = c.json(&["backup", "mysql", "--physical", "--dsn", &db.root_dsn()]);
    assert_eq!(p["mode"], "physical", "{p}");
    // Commits on both sides of a moment, a second apart (the binlog stamps
    // events in whole seconds).
    insert(&db, 5001, 5100);
    std::thread::sleep(Duration::from_millis(1100));
    let moment = chrono::Utc::now();
    let at_moment = count(&db);
    std::thread::sleep(Duration::from_millis(1100));
    insert(&db, 5101, 5300);
    // Account changes in the window replay too (the private server skips
    // the grant tables, which refuses them unless the replay loads them).
    db.sql(
        "CREATE USER app@'%' IDENTIFIED BY 'secret';
         GRANT SELECT ON shop.* TO app@'%';",
    );
    db.sql("UPDATE shop.orders SET qty = qty + 1 WHERE id <= 10");
    wait_restorable(&c, None, SystemTime::now(), Duration::from_secs(60), || {
        std::fs::read_to_string(work.path().join("archive.err")).unwrap_or_default()
    });

    // To the moment: every commit before it, none after.
    let dir = work.path().join("at-moment");
    let at = moment.to_rfc3339();
    let r = c.json(&restore_args(&dir, &["--at", &at]));
    assert_eq!(r["point"], p["id"], "{r}");
    assert!(r["replay"]["to"].as_str().is_some(), "{r}");
    assert_eq!(servers_on(&dir), 0, "the private server still runs");
    {
        let restored = start_on(&dir);
        assert_eq!(count(&restored), at_moment);
    }

    // To the end of the archive: the source as it is now.
    let dir = work.path().join("latest");
    c.json(&restore_args(&dir, &["--at", "latest"]));
    let restored = start_on(&dir);
    assert_eq!(restored.checksum("shop.orders"), db.checksum("shop.orders"));
    assert_eq!(count(&restored), "5300\t5300");
    assert_eq!(
        restored
            .sql("SELECT COUNT(*) FROM mysql.user WHERE User = 'app'")
            .trim(),
        "1"
    );

    // Before the first physical point: refused, nothing written.
    let dir = work.path().join("too-early");
    let o = c.run(&restore_args(&dir, &["--at", "2020-01-01T00:00:00Z"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("restorable windows"), "{err}");
    assert!(!dir.exists(), "{err}");

    // Killed while it rolls forward: its private server dies with it, and
    // the directory (which a server would start on, half-way) says so; a
    // new restore into it names the interrupted one.
    let dir = work.path().join("killed");
    let mut child = c
        .command(&restore_args(&dir, &["--at", "latest"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while servers_on(&dir) == 0 {
        assert!(std::time::Instant::now() < deadline, "no private server");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while servers_on(&dir) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the private server outlived us"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dir.join("LIFEBOAT-RESTORE-INCOMPLETE").is_file());
    let o = c.run(&restore_args(&dir, &[]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("a restore that was interrupted"), "{err}");
}

/// A full disk while a physical point is extracted: exit 1 naming the lack
/// of space, and no data directory left to start a server on.
#[test]
fn a_full_disk_during_a_physical_restore_leaves_no_data_directory() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let db = shop(100_000);
    let (_v, c) = vault();
    c.json(&["backup", "mysql", "--physical", "--dsn", &db.root_dsn()]);
    let t = tempdir().unwrap();
    let mnt = t.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let m = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(m.success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let dir = mnt.join("data");
    let o = c.run(&restore_args(&dir, &[]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left"), "{err}");
    assert!(
        !dir.exists(),
        "a half-written data directory is left: {err}"
    );
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0, "{err}");
}
