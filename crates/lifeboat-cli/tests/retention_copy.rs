//! Retention at the edges of copies and format versions: a copy asking for a
//! retention longer than the target vault's maximum is refused (as AWS
//! Backup fails such a copy job) before anything is copied; `vault
//! configure` on a version-3 vault raises its format version, so software
//! that ignores vault lock configurations can no longer open it.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use lifeboat_testkit::{Cli, make_sample_tree, tempdir};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn check_clean(c: &Cli) {
    let r = c.json(&["vault", "check"]);
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r:#}");
}

#[test]
fn a_copy_asking_for_more_than_the_targets_maximum_retention_is_refused() {
    let t = tempdir().unwrap();
    let data = t.path().join("data");
    make_sample_tree(&data, 2);
    let src = Cli::new(BIN, &t.path().join("primary"));
    src.ok(&["vault", "init"]);
    src.ok(&[
        "backup",
        "files",
        data.to_str().unwrap(),
        "--retain-for",
        "400d",
    ]);
    let mut dst = Cli::new(BIN, &t.path().join("secondary"));
    dst.password = "the secondary's".into();
    dst.ok(&["vault", "init"]);
    dst.ok(&["vault", "configure", "--max-retention", "30d"]);
    let copy = |extra: &[&str]| {
        let mut a = vec![
            "copy", "--from", &src.vault, "--to", &dst.vault, "--all", "--json",
        ];
        a.extend_from_slice(extra);
        src.command(&a)
            .env("LIFEBOAT_TO_PASSWORD", &dst.password)
            .output()
            .unwrap()
    };
    for extra in [
        &["--retain-for", "1y"][..],
        &["--retain-for", "31d", "--lock", "compliance"],
    ] {
        let o = copy(extra);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {err}");
        assert!(
            err.contains("longer than the vault's maximum retention 30d")
                && err.contains("cannot copy"),
            "{extra:?}: {err}"
        );
    }
    assert_eq!(dst.json(&["points", "list"]).as_array().unwrap().len(), 0);
    check_clean(&dst);
    // Within the maximum it copies; the source point's own 400 days do not
    // travel with it (a copy's retention is the copy's, format spec §16).
    let o = copy(&["--retain-for", "30d"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = dst.json(&["points", "list"]);
    let id = list[0]["id"].as_str().unwrap();
    let p = dst.json(&["points", "show", id]);
    let until: chrono::DateTime<chrono::Utc> = p["retention"]["retain_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        until < chrono::Utc::now() + chrono::Duration::days(31),
        "{p:#}"
    );
}

#[test]
fn vault_configure_on_a_version_3_vault_raises_its_format_version() {
    let t = tempdir().unwrap();
    let data = t.path().join("data");
    make_sample_tree(&data, 4);
    let c = Cli::new(BIN, &t.path().join("vault"));
    c.ok(&["vault", "init"]);
    // A version-3 vault: what version-3 software wrote (no `chunker_seed`).
    let config_path = t.path().join("vault/config");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["version"] = 3.into();
    config.as_object_mut().unwrap().remove("chunker_seed");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let id = c.json(&["backup", "files", data.to_str().unwrap()])["id"].clone();

    // Reading and backing up leave the version alone.
    let read = |p: &std::path::Path| -> Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    assert_eq!(read(&config_path)["version"], 3);

    let o = c.run(&["vault", "configure", "--min-retention", "7d"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("format version was raised from 3 to 4"),
        "{}",
        stderr(&o)
    );
    let after = read(&config_path);
    assert_eq!(after["version"], 4, "{after:#}");
    // Only the version changed.
    let mut expected = config.clone();
    expected["version"] = 4.into();
    assert_eq!(after, expected);
    assert_eq!(
        std::fs::metadata(&config_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The vault still opens, its point restores, and a second configure
    // (during the cooling-off) changes nothing more.
    check_clean(&c);
    assert_eq!(c.json(&["points", "list"])[0]["id"], id);
    c.assert_restores("latest", &data, &t.path().join("restored"));
    let o = c.run(&["vault", "configure", "--min-retention", "8d"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("raised"), "{}", stderr(&o));
    assert_eq!(
        c.json(&["vault", "configure", "--show"])["min_retention"],
        "8d"
    );
}
