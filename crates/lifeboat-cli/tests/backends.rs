//! One suite, every storage backend: a vault on a directory and a vault on a
//! real S3-protocol server (moto) must behave the same through the CLI.

use std::path::Path;

use lifeboat_testkit::args::backup_files;
use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_testkit::{Cli, make_sample_tree, mutate_tree, tempdir};

fn suite(c: &Cli, work: &Path) {
    let src = work.join("src");
    make_sample_tree(&src, 31);
    c.ok(&["vault", "init"]);
    let o = c.run(&["vault", "init"]);
    assert!(!o.status.success(), "a second init is refused");
    let first = c.json(&backup_files(&src, &["--tag", "one"]));
    let again = c.json(&backup_files(&src, &[]));
    assert_eq!(again["bytes_read"], 0, "incremental on this backend too");
    mutate_tree(&src, 0.2, 3);
    c.ok(&backup_files(&src, &[]));
    let list = c.json(&["points", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(list[0]["tags"], serde_json::json!(["one"]));
    c.assert_restores("latest", &src, &work.join("r"));
    c.ok(&["vault", "check", "--read-data"]);
    // Keys and a wrong password.
    let added = c
        .command(&["key", "add", "--json"])
        .env("LIFEBOAT_NEW_PASSWORD", "second")
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let mut wrong = c.clone();
    wrong.password = "nope".into();
    let o = wrong.run(&["points", "list"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong password"));
    let mut second = c.clone();
    second.password = "second".into();
    second.ok(&["points", "list"]);
    // Retention: forget the first two, prune, everything left still restores.
    c.ok(&["points", "forget", first["id"].as_str().unwrap()]);
    c.ok(&["forget", "--keep-last", "1"]);
    let rep = c.json(&["prune"]);
    assert!(rep["deleted_packs"].as_u64().unwrap() >= 1, "{rep}");
    c.ok(&["vault", "check", "--read-data"]);
    c.assert_restores("latest", &src, &work.join("r2"));
}

#[test]
fn directory_vault_passes_the_backend_suite() {
    let t = tempdir().unwrap();
    let c = Cli::new(env!("CARGO_BIN_EXE_lifeboat"), &t.path().join("vault"));
    suite(&c, t.path());
}

#[test]
fn s3_vault_passes_the_backend_suite() {
    let t = tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("dr-vault");
    let mut c = Cli::at(
        env!("CARGO_BIN_EXE_lifeboat"),
        &s3.url("dr-vault", "lifeboat/main"),
    );
    c.env = CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    suite(&c, t.path());
    // The objects really are in the bucket, under the prefix.
    let listing = s3
        .request("GET", "/dr-vault?list-type=2&prefix=lifeboat/main/points/")
        .unwrap();
    assert!(listing.contains("<Key>lifeboat/main/points/"), "{listing}");
}

#[test]
fn unreachable_s3_is_a_clear_error() {
    let port = lifeboat_testkit::mariadb::free_port();
    let mut c = Cli::at(
        env!("CARGO_BIN_EXE_lifeboat"),
        &format!("s3://nowhere/x?endpoint=http://127.0.0.1:{port}"),
    );
    c.env = CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let started = std::time::Instant::now();
    let o = c.run(&["points", "list"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("127.0.0.1") || err.contains("connect"),
        "{err}"
    );
    assert!(
        started.elapsed().as_secs() < 60,
        "gives up in reasonable time"
    );
}
