//! The database goes away and comes back (stopped, then killed, then not
//! there at start-up): `/health` and the API answer 503 quickly with a JSON
//! reason, and the shop recovers by itself, without a restart.

mod common;

use std::time::{Duration, Instant};

use common::*;

const ORDER: &str = r#"{"items":[{"product_id":1,"quantity":1}]}"#;

/// Asserts that the shop answers 503 with a database reason, quickly.
fn assert_unavailable(shop: &Served) {
    let t = Instant::now();
    let h = shop.get("/health");
    assert_eq!(h.status, 503, "{}", h.text());
    let h = h.json();
    assert_eq!(h["status"], "unavailable");
    assert_eq!(h["bucket"], "ok");
    assert!(
        h["database"]
            .as_str()
            .unwrap()
            .starts_with("database unavailable"),
        "{h}"
    );
    for r in [
        shop.get("/api/products"),
        shop.post_json("/api/orders", ORDER),
        shop.get("/api/orders/1"),
    ] {
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("database unavailable")
        );
    }
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "503s took {:?}",
        t.elapsed()
    );
}

fn assert_order_placed(shop: &Served) -> u64 {
    let r = shop.post_json("/api/orders", ORDER);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["order_id"].as_u64().unwrap()
}

#[test]
fn database_outages_give_quick_503s_and_the_shop_recovers_by_itself() {
    let mut db = mariadb();
    let url = db_url(&db, "shop");
    // The database is down when the shop starts: it serves 503 and migrates later.
    db.stop();
    let bucket = minimal_bucket();
    let shop = Served::start(&url, &format!("file://{}", bucket.path().display()));
    assert_unavailable(&shop);
    db.restart();
    shop.wait_health(200, Duration::from_secs(15));
    seed(&url, 3, 1000);
    let first = assert_order_placed(&shop);

    // Stopped cleanly (SIGTERM), then back on the same port and data.
    db.stop();
    assert_unavailable(&shop);
    db.restart();
    shop.wait_health(200, Duration::from_secs(15));
    let second = assert_order_placed(&shop);
    assert!(second > first);

    // Crashed (SIGKILL): pooled connections die with it.
    db.kill();
    assert_unavailable(&shop);
    db.restart();
    shop.wait_health(200, Duration::from_secs(15));
    assert_order_placed(&shop);
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM shop.orders").trim(),
        "3",
        "the orders placed while up are kept; none from the outages"
    );
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let db = mariadb();
    let bucket = minimal_bucket();
    let b = format!("file://{}", bucket.path().display());
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &[
                "serve",
                "--database-url",
                "postgres://x@y/z",
                "--bucket",
                &b,
            ],
            2,
            "bad database URL",
        ),
        (
            &[
                "serve",
                "--database-url",
                &db_url(&db, "shop"),
                "--bucket",
                "ftp://x",
            ],
            2,
            "bad bucket URL",
        ),
        (
            &[
                "serve",
                "--database-url",
                &db_url(&db, "shop"),
                "--bucket",
                "s3://UP",
            ],
            2,
            "bucket name",
        ),
        (&["serve", "--bucket", &b], 2, "--database-url"),
        (
            &[
                "seed",
                "--database-url",
                &format!("mysql://nobody:wrong@127.0.0.1:{}/shop", db.port),
            ],
            1,
            "Access denied",
        ),
        (
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                &format!("mysql://nobody:wrong@127.0.0.1:{}/shop", db.port),
                "--bucket",
                &b,
            ],
            1,
            "Access denied",
        ),
        (
            &[
                "load",
                "--url",
                "http://127.0.0.1:9",
                "--rate",
                "5",
                "--duration",
                "1s",
                "--log",
                "/dev/null",
            ],
            1,
            "127.0.0.1:9",
        ),
        (
            &[
                "load",
                "--url",
                "http://127.0.0.1:9",
                "--rate",
                "5",
                "--duration",
                "soon",
                "--log",
                "/dev/null",
            ],
            2,
            "not a duration",
        ),
        (
            &[
                "verify",
                "--log",
                "/nonexistent/log",
                "--database-url",
                &db_url(&db, "shop"),
            ],
            1,
            "/nonexistent/log",
        ),
        (
            &[
                "publish-frontend",
                "--bucket",
                &b,
                "--frontend",
                "/nonexistent",
            ],
            1,
            "no index.html",
        ),
    ];
    for (args, code, hint) in cases {
        let t = Instant::now();
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(hint), "{args:?}: {err}");
        assert!(!err.contains("wrong"), "a password leaked: {err}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{args:?} took {:?}",
            t.elapsed()
        );
    }
}
