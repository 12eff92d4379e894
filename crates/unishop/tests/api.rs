//! The JSON API against a real MariaDB and the real binary: catalogue,
//! checkout, order history, refusals that write nothing, stock under
//! concurrent checkouts, the frontend read from the bucket, migrations.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Rows of a table as one number.
fn count(db: &MariaDb, sql: &str) -> u64 {
    db.sql(sql).trim().parse().unwrap()
}

fn stock(db: &MariaDb, id: u32) -> u64 {
    count(
        db,
        &format!("SELECT stock FROM shop.products WHERE id = {id}"),
    )
}

#[test]
fn catalogue_checkout_and_order_history() {
    let shop = shop(12, 50);
    let db = &shop.db;
    let h = shop.get("/health");
    assert_eq!(h.status, 200);
    assert_eq!(
        h.json(),
        json!({"status": "ok", "database": "ok", "bucket": "ok"})
    );

    let products = shop.get("/api/products").json();
    let list = products.as_array().unwrap();
    assert_eq!(list.len(), 12);
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["name"], "Sturdy Lantern");
    assert_eq!(list[0]["stock"], 50);
    assert_eq!(list[0]["image_url"], "/images/lantern.svg");
    let price = |id: usize| list[id - 1]["price_cents"].as_u64().unwrap();
    assert_eq!(
        shop.get("/api/products?offset=10&limit=5")
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(shop.get("/api/products/3").json()["id"], 3);
    assert_eq!(shop.get("/api/products/999").status, 404);

    // Two products, one of them twice: the quantities add up.
    let r = shop.post_json(
        "/api/orders",
        r#"{"items":[{"product_id":3,"quantity":2},{"product_id":5,"quantity":1},{"product_id":3,"quantity":1}]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let placed = r.json();
    let id = placed["order_id"].as_u64().unwrap();
    let total = 3 * price(3) + price(5);
    assert_eq!(placed["total_cents"], total);
    assert_eq!(stock(db, 3), 47);
    assert_eq!(stock(db, 5), 49);
    assert_eq!(
        db.sql(&format!("SELECT line_no, product_id, quantity, unit_price_cents FROM shop.order_lines WHERE order_id = {id} ORDER BY line_no")),
        format!("1\t3\t3\t{}\n2\t5\t1\t{}\n", price(3), price(5))
    );
    assert_eq!(
        db.sql(&format!("SELECT status, total_cents, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM shop.orders WHERE id = {id}")),
        format!("placed\t{total}\t{}\n", placed["created_at"].as_str().unwrap())
    );

    let order = shop.get(&format!("/api/orders/{id}")).json();
    assert_eq!(order["id"], id);
    assert_eq!(order["created_at"], placed["created_at"]);
    assert_eq!(order["total_cents"], total);
    assert_eq!(order["lines"][0]["name"], list[2]["name"]);
    assert_eq!(order["lines"][1]["quantity"], 1);

    let second = shop.post_json(
        "/api/orders",
        r#"{"items":[{"product_id":1,"quantity":1}]}"#,
    );
    assert_eq!(second.status, 201);
    let history = shop.get("/api/orders?limit=10").json();
    let ids: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![second.json()["order_id"].as_u64().unwrap(), id]);
    assert_eq!(history[1]["pieces"], 4);
    assert_eq!(shop.get("/api/orders/424242").status, 404);
}

