//! Bucket replication through the real `lifeboat replicate` process: directory
//! buckets and two buckets of a real S3-protocol server (moto) standing for
//! two sites; checked by an outside tool (`rclone check`) and by reading
//! metadata and tags without Lifeboat's code.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use lifeboat_testkit::proxy::TcpProxy;
use lifeboat_testkit::s3::S3Server;
use lifeboat_testkit::{pseudo_random, tempdir};
use support::*;

#[test]
fn directory_buckets_follow_changes_deletes_and_resume_without_recopying() {
    let t = tempdir().unwrap();
    let (src, dst, state) = dir_buckets(t.path(), "primary", "secondary");
    for i in 0..30 {
        put_file(
            &src,
            &format!("assets/old-{i}.css"),
            format!("old {i}").as_bytes(),
            Some("text/css"),
            &[],
        );
    }
    let (from, to) = (file_url(&src), file_url(&dst));
    let port = lifeboat_testkit::mariadb::free_port();
    let listen = format!("127.0.0.1:{port}");
    let r = Replicator::start(&from, &to, &state, &["--metrics-listen", &listen]);
    r.settle(30);
    assert!(
        !dst.join("assets/old-0.css").exists(),
        "without --existing, what was there before is not copied"
    );
    // New objects, with metadata, appear within seconds.
    let started = Instant::now();
    put_file(
        &src,
        "index.html",
        b"<h1>shop</h1>",
        Some("text/html"),
        &[("release", "2026-11")],
    );
    put_file(
        &src,
        "img/a/b/logo.png",
        &pseudo_random(1, 200_000),
        Some("image/png"),
        &[],
    );
    put_file(&src, "stable.txt", b"never changes", None, &[]);
    r.wait("three copies", 10, |s| {
        s["copied_objects"] == 3 && s["backlog_objects"] == 0
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read(dst.join("index.html")).unwrap(),
        b"<h1>shop</h1>"
    );
    assert_eq!(
        xattr(&dst.join("index.html"), "user.lifeboat.content-type").as_deref(),
        Some("text/html")
    );
    assert_eq!(
        xattr(&dst.join("index.html"), "user.lifeboat.meta.release").as_deref(),
        Some("2026-11")
    );
    // A changed old object is replicated; deletes follow; status and metrics say so.
    put_file(&src, "assets/old-3.css", b"changed", Some("text/css"), &[]);
    std::fs::remove_file(src.join("index.html")).unwrap();
    let s = r.wait("change and delete", 10, |s| {
        s["copied_objects"] == 4 && s["deleted_objects"] == 1
    });
    assert!(!dst.join("index.html").exists());
    assert_eq!(
        std::fs::read(dst.join("assets/old-3.css")).unwrap(),
        b"changed"
    );
    assert!(s["lag_p99_s"].as_f64().unwrap() < 5.0, "{s:#}");
    assert!(s["running"].as_bool().unwrap());
    let metrics = lifeboat_testkit::s3::http_get(port, "/metrics");
    assert!(
        metrics.contains("lifeboat_replication_copied_objects_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lifeboat_replication_lag_seconds{"),
        "{metrics}"
    );
    let prom = Command::new(BIN)
        .args(["replicate", "status", "--prometheus", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&prom.stdout).contains("lifeboat_replication_backlog_objects{")
    );
    let s = r.stop();
    assert_eq!(s["phase"], "stopped");
    assert!(!s["running"].as_bool().unwrap());
    // While stopped: one new, one changed, one deleted, one copy damaged at the destination.
    put_file(&src, "while-down.txt", b"new", None, &[]);
    put_file(
        &src,
        "img/a/b/logo.png",
        b"new logo",
        Some("image/png"),
        &[],
    );
    std::fs::remove_file(src.join("assets/old-3.css")).unwrap();
    std::fs::write(dst.join("assets/old-4.css"), b"tampered").unwrap(); // not replicated: stays
    let r = Replicator::start(&from, &to, &state, &[]);
    let s = r.settle(30);
    assert_eq!(
        s["copied_objects"], 2,
        "a restart copies only what changed: {s:#}"
    );
    assert_eq!(s["deleted_objects"], 1, "{s:#}");
    assert_eq!(
        std::fs::read(dst.join("img/a/b/logo.png")).unwrap(),
        b"new logo"
    );
    assert!(!dst.join("assets/old-3.css").exists());
    r.stop();
    // The replicated keys (everything except the objects that predate the rule) match.
    std::fs::remove_dir_all(src.join("assets")).unwrap();
    let _ = std::fs::remove_dir_all(dst.join("assets"));
    assert_same(src.to_str().unwrap(), dst.to_str().unwrap(), None, &[]);
    // The check can fail: a damaged copy is found.
    std::fs::write(dst.join("while-down.txt"), b"wen").unwrap();
    let (ok, _) = rclone_check(src.to_str().unwrap(), dst.to_str().unwrap(), None, &[]);
    assert!(!ok, "rclone check must see a damaged copy");
}

#[test]
fn delete_markers_ignore_keeps_objects_and_existing_backfills() {
    let t = tempdir().unwrap();
    let (src, dst, state) = dir_buckets(t.path(), "a", "b");
    for i in 0..50 {
        put_file(
            &src,
            &format!("p/{i:03}"),
            &pseudo_random(i, 1000 + i as usize),
            None,
            &[("n", &i.to_string())],
        );
    }
    put_file(&src, "other/x", b"not in the prefix", None, &[]);
    let (from, to) = (file_url(&src), file_url(&dst));
    let r = Replicator::start(
        &from,
        &to,
        &state,
        &[
            "--existing",
            "--delete-markers",
            "ignore",
            "--prefix",
            "p/",
            "--concurrency",
            "3",
        ],
    );
    let s = r.settle(30);
    assert_eq!(s["copied_objects"], 50);
    assert!(!dst.join("other/x").exists(), "the prefix filters keys");
    assert_eq!(
        xattr(&dst.join("p/007"), "user.lifeboat.meta.n").as_deref(),
        Some("7")
    );
    std::fs::remove_file(src.join("p/010")).unwrap();
    put_file(&src, "p/new", b"n", None, &[]);
    r.wait("the new object", 10, |s| s["copied_objects"] == 51);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        dst.join("p/010").exists(),
        "--delete-markers ignore keeps deleted objects"
    );
    r.stop();
    // A one-shot run copies what changed meanwhile and exits.
    put_file(&src, "p/later", b"l", None, &[]);
    let o = Command::new(BIN)
        .args([
            "replicate",
            "--once",
            "--json",
            "--delete-markers",
            "ignore",
            "--prefix",
            "p/",
            "--from",
            &from,
            "--to",
            &to,
            "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["copied"], 1, "{rep}");
    assert_eq!(std::fs::read(dst.join("p/later")).unwrap(), b"l");
    assert!(dst.join("p/010").exists());

    let o = Command::new(BIN)
        .args(["replicate", "--from", &from, "--to", &from])
        .output()
        .unwrap();
    assert!(!o.status.success(), "a bucket cannot replicate to itself");
}

#[test]
fn s3_sites_replicate_metadata_and_tags_and_survive_an_outage() {
    let s3 = S3Server::start();
    s3.create_bucket("site-a");
    s3.create_bucket("site-b");
    let proxy = TcpProxy::start(s3.port);
    let t = tempdir().unwrap();
    let state = t.path().join("state");
    for i in 0..40 {
        let tag = format!("n={i}&tier=web");
        raw_put(
            &s3,
            &format!("/site-a/shop/page-{i:02}.html"),
            &[
                ("Content-Type", "text/html"),
                ("x-amz-meta-build", "7"),
                ("x-amz-tagging", &tag),
            ],
            format!("<p>page {i}</p>").as_bytes(),
        );
    }
    raw_put(&s3, "/site-a/shop/a//odd", &[], b"odd key");
    raw_put(&s3, "/site-a/shop/folder/", &[], b"");
    let from = s3.url("site-a", "");
    let to = format!(
        "s3://site-b?endpoint=http://127.0.0.1:{}&region=us-east-1",
        proxy.port
    );
    let r = Replicator::start(&from, &to, &state, &["--existing", "-q"]);
    let s = r.settle(60);
    assert_eq!(s["copied_objects"], 42, "{s:#}");
    // The outside view of the destination: content type, metadata, tags, odd keys.
    let head = s3
        .request("HEAD", "/site-b/shop/page-07.html")
        .unwrap()
        .to_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("x-amz-meta-build: 7"), "{head}");
    let tags = s3
        .request("GET", "/site-b/shop/page-07.html?tagging")
        .unwrap();
    assert!(tags.contains("<Key>n</Key><Value>7</Value>"), "{tags}");
    assert!(tags.contains("<Key>tier</Key><Value>web</Value>"), "{tags}");
    assert_eq!(
        body_of(&s3.request("GET", "/site-b/shop/a//odd").unwrap()),
        "odd key"
    );
    assert_same("SRC:site-a", "DST:site-b", Some(&s3), &[]);
    // The destination site goes away: the backlog grows, nothing is lost.
    proxy.set_enabled(false);
    for i in 0..20 {
        raw_put(
            &s3,
            &format!("/site-a/shop/during-outage-{i}"),
            &[("Content-Type", "text/plain")],
            &pseudo_random(i, 5000),
        );
    }
    raw_put(
        &s3,
        "/site-a/shop/page-00.html",
        &[("Content-Type", "text/html")],
        b"<p>changed during the outage</p>",
    );
    let s = r.wait("a backlog while the destination is away", 60, |s| {
        s["backlog_objects"].as_u64() == Some(21) && s["failures"].as_u64() > Some(0)
    });
    assert!(s["backlog_bytes"].as_u64().unwrap() >= 100_000, "{s:#}");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{s:#}"
    );
    let (ok, _) = rclone_check("SRC:site-a", "DST:site-b", Some(&s3), &[]);
    assert!(!ok, "the sites differ during the outage");
    proxy.set_enabled(true);
    let s = r.wait("catching up", 60, |s| {
        s["backlog_objects"] == 0 && s["copied_objects"] == 63
    });
    assert!(s["lag_p99_s"].as_f64().is_some(), "{s:#}");
    assert_same("SRC:site-a", "DST:site-b", Some(&s3), &[]);
    // Deletes follow (default policy).
    s3.request("DELETE", "/site-a/shop/page-01.html").unwrap();
    r.wait("a delete", 30, |s| s["deleted_objects"] == 1);
    assert!(
        s3.request("HEAD", "/site-b/shop/page-01.html")
            .unwrap()
            .starts_with("HTTP/1.1 404")
    );
    r.stop();
}

#[test]
fn an_object_overwritten_while_copied_arrives_as_one_complete_version() {
    // Directory source: the writer replaces a 24 MiB object again and again
    // (each version is one repeated byte); every version the destination ever
    // shows must be uniform, and the last one must be the writer's last.
    let t = tempdir().unwrap();
    let (src, dst, state) = dir_buckets(t.path(), "a", "b");
    put_file(&src, "big.bin", &[0u8; 1024], None, &[]);
    let r = Replicator::start(
        &file_url(&src),
        &file_url(&dst),
        &state,
        &["--existing", "-q"],
    );
    r.settle(30);
    let len = 24 * 1024 * 1024;
    let writer_src = src.clone();
    let writer = std::thread::spawn(move || {
        for v in 1..=25u8 {
            put_file(&writer_src, "big.bin", &vec![v; len], None, &[]);
            std::thread::sleep(Duration::from_millis(40));
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    let check = |seen: &mut std::collections::BTreeSet<u8>| {
        if let Ok(d) = std::fs::read(dst.join("big.bin")) {
            let first = d[0];
            assert!(
                d.iter().all(|b| *b == first),
                "a torn mix of versions at the destination"
            );
            seen.insert(first);
        }
    };
    while !writer.is_finished() {
        check(&mut seen);
    }
    writer.join().unwrap();
    r.wait("the last version", 30, |_| {
        std::fs::read(dst.join("big.bin")).is_ok_and(|d| d.len() == len && d[0] == 25)
    });
    check(&mut seen);
    assert!(seen.len() >= 2, "the test saw several versions: {seen:?}");
    r.stop();

    // S3 source: PUTs replace a 12 MiB object while it is being copied.
    let s3 = S3Server::start();
    s3.create_bucket("site-a");
    s3.create_bucket("site-b");
    let state = t.path().join("state-s3");
    let r = Replicator::start(
        &s3.url("site-a", ""),
        &s3.url("site-b", ""),
        &state,
        &["-q"],
    );
    r.settle(30);
    let len = 12 * 1024 * 1024;
    for v in 1..=6u8 {
        raw_put(&s3, "/site-a/big.bin", &[], &vec![v; len]);
        if let Ok(resp) = s3.request("GET", "/site-b/big.bin") {
            let b = body_of(&resp).as_bytes();
            if resp.starts_with("HTTP/1.1 200") {
                assert!(
                    b.iter().all(|x| *x == b[0]),
                    "a torn mix of versions at the destination"
                );
            }
        }
    }
    r.wait("the last version", 60, |_| {
        let resp = s3.request("GET", "/site-b/big.bin").unwrap();
        let b = body_of(&resp).as_bytes();
        b.len() == len && b.iter().all(|x| *x == 6)
    });
    r.stop();
}

#[test]
fn files_put_into_new_directories_are_followed_without_a_rescan() {
    // inotify watches a new directory only after its creation event: files
    // renamed into it at once must still be seen (not at the next full listing).
    let t = tempdir().unwrap();
    let (src, dst, state) = dir_buckets(t.path(), "a", "b");
    let r = Replicator::start(
        &file_url(&src),
        &file_url(&dst),
        &state,
        &["--rescan-every", "3600", "-q"],
    );
    r.settle(30);
    for i in 0..300 {
        put_file(&src, &format!("n{i}/deeper/obj"), b"x", None, &[]);
    }
    r.wait("every new directory's object", 20, |s| {
        s["copied_objects"] == 300
    });
    r.stop();
}

#[test]
fn a_one_shot_run_that_could_not_copy_an_object_exits_3_and_says_so() {
    let t = tempdir().unwrap();
    let (src, dst) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(&dst).unwrap();
    put_file(&src, "fine", b"f", None, &[]);
    put_file(&src, "d/x", b"x", None, &[]);
    // Where `d/x` must go, the destination holds a plain file `d`: that
    // object can never be written (a permanent failure, parked).
    std::fs::write(dst.join("d"), b"not a directory").unwrap();
    let (from, to) = (file_url(&src), file_url(&dst));
    let o = Command::new(BIN)
        .args([
            "replicate",
            "--once",
            "--json",
            "--existing",
            "--delete-markers",
            "ignore",
            "--from",
            &from,
            "--to",
            &to,
            "--state",
        ])
        .arg(t.path().join("state"))
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(rep["failures"].as_u64() > Some(0), "{rep}");
    assert_eq!(std::fs::read(dst.join("fine")).unwrap(), b"f");
    assert_eq!(
        o.status.code(),
        Some(3),
        "a one-shot run that left an object behind is incomplete: {rep} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(rep["parked"], 1, "{rep}");
}
