//! Physical database points (`backup mysql --physical`, `restore mysql
//! --physical`) against real throw-away `mariadbd` servers and the real
//! `mariadb-backup`: two points of a changing server (the second storing far
//! less), each restored into a fresh data directory that a new `mariadbd`
//! starts on with the source's `CHECKSUM TABLE` of that moment; a backup cut
//! short or failing leaves no point and a vault that checks clean; bad input
//! is refused and a damaged vault leaves no partial data directory.

mod physical_fixture;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use lifeboat_testkit::{Cli, files_below, flip_byte};
use physical_fixture::{
    Restored, TABLES, checksums, physical, restore, settle, shop, stderr, vault,
};

/// Two points of a changing server: the second stores far less; each
/// restores into a fresh data directory that starts with the source's
/// checksums of its moment; `points list` shows their mode.
#[test]
fn physical_points_deduplicate_and_restore_into_a_server_that_starts() {
    let db = shop();
    let (t, c) = vault();
    let first = physical(&c, &db);
    let sums1 = checksums(&db);
    assert_eq!(first["mode"], "physical", "{first}");
    assert!(first["lsn"]["to"].as_u64().unwrap() > 0, "{first}");
    assert!(
        first["binlog"]["file"]
            .as_str()
            .unwrap()
            .starts_with("binlog."),
        "{first}"
    );
    assert!(first["files"].as_u64().unwrap() > 10, "{first}");
    db.sql(
        "UPDATE shop.orders SET qty = qty + 1 WHERE id IN (5, 15000, 29999);
         INSERT INTO shop.notes VALUES (3, 'third');
         DELETE FROM shop.legacy WHERE id = 2;",
    );
    settle(&db);
    let second = physical(&c, &db);
    let sums2 = checksums(&db);
    assert_ne!(sums1, sums2);
    let (new1, new2) = (
        first["bytes_new"].as_u64().unwrap(),
        second["bytes_new"].as_u64().unwrap(),
    );
    eprintln!("first point: {new1} new bytes, second: {new2}");
    assert!(
        new2 * 4 < new1,
        "the second point stored {new2} new bytes, the first {new1}"
    );
    assert!(second["bytes_stored"].as_u64().unwrap() * 4 < first["bytes_stored"].as_u64().unwrap());

    let list = c.json(&["points", "list"]);
    let modes: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["mode"].as_str())
        .collect();
    assert_eq!(modes, ["physical", "physical"], "{list}");
    assert!(c.ok(&["points", "list"]).contains("mysql-physical"));

    for (point, sums) in [(&first, &sums1), (&second, &sums2)] {
        let dir = t
            .path()
            .join(format!("data-{}", &point["id"].as_str().unwrap()[..8]));
        let o = restore(&c, point["id"].as_str().unwrap(), &dir);
        assert!(o.status.success(), "{}", stderr(&o));
        let server = Restored::start(&dir);
        assert_eq!(
            &server.sql(&format!("CHECKSUM TABLE {TABLES}")).unwrap(),
            sums
        );
    }
    // A logical restore of a physical point says how to restore it.
    let o = c.run(&[
        "restore",
        "mysql",
        first["id"].as_str().unwrap(),
        "--dsn",
        &db.root_dsn(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--physical --datadir"),
        "{}",
        stderr(&o)
    );
    c.ok(&["vault", "check", "--read-data"]);
}

/// A directory holding a stand-in `mariadb-backup` running `script` (with
/// the real tool as `$REAL`), for the PATH of a run.
fn tool_dir(t: &Path, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let real = ["/usr/bin/mariadb-backup", "/usr/local/bin/mariadb-backup"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mariadb-backup (apt-get install mariadb-backup)");
    let dir = t.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("mariadb-backup");
    std::fs::write(&f, format!("#!/bin/sh\nREAL={real}\n{script}\n")).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn with_path(c: &Cli, dir: &Path) -> Cli {
    let mut c = c.clone();
    let path = std::env::var("PATH").unwrap_or_default();
    c.env
        .push(("PATH".into(), format!("{}:{path}", dir.display())));
    c
}

fn physical_points(c: &Cli) -> usize {
    c.json(&["points", "list"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "mysql-physical")
        .count()
}

/// A stream cut short, a tool that fails after a whole stream, a missing
/// tool and a remote server: no point, a vault that checks clean, and the
/// reason in words.
#[test]
fn a_failed_or_cut_backup_leaves_no_point_and_bad_input_is_refused() {
    let db = shop();
    let (t, c) = vault();
    let dsn = db.root_dsn();
    let args = ["backup", "mysql", "--physical", "--dsn", dsn.as_str()];
    let cases = [
        (
            "cut",
            "\"$REAL\" \"$@\" | head -c 3000000",
            "not a valid backup stream",
        ),
        (
            "fails",
            "\"$REAL\" \"$@\"\necho 'simulated failure' >&2\nexit 3",
            "simulated failure",
        ),
    ];
    for (name, script, needle) in cases {
        let dir = tool_dir(t.path(), name, script);
        let o = with_path(&c, &dir).run(&args);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{name}: {}", stderr(&o));
        assert_eq!(physical_points(&c), 0, "{name}");
        c.ok(&["vault", "check"]);
    }
    // Lifeboat killed mid-stream: no point, a clean vault, and the next
    // backup works (it adopts the packs the killed one left).
    let dir = tool_dir(
        t.path(),
        "slow",
        "\"$REAL\" \"$@\" | (head -c 2000000; sleep 6; cat)",
    );
    let mut run = with_path(&c, &dir)
        .command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    run.kill().unwrap();
    run.wait().unwrap();
    assert_eq!(physical_points(&c), 0);
    c.ok(&["vault", "check"]);
    c.ok(&args);
    assert_eq!(physical_points(&c), 1);
    c.ok(&["vault", "check"]);
    // No mariadb-backup at all: the package is named.
    let mut bare = c.clone();
    bare.env.push(("PATH".into(), "/nonexistent".into()));
    let o = bare.run(&args);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("apt-get install mariadb-backup"),
        "{}",
        stderr(&o)
    );
    // A server on another host.
    let o = c.run(&[
        "backup",
        "mysql",
        "--physical",
        "--dsn",
        "mysql://root@192.0.2.1:3306",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("runs on the database host"),
        "{}",
        stderr(&o)
    );
    assert_eq!(physical_points(&c), 1);
}

/// A non-empty data directory is refused and left alone; a damaged blob
/// fails the restore with the file named and nothing of it left behind.
#[test]
fn restores_refuse_a_used_directory_and_clean_up_after_damage() {
    let db = shop();
    let (t, c) = vault();
    let id = physical(&c, &db)["id"].as_str().unwrap().to_string();
    let used = t.path().join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("ibdata1"), b"someone's").unwrap();
    let o = restore(&c, &id, &used);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not empty"), "{}", stderr(&o));
    assert_eq!(std::fs::read(used.join("ibdata1")).unwrap(), b"someone's");

    // Damage the middle of every data pack.
    let vault = t.path().join("vault");
    for p in files_below(&vault.join("packs")) {
        let len = std::fs::metadata(&p).unwrap().len() as i64;
        if len > 1 << 20 {
            flip_byte(&p, len / 2);
        }
    }
    let missing = t.path().join("new/data");
    let o = restore(&c, &id, &missing);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("cannot read") && err.contains("removed"),
        "{err}"
    );
    assert!(
        !missing.exists(),
        "the partial data directory is left: {err}"
    );
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = restore(&c, &id, &empty);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}
