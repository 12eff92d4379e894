//! One real customer in a real browser: Debian's Chromium, headless, driven
//! by playwright-core (tests/browser/shop.mjs) opens the shop — served from
//! the bucket the frontend was published to — adds a product to the cart and
//! checks out; the order is then found in the database. The screenshot is
//! kept as an artifact in target/artifacts/unishop-checkout.png.
//! Needs chromium (apt) and `npm ci` in the frontend and tests/browser
//! directories — scripts/test does both.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use lifeboat_testkit::browser::Browser;

#[test]
fn a_customer_buys_a_product_in_chromium() {
    let browser = Browser::new(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser")),
        &["playwright-core"],
    );
    let db = mariadb();
    let url = db_url(&db, "shop");
    seed(&url, 8, 20);
    let bucket = tempfile::tempdir().unwrap();
    let bucket_url = format!("file://{}", bucket.path().display());
    ok(&[
        "publish-frontend",
        "--bucket",
        &bucket_url,
        "--frontend",
        frontend_dir().to_str().unwrap(),
    ]);
    let shop = Served::start(&url, &bucket_url);
    shop.wait_health(200, Duration::from_secs(20));

    let artifacts = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/artifacts"
    ));
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("unishop-checkout.png");
    let _ = std::fs::remove_file(&shot);
    let result = browser.run(
        "shop.mjs",
        &[OsStr::new(&shop.url), shot.as_os_str(), OsStr::new("3")],
        &artifacts.join("unishop-checkout-failure.png"),
        || format!("shop log:\n{}", shop.log()),
    );
    let order_id = result["order_id"].as_u64().unwrap();
    assert_eq!(result["product_name"], "Sturdy Backpack");

    // The order is in the database, with its one line, and the stock went down.
    assert_eq!(
        db.sql(&format!(
            "SELECT o.status, l.product_id, l.quantity, o.total_cents = l.unit_price_cents FROM shop.orders o JOIN shop.order_lines l ON l.order_id = o.id WHERE o.id = {order_id}"
        )),
        "placed\t3\t1\t1\n"
    );
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.orders").trim(), "1");
    assert_eq!(
        db.sql("SELECT stock FROM shop.products WHERE id = 3")
            .trim(),
        "19"
    );
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot"
    );
}
