//! Bucket snapshots into a vault and restores, through the CLI: directory
//! buckets and a real S3-protocol server (moto); checked with `rclone check`
//! and with raw reads of listings, metadata and tags.

mod support;

use std::path::Path;

use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_testkit::{Cli, pseudo_random, tempdir};
use support::{raw_put, rclone_check};

fn cli(vault: &Path) -> Cli {
    let mut c = Cli::new(env!("CARGO_BIN_EXE_lifeboat"), vault);
    c.env = CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.ok(&["vault", "init"]);
    c
}

fn set_x(p: &Path, name: &str, v: &str) {
    rustix::fs::setxattr(p, name, v.as_bytes(), rustix::fs::XattrFlags::empty()).unwrap();
}

fn get_x(p: &Path, name: &str) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    rustix::fs::getxattr(p, name, &mut buf[..])
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn rclone_same(a: &str, b: &str, s3: Option<&S3Server>, filter: &str) -> bool {
    let (ok, out) = rclone_check(a, b, s3, &["--filter", filter]);
    if !ok {
        eprintln!("{out}");
    }
    ok
}

#[test]
fn directory_bucket_snapshots_are_incremental_and_restore_with_metadata() {
    let t = tempdir().unwrap();
    let src = t.path().join("frontend");
    for i in 0..40 {
        let p = src.join(format!("static/{}/file-{i}.js", i % 4));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, pseudo_random(i, 100 + 5000 * i as usize)).unwrap();
    }
    std::fs::write(src.join("index.html"), b"<h1>Unishop</h1>").unwrap();
    set_x(
        &src.join("index.html"),
        "user.lifeboat.content-type",
        "text/html",
    );
    set_x(&src.join("index.html"), "user.lifeboat.meta.release", "42");
    set_x(&src.join("index.html"), "user.lifeboat.tags", "tier=web");
    let c = cli(&t.path().join("vault"));
    let addr = format!("file://{}", src.display());
    let first = c.json(&["backup", "bucket", "--bucket", &addr]);
    assert_eq!(first["objects"], 41, "{first}");
    let again = c.json(&["backup", "bucket", "--bucket", &addr]);
    assert_eq!(
        again["objects_read"], 0,
        "unchanged objects cost only the listing: {again}"
    );
    assert_eq!(again["bytes_read"], 0);
    assert_eq!(again["parent"], first["id"]);
    std::fs::write(src.join("static/1/file-5.js"), b"changed").unwrap();
    let third = c.json(&["backup", "bucket", "--bucket", &addr]);
    assert_eq!(third["objects_read"], 1, "{third}");
    let list = c.json(&["points", "list"]);
    assert_eq!(list[2]["kind"], "bucket");
    // Restore into a new bucket: the outside tool finds no difference.
    let to = t.path().join("restored");
    c.ok(&[
        "restore",
        "bucket",
        "latest",
        "--to-bucket",
        &format!("file://{}", to.display()),
    ]);
    assert!(rclone_same(
        src.to_str().unwrap(),
        to.to_str().unwrap(),
        None,
        "+ **" // everything: a restore leaves no staging directory behind
    ));
    assert_eq!(
        get_x(&to.join("index.html"), "user.lifeboat.content-type").as_deref(),
        Some("text/html")
    );
    assert_eq!(
        get_x(&to.join("index.html"), "user.lifeboat.meta.release").as_deref(),
        Some("42")
    );
    assert_eq!(
        get_x(&to.join("index.html"), "user.lifeboat.tags").as_deref(),
        Some("tier=web")
    );
    // An older point, and only a prefix of it.
    let part = t.path().join("part");
    let rep = c.json(&[
        "restore",
        "bucket",
        first["id"].as_str().unwrap(),
        "--to-bucket",
        &format!("file://{}", part.display()),
        "--prefix",
        "static/1/",
    ]);
    assert_eq!(rep["objects"], 10, "{rep}");
    assert_ne!(
        std::fs::read(part.join("static/1/file-5.js")).unwrap(),
        b"changed",
        "the first point's version"
    );
    assert!(!part.join("index.html").exists());
    c.ok(&["vault", "check", "--read-data"]);
    // A point of another kind is refused.
    let files = c.json(&["backup", "files", src.to_str().unwrap()]);
    let o = c.run(&[
        "restore",
        "bucket",
        files["id"].as_str().unwrap(),
        "--to-bucket",
        &format!("file://{}", t.path().join("x").display()),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a bucket"));
}

/// (key, size, etag) of every object, from a raw listing.
fn listing(s3: &S3Server, bucket: &str) -> Vec<(String, String, String)> {
    let body = s3
        .request("GET", &format!("/{bucket}?list-type=2"))
        .unwrap();
    let field = |c: &str, tag: &str| {
        let s = c.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
        c[s..s + c[s..].find('<').unwrap()].to_string()
    };
    body.split("<Contents>")
        .skip(1)
        .map(|c| (field(c, "Key"), field(c, "Size"), field(c, "ETag")))
        .collect()
}

#[test]
fn s3_bucket_snapshot_keeps_odd_keys_metadata_and_tags() {
    let s3 = S3Server::start();
    s3.create_bucket("shop-assets");
    s3.create_bucket("restored");
    let t = tempdir().unwrap();
    for i in 0..20 {
        raw_put(
            &s3,
            &format!("/shop-assets/img/p{i}.png"),
            &[("Content-Type", "image/png"), ("x-amz-meta-w", "640")],
            &pseudo_random(i, 3000),
        );
    }
    raw_put(
        &s3,
        "/shop-assets/index.html",
        &[
            ("Content-Type", "text/html"),
            ("x-amz-tagging", "tier=web&team=shop"),
        ],
        b"<h1>shop</h1>",
    );
    // Keys a path split cannot represent, and an object named like a "directory".
    for k in ["a//b", "folder/", "/lead", "50%25off", "img", "img%25"] {
        raw_put(
            &s3,
            &format!("/shop-assets/{k}"),
            &[],
            format!("key {k}").as_bytes(),
        );
    }
    raw_put(
        &s3,
        "/shop-assets/big.bin",
        &[],
        &pseudo_random(99, 9 * 1024 * 1024),
    );
    let c = cli(&t.path().join("vault"));
    let addr = s3.url("shop-assets", "");
    let first = c.json(&["backup", "bucket", "--bucket", &addr]);
    assert_eq!(first["objects"], 28, "{first}");
    let again = c.json(&["backup", "bucket", "--bucket", &addr]);
    assert_eq!(again["objects_read"], 0, "{again}");
    c.ok(&[
        "restore",
        "bucket",
        "latest",
        "--to-bucket",
        &s3.url("restored", ""),
    ]);
    let (a, b) = (listing(&s3, "shop-assets"), listing(&s3, "restored"));
    assert_eq!(a.len(), 28);
    // Keys and sizes equal; ETags too, except where the restore wrote a
    // multipart object (its ETag is not an MD5): that one is compared by content.
    let strip = |v: &[(String, String, String)]| -> Vec<(String, String, String)> {
        v.iter()
            .map(|(k, s, e)| {
                (
                    k.clone(),
                    s.clone(),
                    if k == "big.bin" {
                        String::new()
                    } else {
                        e.clone()
                    },
                )
            })
            .collect()
    };
    assert_eq!(
        strip(&a),
        strip(&b),
        "keys, sizes and ETags of the restored bucket"
    );
    let raw = s3
        .request_bytes("GET", "/restored/big.bin", &[], b"")
        .unwrap();
    let start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        raw[start..] == pseudo_random(99, 9 * 1024 * 1024)[..],
        "big.bin content"
    );
    let head = s3
        .request("HEAD", "/restored/img/p3.png")
        .unwrap()
        .to_lowercase();
    assert!(
        head.contains("content-type: image/png") && head.contains("x-amz-meta-w: 640"),
        "{head}"
    );
    let tags = s3.request("GET", "/restored/index.html?tagging").unwrap();
    assert!(
        tags.contains("<Key>team</Key><Value>shop</Value>"),
        "{tags}"
    );
    // rclone on the keys it can handle (it takes `img` for a file and `a//b` for `a/b`).
    assert!(rclone_same(
        "SRC:shop-assets",
        "DST:restored",
        Some(&s3),
        "+ img/**"
    ));
    // Into a directory bucket: the keys a directory cannot hold are named, the rest restored.
    let dir = t.path().join("dir");
    let o = c.run(&[
        "restore",
        "bucket",
        "latest",
        "--to-bucket",
        &format!("file://{}", dir.display()),
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("a//b") && err.contains("folder/") && err.contains("/lead"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join("50%off")).unwrap(), b"key 50%25off");
    assert_eq!(std::fs::read(dir.join("img%")).unwrap(), b"key img%25");
    assert_eq!(
        get_x(&dir.join("index.html"), "user.lifeboat.tags").as_deref(),
        Some("team=shop&tier=web")
    );
    assert_eq!(
        std::fs::read(dir.join("img/p3.png")).unwrap(),
        pseudo_random(3, 3000)
    );
}
