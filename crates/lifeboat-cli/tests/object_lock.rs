//! S3 Object Lock: a locked point's objects (point, packs, index files) carry
//! the point's retention, so the store itself refuses a raw delete of their
//! versions, whoever sends it. Real `lifeboat` runs on the S3 test server
//! (moto); deletes are raw S3 requests, an attacker's view.

use lifeboat_testkit::args::backup_files;
use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_testkit::{Cli, make_sample_tree, tempdir};

/// The binary under test (`LIFEBOAT_TEST_BIN` runs the tests against another
/// build, e.g. the code before a fix).
fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

fn cli(s3: &S3Server, bucket: &str) -> Cli {
    let mut c = Cli::at(bin(), &s3.url(bucket, "v"));
    c.env = CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c
}

/// (key, version id) of every object version under `prefix`.
fn versions(s3: &S3Server, bucket: &str, prefix: &str) -> Vec<(String, String)> {
    let r = s3
        .request("GET", &format!("/{bucket}?versions&prefix={prefix}"))
        .unwrap();
    let tag = |s: &str, t: &str| {
        let a = s.find(&format!("<{t}>"))? + t.len() + 2;
        let b = s[a..].find(&format!("</{t}>"))? + a;
        Some(s[a..b].to_string())
    };
    r.split("<Version>")
        .skip(1)
        .filter_map(|v| Some((tag(v, "Key")?, tag(v, "VersionId")?)))
        .collect()
}

fn status(r: &str) -> u16 {
    r.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn delete_version(s3: &S3Server, bucket: &str, key: &str, version: &str) -> u16 {
    status(
        &s3.request("DELETE", &format!("/{bucket}/{key}?versionId={version}"))
            .unwrap(),
    )
}

#[test]
fn raw_deletes_of_a_locked_points_object_versions_are_refused_by_the_store() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 3);
    let s3 = S3Server::start();
    let r = s3
        .request_with(
            "PUT",
            "/locked-vault",
            &[("x-amz-bucket-object-lock-enabled", "true")],
            b"",
        )
        .unwrap();
    assert_eq!(status(&r), 200, "{r}");
    let c = cli(&s3, "locked-vault");
    c.ok(&["vault", "init"]);
    let locked = c.json(&backup_files(
        &src,
        &["--retain-for", "2d", "--lock", "compliance"],
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The store holds the retention on the point, its packs and index files.
    let r = s3
        .request("GET", &format!("/locked-vault/v/points/{locked}?retention"))
        .unwrap();
    assert!(r.contains("COMPLIANCE"), "{r}");
    let points = versions(&s3, "locked-vault", "v/points/");
    let packs = versions(&s3, "locked-vault", "v/packs/");
    let index = versions(&s3, "locked-vault", "v/index/");
    assert!(!packs.is_empty() && !index.is_empty());
    for (key, v) in points.iter().chain(&packs).chain(&index) {
        assert_eq!(
            delete_version(&s3, "locked-vault", key, v),
            403,
            "raw delete of locked {key} was not refused"
        );
    }

    // A point without retention: its version is deletable (the store, not
    // the test, makes the difference).
    std::fs::write(src.join("new-file"), b"something new").unwrap();
    let plain = c.json(&backup_files(&src, &[]))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = format!("v/points/{plain}");
    let (_, v) = versions(&s3, "locked-vault", &key).pop().unwrap();
    assert_eq!(delete_version(&s3, "locked-vault", &key, &v), 204);

    // Lifeboat refuses too, and prune copes with what it cannot delete.
    let o = c.run(&["points", "forget", &locked]);
    assert_eq!(o.status.code(), Some(1));
    c.ok(&["prune"]);
    c.ok(&["vault", "check"]);
    c.assert_restores(&locked, &src_before(&src), &t.path().join("r"));

    // Extending the lock rewrites the point; the new object is locked on
    // the store too.
    let ext = c.json(&["points", "lock", &locked, "--retain-for", "5d"]);
    let locked = ext["id"].as_str().unwrap().to_string();
    let key = format!("v/points/{locked}");
    let r = s3
        .request("GET", &format!("/locked-vault/{key}?retention"))
        .unwrap();
    assert!(
        r.contains("COMPLIANCE") && r.contains(&ext["retain_until"].as_str().unwrap()[..10]),
        "{r}"
    );
    let (_, v) = versions(&s3, "locked-vault", &key).pop().unwrap();
    assert_eq!(delete_version(&s3, "locked-vault", &key, &v), 403);

    // S3 LastModified is a time the client cannot choose: a point stamped
    // a year ahead is judged by it and does not push the real ones out.
    let forged = forge_in_child(&c, &locked);
    let newest = c.json(&backup_files(&src, &[]))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = c.json(&["forget", "--keep-last", "1", "--dry-run"]);
    let notes = out["time_notes"].to_string();
    assert!(notes.contains(&forged), "{out}");
    let keep = |id: &str| {
        out["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap()["keep"]
            .as_bool()
            .unwrap()
    };
    assert!(keep(&newest) && !keep(&forged), "{out}");

    // A bucket without Object Lock: retention still works (Lifeboat's own).
    s3.create_bucket("plain-vault");
    let p = cli(&s3, "plain-vault");
    p.ok(&["vault", "init"]);
    p.ok(&backup_files(&src, &["--retain-for", "1d"]));
}

/// The source as it was at the locked backup (`new-file` came later).
fn src_before(src: &std::path::Path) -> std::path::PathBuf {
    std::fs::remove_file(src.join("new-file")).unwrap();
    src.to_path_buf()
}

/// Writes, through the library, a copy of `point` stamped a year ahead (an
/// attacker holding the password). Runs in a child process of this test
/// binary, which gets the S3 credentials in its environment.
fn forge_in_child(c: &Cli, point: &str) -> String {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "forge_helper", "--ignored", "--nocapture"])
        .env("FORGE_VAULT", &c.vault)
        .env("FORGE_PASSWORD", &c.password)
        .env("FORGE_POINT", point);
    for (k, v) in CREDENTIALS {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("forged "))
        .expect("forged id")
        .to_string()
}