#[test]
fn impossible_and_malformed_orders_are_refused_and_write_nothing() {
    let shop = shop(3, 5);
    let db = &shop.db;
    let snapshot = || {
        db.sql("SELECT (SELECT COUNT(*) FROM shop.orders), (SELECT COUNT(*) FROM shop.order_lines), (SELECT GROUP_CONCAT(stock ORDER BY id) FROM shop.products)")
    };
    let before = snapshot();
    let cases: &[(&str, Option<&str>, u16, &str)] = &[
        (
            r#"{"items":[{"product_id":99,"quantity":1}]}"#,
            Some("application/json"),
            400,
            "unknown product 99",
        ),
        // A valid line followed by an unknown product: nothing of the first is kept.
        (
            r#"{"items":[{"product_id":1,"quantity":1},{"product_id":99,"quantity":1}]}"#,
            Some("application/json"),
            400,
            "unknown product 99",
        ),
        (
            r#"{"items":[{"product_id":1,"quantity":0}]}"#,
            Some("application/json"),
            400,
            "between 1 and",
        ),
        (
            r#"{"items":[{"product_id":1,"quantity":-1}]}"#,
            Some("application/json"),
            400,
            "quantity",
        ),
        (
            r#"{"items":[]}"#,
            Some("application/json"),
            400,
            "at least one item",
        ),
        (
            r#"{"items":[{"product_id":1}]}"#,
            Some("application/json"),
            400,
            "quantity",
        ),
        (
            r#"{"items":[{"product_id":1,"quantity":1}"#,
            Some("application/json"),
            400,
            "expected",
        ),
        ("not json at all", Some("application/json"), 400, "expected"),
        (
            r#"{"items":[{"product_id":1,"quantity":1}]}"#,
            None,
            400,
            "Content-Type: application/json",
        ),
        // Stock: product 2 has 5; the first line alone would fit.
        (
            r#"{"items":[{"product_id":1,"quantity":2},{"product_id":2,"quantity":6}]}"#,
            Some("application/json"),
            409,
            "not enough stock for product 2",
        ),
    ];
    for (body, ctype, status, hint) in cases {
        let r = request(
            "POST",
            &format!("{}/api/orders", shop.url),
            *ctype,
            Some(body),
        );
        assert_eq!(r.status, *status, "{body}: {}", r.text());
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "{body}"
        );
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(hint), "{body}: {msg}");
        assert_eq!(snapshot(), before, "{body} changed the database");
    }
    for path in [
        "/api/orders/abc",
        "/api/products/-1",
        "/api/products?limit=x",
    ] {
        let r = shop.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().starts_with("bad"),
            "{path}"
        );
    }
    for (method, path) in [("PUT", "/api/orders"), ("DELETE", "/api/products/1")] {
        let r = request(method, &format!("{}{path}", shop.url), None, None);
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(
            r.json()["error"],
            format!("{method} is not allowed on {path}")
        );
    }
    let r = shop.get("/api/nothing-here");
    assert_eq!(
        (r.status, r.json()["error"].as_str().unwrap()),
        (404, "no API route /api/nothing-here")
    );

    // Exhaust the stock exactly, then one more piece is refused.
    let r = shop.post_json(
        "/api/orders",
        r#"{"items":[{"product_id":2,"quantity":5}]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = shop.post_json(
        "/api/orders",
        r#"{"items":[{"product_id":2,"quantity":1}]}"#,
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["error"],
        "not enough stock for product 2 (Sturdy Mug): 0 left, 1 asked"
    );
    assert_eq!(count(db, "SELECT COUNT(*) FROM shop.orders"), 1);
    assert_eq!(stock(db, 2), 0);
}

#[test]
fn concurrent_checkouts_never_oversell() {
    let shop = shop(2, 8);
    let db = &shop.db;
    // 24 buyers at once (fewer than the shop's 32 connections), each wanting one of product 1 and one of product 2
    // (listed in both orders, so that locks are taken in different request orders).
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let shop = &shop;
                s.spawn(move || {
                    let body = if i % 2 == 0 {
                        r#"{"items":[{"product_id":1,"quantity":1},{"product_id":2,"quantity":1}]}"#
                    } else {
                        r#"{"items":[{"product_id":2,"quantity":1},{"product_id":1,"quantity":1}]}"#
                    };
                    shop.post_json("/api/orders", body).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = statuses.iter().filter(|s| **s == 201).count();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, conflicts), (8, 16), "{statuses:?}");
    assert_eq!(stock(db, 1), 0);
    assert_eq!(stock(db, 2), 0);
    assert_eq!(count(db, "SELECT COUNT(*) FROM shop.orders"), 8);
    assert_eq!(count(db, "SELECT COUNT(*) FROM shop.order_lines"), 16);
    assert_eq!(
        count(
            db,
            "SELECT COALESCE(SUM(quantity), 0) FROM shop.order_lines"
        ),
        16
    );
}

