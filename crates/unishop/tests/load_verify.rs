//! The load generator's log is the RPO yardstick: one line per acknowledged
//! order, nothing for failed ones; `verify` finds exactly the orders a
//! database lost, including ids reused by newer orders.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn log_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn verify(url: &str, log: &std::path::Path) -> (i32, Value) {
    let o = run(&[
        "verify",
        "--log",
        log.to_str().unwrap(),
        "--database-url",
        url,
        "--json",
    ]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap(), v)
}

#[test]
fn every_acknowledged_order_is_logged_and_verify_finds_the_lost_ones() {
    let shop = shop(10, 100_000);
    let db = &shop.db;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("orders.log");

    let out = ok(&[
        "load",
        "--url",
        &shop.url,
        "--rate",
        "40",
        "--duration",
        "2s",
        "--log",
        log.to_str().unwrap(),
        "--json",
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["attempted"], 80, "{report}");
    assert_eq!(report["committed"], 80, "{report}");
    assert_eq!(report["failed"], 0);
    assert!(report["latency"]["p99_ms"].as_f64().unwrap() > 0.0);

    // One line per committed order, matching the database exactly.
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 80);
    let db_orders = db.sql(
        "SELECT id, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM shop.orders ORDER BY id",
    );
    let mut logged: Vec<String> = lines
        .iter()
        .map(|l| format!("{}\t{}", l["order_id"], l["created_at"].as_str().unwrap()))
        .collect();
    logged.sort_by_key(|l| l.split('\t').next().unwrap().parse::<u64>().unwrap());
    assert_eq!(db_orders.lines().collect::<Vec<_>>(), logged);
    for l in &lines {
        let started = l["started_at"].as_str().unwrap();
        let committed = l["committed_at"].as_str().unwrap();
        let created = l["created_at"].as_str().unwrap();
        // RFC 3339 with microseconds, in order: sent ≤ stored ≤ acknowledged.
        for t in [started, committed, created] {
            assert_eq!(t.len(), "2026-11-25T10:00:00.000000Z".len(), "{t}");
        }
        assert!(started <= created && created <= committed, "{l}");
    }

    let (code, v) = verify(&shop.db_url, &log);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (
            v["orders_in_log"].as_u64(),
            v["present"].as_u64(),
            v["missing"].as_u64()
        ),
        (Some(80), Some(80), Some(0))
    );
    assert_eq!(v["data_loss_window_seconds"], 0.0);
    assert_eq!(
        v["newest_committed_in_log"],
        v["newest_present_committed_at"]
    );

    // Lose the newest ten orders, as a recovery to an older point would.
    let mut ids: Vec<u64> = lines
        .iter()
        .map(|l| l["order_id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    let cut = ids[69];
    db.sql(&format!(
        "DELETE FROM shop.order_lines WHERE order_id > {cut}; DELETE FROM shop.orders WHERE id > {cut}; ALTER TABLE shop.orders AUTO_INCREMENT = 1;"
    ));
    let (code, v) = verify(&shop.db_url, &log);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["present"], 70);
    assert_eq!(v["missing"], 10);
    assert_eq!(v["missing_ids"], serde_json::json!(ids[70..]));
    assert_eq!(v["missing_ranges"], format!("{}-{}", ids[70], ids[79]));
    assert_eq!(v["newest_present_order_id"], cut);
    let by_id = |id: u64| lines.iter().find(|l| l["order_id"] == id).unwrap().clone();
    assert_eq!(v["newest_present_committed_at"], by_id(cut)["committed_at"]);
    let window = v["data_loss_window_seconds"].as_f64().unwrap();
    assert!(window > 0.1 && window < 2.0, "{window}");

    // The recovered shop takes new orders, which reuse the lost ids: still missing.
    for _ in 0..3 {
        let r = shop.post_json(
            "/api/orders",
            r#"{"items":[{"product_id":1,"quantity":1}]}"#,
        );
        assert_eq!(r.status, 201);
    }
    let (code, v) = verify(&shop.db_url, &log);
    assert_eq!(code, 3);
    assert_eq!(v["missing"], 10);
    assert_eq!(v["replaced_ids"], serde_json::json!(ids[70..73]));
    let text = String::from_utf8(
        run(&[
            "verify",
            "--log",
            log.to_str().unwrap(),
            "--database-url",
            &shop.db_url,
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        text.contains(&format!(
            "orders missing:            10 (ids {}-{})",
            ids[70], ids[79]
        )),
        "{text}"
    );
    assert!(text.contains("of which replaced:       3"), "{text}");

    // A torn last line (the generator killed mid-write) is reported, not fatal.
    std::fs::write(
        &log,
        std::fs::read_to_string(&log).unwrap() + "{\"order_id\": 9",
    )
    .unwrap();
    let (_, v) = verify(&shop.db_url, &log);
    assert_eq!(v["unreadable_log_lines"], serde_json::json!([81]));
    assert_eq!(v["orders_in_log"], 80);
}

#[test]
fn failed_orders_are_counted_and_never_logged() {
    let mut db = mariadb();
    let url = db_url(&db, "shop");
    seed(&url, 2, 100_000);
    // Product 2 runs out after 5 pieces: some orders get 409.
    db.sql("UPDATE shop.products SET stock = 5 WHERE id = 2");
    let bucket = minimal_bucket();
    let shop = Served::start(&url, &format!("file://{}", bucket.path().display()));
    shop.wait_health(200, Duration::from_secs(20));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("orders.log");
    let shop_url = shop.url.clone();
    let log_arg = log.to_str().unwrap().to_string();
    // The database goes away half-way through the run.
    let load = std::thread::spawn(move || {
        run(&[
            "load",
            "--url",
            &shop_url,
            "--rate",
            "20",
            "--duration",
            "3s",
            "--log",
            &log_arg,
            "--json",
        ])
    });
    std::thread::sleep(Duration::from_millis(1500));
    db.stop();
    let o = load.join().unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (attempted, committed, failed) = (
        r["attempted"].as_u64().unwrap(),
        r["committed"].as_u64().unwrap(),
        r["failed"].as_u64().unwrap(),
    );
    assert_eq!(attempted, 60, "{r}");
    assert_eq!(committed + failed, attempted);
    assert!(committed >= 3, "{r}");
    assert!(r["failures"]["HTTP 409"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["failures"]["HTTP 503"].as_u64().unwrap() >= 5, "{r}");
    assert_eq!(log_lines(&log).len() as u64, committed);
    db.restart();
    // Every acknowledged order is there. (The database may hold one or two
    // more: a commit that went through while the server shut the connection
    // before answering is, rightly, not acknowledged.)
    let stored: u64 = db
        .sql("SELECT COUNT(*) FROM shop.orders")
        .trim()
        .parse()
        .unwrap();
    assert!(
        stored >= committed && stored <= committed + 2,
        "{stored} stored, {committed} acknowledged"
    );
    let (code, v) = verify(&url, &log);
    assert_eq!((code, v["missing"].as_u64()), (0, Some(0)), "{v}");
}
