//! A database resource through the API: a real `mariadbd`, a snapshot made
//! by a run, the binlog archive running: the point's contents list its
//! databases and tables, a database is restored beside the live one
//! (`POST /restores/database`), and `/metrics` has the archive lag.

use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::tempdir;

use crate::support::{configure, series};

#[test]
fn a_database_points_tables_and_archive_lag() {
    let d = tempdir().unwrap();
    let w = d.path();
    let db = MariaDb::start();
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, total INT); CREATE TABLE shop.items (id INT PRIMARY KEY); INSERT INTO shop.orders VALUES (1, 10);");
    let dsn = format!("mysql://root@127.0.0.1:{}", db.port);
    let s = configure(
        w,
        &format!(
            "[vault.main]\nlocation = \"{}/main\"\n[resource.shop-db]\ndsn = \"{dsn}\"\narchive = {{ vault = \"main\" }}\n\
             [plan.hourly]\nresources = [\"shop-db\"]\nschedule = \"0 * * * *\"\n",
            w.display()
        ),
        "",
    );
    s.cli.ok(&["jobs", "run", "--plan", "hourly"]);
    let mut arch = s
        .cli
        .command(&[
            "archive",
            "mysql",
            "--dsn",
            &dsn,
            "--resource",
            "shop-db",
            "--seal-interval",
            "1s",
            "--spool",
            w.join("spool").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    db.sql("INSERT INTO shop.orders VALUES (2, 20);");
    let t = Instant::now();
    while s
        .cli
        .json(&["points", "list", "--resource", "shop-db"])
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["kind"] != "mysql-binlog")
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the archive sealed nothing"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let srv = s.serve(&[], None);
    let snap = s.cli.json(&[
        "points",
        "show",
        "latest",
        "--kind",
        "mysql",
        "--resource",
        "shop-db",
    ]);
    let id = snap["id"].as_str().unwrap();
    let dbs = srv.json(&format!("/api/v1/points/main/{id}/contents"));
    assert_eq!(dbs["listing"], "databases");
    let names: Vec<&str> = dbs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"shop"), "{dbs}");
    assert!(
        dbs["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "database")
    );
    let tables = srv.json(&format!("/api/v1/points/main/{id}/contents?path=shop"));
    let mut names: Vec<&str> = tables["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["items", "orders"], "{tables}");
    assert_eq!(
        srv.get(
            &format!("/api/v1/points/main/{id}/contents?path=nodb"),
            Some(&srv.token)
        )
        .0,
        404
    );
    // Seal points are left out of the list unless asked for.
    let pts = srv.json("/api/v1/resources/shop-db/points");
    assert!(
        pts["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["kind"] == "mysql"),
        "{pts}"
    );
    let all = srv.json("/api/v1/resources/shop-db/points?seals=true");
    assert!(
        all["points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "mysql-binlog")
    );

    // A database restored beside the live one; every refusal named.
    for (body, code, says) in [
        (
            r#""database":"shop","as":"shop x""#,
            400,
            "plain database name",
        ),
        (
            r#""database":"shop","as":"shop""#,
            400,
            "replaces the live database",
        ),
        (r#""database":"nodb","as":"n2""#, 404, "no database `nodb`"),
        (
            r#""database":"shop","as":"MySQL","replace":true"#,
            400,
            "the server's own schema",
        ),
    ] {
        let (c, b) = srv.post(
            "/api/v1/restores/database",
            Some(&format!(r#"{{"vault":"main","point":"{id}",{body}}}"#)),
        );
        assert_eq!(c, code, "{body}: {b}");
        assert!(b["error"].as_str().unwrap().contains(says), "{b}");
    }
    // `shop` as `shop_copy`, followed to its end.
    let restore_copy = || {
        let (c, started) = srv.post(
            "/api/v1/restores/database",
            Some(&format!(
                r#"{{"vault":"main","point":"{id}","database":"shop","as":"shop_copy"}}"#
            )),
        );
        assert_eq!(c, 202, "{started}");
        crate::support::end_of(&srv.events(started["jobs"][0].as_i64().unwrap()))
    };
    let end = restore_copy();
    assert_eq!(end["status"], "succeeded", "{end}");
    assert_eq!(db.sql("SELECT id, total FROM shop_copy.orders"), "1\t10\n");
    // Again: the target is not empty now, so it is refused (the job fails, the copy stays).
    let end = restore_copy();
    assert_eq!(end["status"], "failed", "{end}");
    assert!(
        end["error"].as_str().unwrap().contains("shop_copy"),
        "{end}"
    );
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop_copy.orders").trim(), "1");

    let (_, text) = srv.get("/metrics", Some(&srv.token));
    let lag = series(&text)
        .into_iter()
        .find(|(k, _)| k == r#"lifeboat_binlog_archive_lag_seconds{resource="shop-db"}"#)
        .unwrap_or_else(|| panic!("no archive lag in:\n{text}"))
        .1;
    assert!((0.0..60.0).contains(&lag), "{lag}");
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&arch),
        rustix::process::Signal::TERM,
    );
    arch.wait().unwrap();
}