#[test]
fn the_frontend_is_read_from_the_bucket_on_every_request() {
    let db = mariadb();
    let url = db_url(&db, "shop");
    let bucket = minimal_bucket();
    std::fs::create_dir_all(bucket.path().join("images")).unwrap();
    std::fs::write(bucket.path().join("images/mug.svg"), "<svg/>").unwrap();
    std::fs::write(bucket.path().join("app.js"), "console.log(1)").unwrap();
    let shop = Served::start(&url, &format!("file://{}", bucket.path().display()));
    shop.wait_health(200, Duration::from_secs(20));
    let r = shop.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.text(), "<!doctype html><title>Unishop</title>");
    assert_eq!(
        shop.get("/images/mug.svg").header("content-type"),
        Some("image/svg+xml")
    );
    assert_eq!(
        shop.get("/app.js").header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    // A change in the bucket shows at once: nothing is cached.
    std::fs::write(bucket.path().join("index.html"), "v2").unwrap();
    assert_eq!(shop.get("/index.html").text(), "v2");
    assert_eq!(shop.get("/").text(), "v2");
    // Missing keys and paths that try to leave the bucket are 404.
    let secret = bucket
        .path()
        .parent()
        .unwrap()
        .join("unishop-test-secret.txt");
    std::fs::write(&secret, "secret").unwrap();
    for p in [
        "/missing.css",
        "/../unishop-test-secret.txt",
        "/images/../../unishop-test-secret.txt",
        "/%2e%2e/unishop-test-secret.txt",
    ] {
        let r = shop.get(p);
        assert_eq!(r.status, 404, "{p}: {}", r.text());
        assert!(!r.text().contains("secret\""), "{p}");
    }
    std::fs::remove_file(&secret).unwrap();
    // Without index.html the bucket is not healthy, with a reason.
    std::fs::remove_file(bucket.path().join("index.html")).unwrap();
    let h = shop.wait_health(503, Duration::from_secs(5)).json();
    assert_eq!(h["database"], "ok");
    assert_eq!(h["status"], "unavailable");
    assert!(
        h["bucket"]
            .as_str()
            .unwrap()
            .contains("index.html not found"),
        "{h}"
    );
}

#[test]
fn two_instances_starting_at_once_migrate_once() {
    let db = mariadb();
    let url = db_url(&db, "fresh_shop"); // does not exist yet: created on start
    let bucket = minimal_bucket();
    let b = format!("file://{}", bucket.path().display());
    let (a, c) = std::thread::scope(|s| {
        let x = s.spawn(|| Served::start(&url, &b));
        let y = s.spawn(|| Served::start(&url, &b));
        (x.join().unwrap(), y.join().unwrap())
    });
    a.wait_health(200, Duration::from_secs(20));
    c.wait_health(200, Duration::from_secs(20));
    assert_eq!(
        db.sql("SELECT version, name FROM fresh_shop.schema_migrations"),
        "1\tcatalogue, orders and order lines\n"
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'fresh_shop'")
            .trim(),
        "4"
    );
    let out = ok(&["migrate", "--database-url", &url, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["applied"], json!([]));
    // A schema newer than the program is refused, not used.
    db.sql("INSERT INTO fresh_shop.schema_migrations VALUES (99, 'from the future', NOW())");
    let o = run(&["migrate", "--database-url", &url]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("schema is at version 99"));
}