#[test]
#[ignore = "run by forge_in_child"]
fn forge_helper() {
    let var = |k: &str| std::env::var(k).unwrap();
    let v = lifeboat_vault::Vault::open(
        &lifeboat_vault::Location::parse(&var("FORGE_VAULT")).unwrap(),
        var("FORGE_PASSWORD").as_bytes(),
    )
    .unwrap();
    let (_, mut p) = v.find_point(&var("FORGE_POINT"), None).unwrap();
    p.time = chrono::Utc::now() + chrono::Duration::days(365);
    p.retention = None;
    println!("forged {}", v.write_point(&p).unwrap().to_hex());
}

/// Issue 21, B9: on a bucket with Object Lock an immutable vault lock
/// configuration is locked on the store too, and a delete marker (a plain
/// DELETE of its key, which any writer's keys may send) does not hide it:
/// every version under `vault-lock/` is read.
#[test]
fn an_immutable_vault_lock_configuration_survives_a_delete_marker_and_is_locked_on_the_store() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 4);
    let s3 = S3Server::start();
    let r = s3
        .request_with(
            "PUT",
            "/cfg-vault",
            &[("x-amz-bucket-object-lock-enabled", "true")],
            b"",
        )
        .unwrap();
    assert_eq!(status(&r), 200, "{r}");
    let c = cli(&s3, "cfg-vault");
    c.ok(&["vault", "init"]);
    // A configuration written five days ago with a three-day cooling-off
    // (through the library, as only a forger could date it): immutable.
    let loc = lifeboat_vault::Location::parse(&c.vault)
        .unwrap()
        .with_credentials(lifeboat_vault::S3Credentials::Keys {
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            session_token: None,
            source: "the test".into(),
        })
        .unwrap();
    let v = lifeboat_vault::Vault::open(&loc, c.password.as_bytes()).unwrap();
    let s = lifeboat_vault::retention::LockSettings {
        min_retention: Some(chrono::Duration::days(7)),
        max_retention: None,
        mode: lifeboat_vault::LockMode::Compliance,
        changeable_for: chrono::Duration::days(3),
    };
    let now = chrono::Utc::now();
    lifeboat_vault::retention::configure(&v, &s, now - chrono::Duration::days(5)).unwrap();
    drop(v);
    // A writer reads it: the store now keeps its version in compliance mode.
    c.ok(&backup_files(&src, &[]));
    let cfg = versions(&s3, "cfg-vault", "v/vault-lock/");
    assert_eq!(cfg.len(), 1, "{cfg:?}");
    let (key, version) = &cfg[0];
    let r = s3
        .request(
            "GET",
            &format!("/cfg-vault/{key}?retention&versionId={version}"),
        )
        .unwrap();
    assert!(r.contains("COMPLIANCE"), "{r}");
    assert_eq!(
        delete_version(&s3, "cfg-vault", key, version),
        403,
        "a raw delete of the configuration's version was accepted"
    );
    // A plain DELETE only adds a delete marker: the configuration still rules.
    let r = s3.request("DELETE", &format!("/cfg-vault/{key}")).unwrap();
    assert_eq!(status(&r), 204, "{r}");
    let shown = c.json(&["vault", "configure", "--show"]);
    assert_eq!(shown["configured"], true, "{shown:#}");
    assert_eq!(shown["immutable"], true, "{shown:#}");
    let id = c.json(&backup_files(&src, &[]))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = c.json(&["points", "show", &id]);
    assert_eq!(p["retention"]["mode"], "compliance", "{p:#}");
    // And nobody can replace it by a weaker one, nor remove it, nor forget
    // the point, whatever their clock says: the store's `Date` decides.
    let o = c.run(&[
        "vault",
        "configure",
        "--min-retention",
        "1d",
        "--lock",
        "governance",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("immutable"));
    for (offset, args) in [
        ("-4d", &["vault", "configure", "--remove"][..]),
        ("+8d", &["points", "forget", &id[..]][..]),
    ] {
        let o = faked(&c, offset, args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    c.ok(&["points", "show", &id]);
    assert_eq!(
        c.json(&["vault", "configure", "--show"])["configured"],
        true
    );
}

/// `c`'s command for `args` under `faketime -f OFFSET` (Debian `faketime`).
fn faked(c: &Cli, offset: &str, args: &[&str]) -> std::process::Output {
    let inner = c.command(args);
    let mut cmd = std::process::Command::new("faketime");
    cmd.args(["-f", offset])
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.output()
        .expect("faketime (Debian package faketime) must be installed")
}
