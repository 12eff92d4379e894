//! `publish-frontend` uploads the shop's files, Bootstrap's dist files and the
//! product images with their content types, to a directory bucket and to a
//! real S3-protocol server (moto); the shop then serves from that bucket.
//! Needs `npm ci --prefix crates/unishop/frontend` (done by scripts/test).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use serde_json::Value;

fn publish(bucket: &str, frontend: &std::path::Path) -> std::process::Output {
    let mut c = Command::new(bin());
    c.args([
        "publish-frontend",
        "--bucket",
        bucket,
        "--json",
        "--frontend",
    ])
    .arg(frontend)
    .envs(CREDENTIALS);
    c.output().unwrap()
}

fn published(o: &std::process::Output) -> Vec<(String, String)> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_string(),
                o["content_type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn publishes_to_a_directory_with_bootstrap_and_images() {
    let dir = tempfile::tempdir().unwrap();
    let objects = published(&publish(
        &format!("file://{}", dir.path().display()),
        frontend_dir(),
    ));
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    for k in [
        "index.html",
        "app.js",
        "shop.css",
        "favicon.svg",
        "vendor/bootstrap/bootstrap.min.css",
        "vendor/bootstrap/bootstrap.bundle.min.js",
        "images/lantern.svg",
        "images/mug.svg",
    ] {
        assert!(keys.contains(&k), "{k} not published: {keys:?}");
    }
    assert_eq!(keys.last(), Some(&"index.html"), "index.html goes last");
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("package") || k.contains("node_modules")),
        "{keys:?}"
    );
    assert!(objects.contains(&(
        "vendor/bootstrap/bootstrap.min.css".into(),
        "text/css; charset=utf-8".into()
    )));
    assert!(objects.contains(&("images/mug.svg".into(), "image/svg+xml".into())));
    // Bootstrap comes from the npm package, byte for byte; our files as they are.
    assert_eq!(
        std::fs::read(dir.path().join("vendor/bootstrap/bootstrap.min.css")).unwrap(),
        std::fs::read(frontend_dir().join("node_modules/bootstrap/dist/css/bootstrap.min.css"))
            .unwrap()
    );
    assert_eq!(
        std::fs::read(dir.path().join("app.js")).unwrap(),
        std::fs::read(frontend_dir().join("app.js")).unwrap()
    );
    let svg = std::fs::read_to_string(dir.path().join("images/tent.svg")).unwrap();
    assert!(svg.starts_with("<svg ") && svg.contains(">tent</text>"));
}

#[test]
fn without_bootstrap_installed_it_says_which_command_to_run() {
    let src = tempfile::tempdir().unwrap();
    std::fs::copy(
        frontend_dir().join("index.html"),
        src.path().join("index.html"),
    )
    .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let o = publish(&format!("file://{}", dest.path().display()), src.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("Run: npm ci --prefix {}", src.path().display())),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dest.path()).unwrap().count(),
        0,
        "nothing uploaded"
    );
}

/// The content type the S3 server has for a key of bucket `unishop-frontend` (signed HEAD).
fn stored_content_type(s3: &S3Server, key: &str) -> String {
    opendal::install_default();
    let b = opendal::services::S3::default()
        .bucket("unishop-frontend")
        .endpoint(&s3.endpoint())
        .region("us-east-1")
        .access_key_id("test")
        .secret_access_key("test")
        .disable_config_load()
        .disable_ec2_metadata();
    let op = opendal::Operator::new(b).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let meta = rt.block_on(op.stat(key)).unwrap();
    meta.content_type().unwrap_or_default().to_string()
}

#[test]
fn publishes_to_s3_and_the_shop_serves_from_there() {
    let s3 = S3Server::start();
    s3.create_bucket("unishop-frontend");
    let bucket = s3.url("unishop-frontend", "site");
    let objects = published(&publish(&bucket, frontend_dir()));
    assert!(objects.len() >= 10);
    // The store keeps each object's content type.
    assert_eq!(
        stored_content_type(&s3, "site/vendor/bootstrap/bootstrap.min.css"),
        "text/css; charset=utf-8"
    );
    assert_eq!(
        stored_content_type(&s3, "site/images/mug.svg"),
        "image/svg+xml"
    );
    assert_eq!(
        stored_content_type(&s3, "site/index.html"),
        "text/html; charset=utf-8"
    );

    let db = mariadb();
    let url = db_url(&db, "shop");
    seed(&url, 4, 10);
    let shop = Served::start_with(&url, &bucket, &CREDENTIALS);
    shop.wait_health(200, Duration::from_secs(20));
    let page = shop.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.text(),
        std::fs::read_to_string(frontend_dir().join("index.html")).unwrap()
    );
    let css = shop.get("/vendor/bootstrap/bootstrap.min.css");
    assert_eq!(
        (css.status, css.header("content-type")),
        (200, Some("text/css; charset=utf-8"))
    );
    assert_eq!(shop.get("/images/missing.svg").status, 404);

    // The store goes away: the bucket part of /health says so; the database part is fine.
    drop(s3);
    let h = shop.wait_health(503, Duration::from_secs(15)).json();
    assert_eq!(h["database"], "ok");
    assert!(
        h["bucket"].as_str().unwrap().contains("unishop-frontend"),
        "{h}"
    );
    assert_eq!(shop.get("/").status, 503);
    // The API does not need the bucket.
    assert_eq!(shop.get("/api/products").status, 200);
}

/// A recovery host has only the binary: copied alone into an empty
/// directory (its source tree out of reach), it publishes the frontend it
/// carries, byte-identical to the source tree's.
#[test]
fn the_binary_alone_publishes_the_frontend_embedded_in_it() {
    let host = tempfile::tempdir().unwrap();
    let lone = host.path().join("unishop");
    std::fs::copy(bin(), &lone).unwrap();
    let embedded = tempfile::tempdir().unwrap();
    let from_source = tempfile::tempdir().unwrap();
    let o = Command::new(&lone)
        .args(["publish-frontend", "--json", "--bucket"])
        .arg(format!("file://{}", embedded.path().display()))
        .current_dir(host.path())
        .env_remove("UNISHOP_FRONTEND")
        .output()
        .unwrap();
    let mut keys: Vec<String> = published(&o).into_iter().map(|(k, _)| k).collect();
    let mut want: Vec<String> = published(&publish(
        &format!("file://{}", from_source.path().display()),
        frontend_dir(),
    ))
    .into_iter()
    .map(|(k, _)| k)
    .collect();
    keys.sort();
    want.sort();
    assert_eq!(keys, want);
    for k in &keys {
        assert_eq!(
            std::fs::read(embedded.path().join(k)).unwrap(),
            std::fs::read(from_source.path().join(k)).unwrap(),
            "{k}"
        );
    }
}
