//! Incremental physical points (`backup mysql --physical --incremental`,
//! `--full-every`) against real throw-away `mariadbd` servers and the real
//! `mariadb-backup`: a chain of a full point and two incrementals with
//! writes between restores its tip into a data directory that starts with
//! the source's checksums of that moment, an incremental after a few
//! percent of the rows changed stores far less than the full point;
//! retention keeps a chain whole and lets an old chain go after a new full
//! point; a chain with a missing link is reported by `vault check` and
//! refused by a restore, naming both points.

mod physical_fixture;

use lifeboat_testkit::Cli;
use lifeboat_testkit::mariadb::MariaDb;
use physical_fixture::{Restored, TABLES, checksums, restore, settle, shop, stderr, vault};
use serde_json::Value;

/// `backup mysql --physical` with `extra` flags, as JSON.
fn backup(c: &Cli, db: &MariaDb, extra: &[&str]) -> Value {
    let dsn = db.root_dsn();
    let mut args = vec!["backup", "mysql", "--physical", "--dsn", dsn.as_str()];
    args.extend_from_slice(extra);
    c.json(&args)
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

fn physical_ids(c: &Cli) -> Vec<String> {
    c.json(&["points", "list"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "mysql-physical")
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

/// A full point and two incrementals with writes between: each names its
/// base, the incrementals store far less, and the tip restores (the whole
/// chain applied) into a server that starts with the source's checksums,
/// from the vault and from a copy of it in another vault; `--full-every`
/// starts a new full point once the chain's is old enough.
#[test]
fn an_incremental_chain_restores_its_tip_and_stores_only_what_changed() {
    let db = shop();
    let (t, c) = vault();
    let full = backup(&c, &db, &["--incremental"]);
    assert_eq!(full["base"], Value::Null, "{full}");
    assert_eq!(full["backup_type"], "full-backuped", "{full}");
    // About 5 % of the orders change (the newest ones, as in a shop).
    db.sql(
        "UPDATE shop.orders SET qty = qty + 1 WHERE id > 28500;
         INSERT INTO shop.notes VALUES (3, 'third');",
    );
    settle(&db);
    let inc1 = backup(&c, &db, &["--incremental"]);
    let sums1 = checksums(&db);
    assert_eq!(inc1["base"], id(&full), "{inc1}");
    assert_eq!(inc1["backup_type"], "incremental", "{inc1}");
    assert_eq!(inc1["lsn"]["from"], full["lsn"]["to"], "{inc1}");
    db.sql(
        "DELETE FROM shop.orders WHERE id BETWEEN 100 AND 300;
         INSERT INTO shop.orders VALUES (30001, 'late', 1), (30002, 'later', 2);
         DELETE FROM shop.legacy WHERE id = 1;",
    );
    settle(&db);
    let inc2 = backup(&c, &db, &["--full-every", "1h"]);
    let sums2 = checksums(&db);
    assert_ne!(sums1, sums2);
    assert_eq!(inc2["base"], id(&inc1), "{inc2}");
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap();
    eprintln!(
        "full: {} copied, {} new; incrementals: {} / {} copied, {} / {} new",
        n(&full, "size"),
        n(&full, "bytes_new"),
        n(&inc1, "size"),
        n(&inc2, "size"),
        n(&inc1, "bytes_new"),
        n(&inc2, "bytes_new")
    );
    for inc in [&inc1, &inc2] {
        assert!(n(inc, "size") * 3 < n(&full, "size"), "{inc} vs {full}");
        assert!(n(inc, "bytes_new") * 5 < n(&full, "bytes_new"), "{inc}");
    }

    let list = c.json(&["points", "list"]);
    let bases: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["base"])
        .collect();
    assert_eq!(bases, [&Value::Null, &full["id"], &inc1["id"]], "{list}");
    let text = c.ok(&["points", "list"]);
    assert!(
        text.contains(&format!("[physical, incremental on {}]", &id(&inc1)[..8])),
        "{text}"
    );

    // The tip restores with its whole chain.
    let dir = t.path().join("restored/data");
    let o = restore(&c, id(&inc2), &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = c.json(&[
        "restore",
        "mysql",
        id(&inc1),
        "--physical",
        "--datadir",
        t.path().join("restored/data1").to_str().unwrap(),
    ]);
    assert_eq!(report["chain"], serde_json::json!([id(&full), id(&inc1)]));
    let left: Vec<_> = std::fs::read_dir(t.path().join("restored"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left.len(), 2, "incremental directories left: {left:?}");
    let server = Restored::start(&dir);
    assert_eq!(
        server.sql(&format!("CHECKSUM TABLE {TABLES}")).unwrap(),
        sums2
    );
    drop(server);
    let server = Restored::start(&t.path().join("restored/data1"));
    assert_eq!(
        server.sql(&format!("CHECKSUM TABLE {TABLES}")).unwrap(),
        sums1
    );
    drop(server);

    // A copy in another vault keeps the chain: its links are the copies.
    let dst = Cli::new(env!("CARGO_BIN_EXE_lifeboat"), &t.path().join("copy"));
    dst.ok(&["vault", "init"]);
    let o = c
        .command(&["copy", "--to", &dst.vault, "--all"])
        .env("LIFEBOAT_TO_PASSWORD", &dst.password)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    dst.ok(&["vault", "check"]);
    let copies = dst.json(&["points", "list"]);
    let tip = copies.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = t.path().join("from-copy");
    let report = dst.json(&[
        "restore",
        "mysql",
        &tip,
        "--physical",
        "--datadir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(report["chain"].as_array().unwrap().len(), 3, "{report}");
    assert!(
        !report["chain"].as_array().unwrap().contains(&full["id"]),
        "{report}"
    );
    let server = Restored::start(&dir);
    assert_eq!(
        server.sql(&format!("CHECKSUM TABLE {TABLES}")).unwrap(),
        sums2
    );
    drop(server);

    // A chain whose full point is older than --full-every: a new full point.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let again = backup(&c, &db, &["--full-every", "1s"]);
    assert_eq!(again["base"], Value::Null, "{again}");
    assert_eq!(again["backup_type"], "full-backuped", "{again}");
    c.ok(&["vault", "check", "--read-data"]);
}

/// Retention keeps every link a kept incremental needs and lets an old
/// chain go once a new full point is the one kept; a missing link is
/// reported by `vault check` and refused by a restore, both points named,
/// and the next incremental backup takes a full point instead, saying why —
/// as it does for another server under the same resource name.
#[test]
fn retention_keeps_chains_whole_and_a_broken_chain_is_found_and_refused() {
    let db = shop();
    let (t, c) = vault();
    let f1 = backup(&c, &db, &[]);
    db.sql("UPDATE shop.orders SET qty = 0 WHERE id < 500");
    let i1 = backup(&c, &db, &["--incremental"]);
    db.sql("UPDATE shop.orders SET qty = 1 WHERE id < 500");
    let i2 = backup(&c, &db, &["--incremental"]);
    assert_eq!(i2["base"], id(&i1));
    let out = c.ok(&["forget", "--keep-last", "1"]);
    assert!(
        out.contains(&format!("base of incremental {}", &id(&i2)[..8])),
        "{out}"
    );
    assert_eq!(physical_ids(&c).len(), 3, "{out}");
    let f2 = backup(&c, &db, &[]);
    let out = c.ok(&["forget", "--keep-last", "1"]);
    assert_eq!(physical_ids(&c), [id(&f2)], "{out}");
    c.ok(&["prune"]);

    // A chain of f2 and two incrementals loses its middle link.
    db.sql("UPDATE shop.orders SET qty = 2 WHERE id < 500");
    let i3 = backup(&c, &db, &["--incremental"]);
    db.sql("UPDATE shop.orders SET qty = 3 WHERE id < 500");
    let i4 = backup(&c, &db, &["--incremental"]);
    assert_eq!((&i3["base"], &i4["base"]), (&f2["id"], &i3["id"]));
    let (i3s, i4s) = (&id(&i3)[..8], &id(&i4)[..8]);
    let o = c.run(&["points", "forget", id(&i3)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "{i3s} was the base of incremental physical point {i4s}"
        )),
        "{}",
        stderr(&o)
    );
    let o = c.run(&["vault", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let found = String::from_utf8_lossy(&o.stdout);
    assert!(
        found.contains(i3s) && found.contains(i4s) && found.contains("missing"),
        "{found}"
    );
    let dir = t.path().join("never");
    let o = restore(&c, id(&i4), &dir);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "physical point {i3s}, the base of incremental point {i4s}"
        )) && err.contains("missing"),
        "{err}"
    );
    assert!(!dir.exists(), "{err}");
    // The next incremental backup cannot build on the broken chain.
    let dsn = db.root_dsn();
    let o = c.run(&[
        "backup",
        "mysql",
        "--physical",
        "--incremental",
        "--dsn",
        &dsn,
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("a full point was taken instead")
            && stderr(&o).contains("broken chain"),
        "{}",
        stderr(&o)
    );
    let _ = f1;

    // Another server under the same resource name: a full point, and why.
    let resource = f2["resource"].as_str().unwrap();
    let other = MariaDb::start();
    let dsn = other.root_dsn();
    let args = [
        "backup",
        "mysql",
        "--physical",
        "--incremental",
        "--resource",
        resource,
        "--dsn",
        &dsn,
    ];
    let o = c.run(&args);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("was taken of another server"),
        "{}",
        stderr(&o)
    );
    let newest = c
        .json(&["points", "list"])
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(newest["base"], Value::Null, "{newest}");
}
