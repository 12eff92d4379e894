//! Retention and lock: `--retain-for/--lock` on backups, refusals of
//! `forget`/`points forget`, lock extension, the vault lock configuration and
//! its cooling-off, points stamped in the future, `vault stats`. Real
//! processes on real directory vaults; forged points are written with the
//! library, as an attacker holding the password would.

use std::path::Path;
use std::process::Output;

use chrono::{DateTime, Duration, Utc};
use lifeboat_testkit::args::{backup_files, restore_files};
use lifeboat_testkit::{Cli, make_sample_tree, tempdir};
use lifeboat_vault::{Location, Vault};
use serde_json::Value;

fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn setup() -> (lifeboat_testkit::TempDir, Cli, std::path::PathBuf) {
    let t = tempdir().unwrap();
    let vault = t.path().join("vault");
    let src = t.path().join("src");
    make_sample_tree(&src, 7);
    let c = Cli::new(bin(), &vault);
    c.ok(&["vault", "init"]);
    (t, c, src)
}

fn backup(c: &Cli, src: &Path, extra: &[&str]) -> String {
    let mut args = vec!["backup", "files", src.to_str().unwrap()];
    args.extend_from_slice(extra);
    c.json(&args)["id"].as_str().unwrap().to_string()
}

fn point(c: &Cli, id: &str) -> Value {
    c.json(&["points", "show", id])
}

fn until(p: &Value) -> DateTime<Utc> {
    p["retention"]["retain_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn open(c: &Cli) -> Vault {
    Vault::open(&Location::parse(&c.vault).unwrap(), c.password.as_bytes()).unwrap()
}

fn decisions(v: &Value) -> Vec<(String, bool, String)> {
    v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["keep"].as_bool().unwrap(),
                d["reasons"].to_string(),
            )
        })
        .collect()
}

fn kept(v: &Value, id: &str) -> bool {
    decisions(v).iter().find(|d| d.0 == id).expect("decided").1
}

#[test]
fn locked_points_survive_forget_and_compliance_locks_only_grow() {
    let (t, c, src) = setup();
    let compliance = backup(&c, &src, &["--retain-for", "30d", "--lock", "compliance"]);
    let governance = backup(&c, &src, &["--retain-for", "2d"]);
    let plain = backup(&c, &src, &[]);
    let p = point(&c, &compliance);
    assert_eq!(p["retention"]["mode"], "compliance");
    let left = until(&p) - Utc::now();
    assert!(
        left > Duration::days(29) && left <= Duration::days(30),
        "{left}"
    );
    assert_eq!(point(&c, &governance)["retention"]["mode"], "governance");
    assert!(point(&c, &plain)["retention"].is_null());
    let list = c.ok(&["points", "list"]);
    assert!(
        list.contains("[compliance until") && list.contains("[governance until"),
        "{list}"
    );

    // Bucket backups take the same flags.
    let bucket = t.path().join("bucket");
    std::fs::create_dir_all(bucket.join("a")).unwrap();
    std::fs::write(bucket.join("a/obj"), b"object").unwrap();
    let url = format!("file://{}", bucket.display());
    let b = c.json(&[
        "backup",
        "bucket",
        "--bucket",
        &url,
        "--retain-for",
        "1d",
        "--lock",
        "governance",
    ]);
    let bp = point(&c, b["id"].as_str().unwrap());
    assert_eq!(bp["retention"]["mode"], "governance");

    // forget keeps both locked points, naming the lock.
    let out = c.json(&["forget", "--keep-last", "1"]);
    assert!(kept(&out, &compliance) && kept(&out, &governance) && kept(&out, &plain));
    let why = decisions(&out)
        .into_iter()
        .find(|d| d.0 == compliance)
        .unwrap()
        .2;
    assert!(why.contains("locked until"), "{why}");
    // --bypass-governance lets the governance point go, never the compliance one.
    let out = c.json(&[
        "forget",
        "--keep-last",
        "1",
        "--bypass-governance",
        "--resource",
        point(&c, &plain)["resource"].as_str().unwrap(),
    ]);
    assert!(!kept(&out, &governance), "{out}");
    assert!(kept(&out, &compliance));
    assert_ne!(
        c.run(&["points", "show", &governance]).status.code(),
        Some(0)
    );

    // Deleting it by id: refused, naming the point, the mode and the expiry.
    let o = c.run(&["points", "forget", &compliance, "--bypass-governance"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(&compliance[..8]) && e.contains("compliance") && e.contains("until"),
        "{e}"
    );

    // A compliance lock is extended, never shortened or weakened.
    let o = c.run(&["points", "lock", &compliance, "--retain-for", "1d"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("never shortened"), "{}", stderr(&o));
    let o = c.run(&[
        "points",
        "lock",
        &compliance,
        "--retain-for",
        "60d",
        "--lock",
        "governance",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let ext = c.json(&["points", "lock", &compliance, "--retain-for", "60d"]);
    let new = ext["id"].as_str().unwrap().to_string();
    assert_ne!(new, compliance);
    let p = point(&c, &new);
    assert_eq!(p["retention"]["mode"], "compliance");
    assert!(until(&p) - Utc::now() > Duration::days(59));
    assert!(
        c.run(&["points", "show", &compliance]).status.code() != Some(0),
        "the old object is replaced"
    );
    // And the extended point still restores.
    c.assert_restores(&new, &src, &t.path().join("restored"));
    c.ok(&["vault", "check"]);
}

#[test]
fn vault_lock_configuration_applies_to_every_point_and_freezes_after_cooling_off() {
    let (_t, c, src) = setup();
    let o = c.run(&[
        "vault",
        "configure",
        "--min-retention",
        "7d",
        "--max-retention",
        "10y",
        "--lock",
        "compliance",
        "--changeable-for",
        "1d",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("at least 3d"), "{}", stderr(&o));
    let cfg = c.json(&[
        "vault",
        "configure",
        "--min-retention",
        "7d",
        "--max-retention",
        "10y",
        "--lock",
        "compliance",
    ]);
    assert_eq!(cfg["min_retention"], "1w");
    assert_eq!(cfg["mode"], "compliance");
    assert_eq!(cfg["immutable"], false);

    // A backup without flags gets the vault's minimum, in its mode.
    let id = backup(&c, &src, &[]);
    let p = point(&c, &id);
    assert_eq!(p["retention"]["mode"], "compliance");
    assert!(until(&p) - Utc::now() > Duration::days(6));
    // A governance request is raised to the vault's compliance.
    let id = backup(&c, &src, &["--retain-for", "8d", "--lock", "governance"]);
    assert_eq!(point(&c, &id)["retention"]["mode"], "compliance");
    // Requests outside the range fail before anything is read.
    for (d, what) in [("1d", "minimum"), ("11y", "maximum")] {
        let o = c.run(&backup_files(&src, &["--retain-for", d]));
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(what), "{}", stderr(&o));
    }

    // During the cooling-off period it can be changed, and removed.
    c.ok(&["vault", "configure", "--min-retention", "14d"]);
    assert_eq!(
        c.json(&["vault", "configure", "--show"])["min_retention"],
        "2w"
    );
    c.ok(&["vault", "configure", "--remove"]);
    assert_eq!(
        c.json(&["vault", "configure", "--show"])["configured"],
        false
    );

    // A configuration whose cooling-off ended (written four days ago) is immutable.
    let v = open(&c);
    let s = lifeboat_vault::retention::LockSettings {
        min_retention: Some(Duration::days(7)),
        max_retention: None,
        mode: lifeboat_vault::LockMode::Compliance,
        changeable_for: Duration::days(3),
    };
    lifeboat_vault::retention::configure(&v, &s, Utc::now() - Duration::days(4)).unwrap();
    assert_eq!(c.json(&["vault", "configure", "--show"])["immutable"], true);
    for args in [
        &["vault", "configure", "--min-retention", "1d"][..],
        &["vault", "configure", "--remove"][..],
    ] {
        let o = c.run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains("immutable"), "{}", stderr(&o));
    }
    // Someone with the password adds a weaker configuration through the
    // library: the immutable one still rules (strictest merge).
    let weak = lifeboat_vault::retention::LockSettings {
        min_retention: Some(Duration::days(1)),
        max_retention: None,
        mode: lifeboat_vault::LockMode::Governance,
        changeable_for: Duration::days(3),
    };
    let e = lifeboat_vault::retention::configure(&v, &weak, Utc::now()).unwrap_err();
    assert!(e.to_string().contains("immutable"), "{e}");
    let shown = c.json(&["vault", "configure", "--show"]);
    assert_eq!(
        (shown["min_retention"].as_str(), shown["mode"].as_str()),
        (Some("1w"), Some("compliance"))
    );
    let id = backup(&c, &src, &[]);
    assert_eq!(point(&c, &id)["retention"]["mode"], "compliance");
    // The configuration objects are part of a sound vault.
    c.ok(&["vault", "check"]);
    // Bad flags are usage errors (exit 2), naming the flag.
    for (args, flag) in [
        (
            &["backup", "files", "/nonexistent", "--lock", "forever"][..],
            "--lock",
        ),
        (
            &["backup", "files", "/nonexistent", "--retain-for", "30"][..],
            "--retain-for",
        ),
        (
            &["vault", "configure", "--min-retention", "7 days"][..],
            "--min-retention",
        ),
        (&["points", "lock", &id[..]][..], "--retain-until"),
    ] {
        let o = c.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(flag), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn points_stamped_in_the_future_do_not_push_real_ones_out() {
    let (_t, c, src) = setup();
    let first = backup(&c, &src, &[]);
    // An attacker (or a client with a wrong clock) writes points stamped
    // one, two and three years ahead.
    let v = open(&c);
    let (id, p) = v.find_point(&first, None).unwrap();
    assert_eq!(id.to_hex(), first);
    let mut forged = Vec::new();
    for years in 1..=3 {
        let mut f = p.clone();
        f.time = Utc::now() + Duration::days(365 * years);
        forged.push(v.write_point(&f).unwrap().to_hex());
    }
    // Real backups go on.
    let real: Vec<String> = (0..2).map(|_| backup(&c, &src, &[])).collect();

    // --keep-within is measured from now by the storage's times: every
    // point was stored within the hour, so all are kept.
    let out = c.json(&["forget", "--keep-within", "1h", "--dry-run"]);
    assert!(decisions(&out).iter().all(|d| d.1), "{out}");
    assert_eq!(out["time_notes"].as_array().unwrap().len(), 3, "{out}");

    // --keep-last 2 keeps the two newest real points: the forged ones are
    // judged by when they were stored, before them.
    let out = c.json(&["forget", "--keep-last", "2"]);
    for r in &real {
        assert!(kept(&out, r), "real point {r} forgotten: {out}");
    }
    for f in &forged {
        assert!(!kept(&out, f), "forged point {f} kept: {out}");
    }
    assert!(!kept(&out, &first));
    // The refusal / note names the forged points.
    let notes = out["time_notes"].to_string();
    assert!(forged.iter().all(|f| notes.contains(f)), "{notes}");
    c.ok(&["vault", "check"]);
}

#[test]
fn stats_report_kinds_sizes_ratios_and_locks() {
    let (_t, c, src) = setup();
    let a = backup(&c, &src, &["--retain-for", "5d", "--lock", "compliance"]);
    let one = c.json(&["vault", "stats"])["dedup_ratio"].as_f64().unwrap();
    let _b = backup(&c, &src, &["--retain-for", "9d"]);
    let _c = backup(&c, &src, &[]);
    let s = c.json(&["vault", "stats"]);
    assert_eq!(s["points"], 3);
    assert_eq!(s["points_by_kind"]["files"], 3);
    let logical = s["logical_bytes"].as_u64().unwrap();
    let unique = s["unique_bytes"].as_u64().unwrap();
    assert!(logical > 0 && unique > 0);
    // Three backups of the same tree: each byte is stored once, so the
    // ratio triples (the sample tree dedups within itself too).
    let dedup = s["dedup_ratio"].as_f64().unwrap();
    assert!(
        dedup / one > 2.9 && dedup / one <= 3.0001,
        "dedup {dedup} after one: {one}"
    );
    assert!(s["compression_ratio"].as_f64().unwrap() > 0.9);
    assert!(s["packs"].as_u64().unwrap() >= 1);
    assert!(s["index_files"].as_u64().unwrap() >= 1 && s["index_bytes"].as_u64().unwrap() > 0);
    assert_eq!(s["locked_points"], 2);
    assert_eq!(s["locked_compliance"], 1);
    let earliest: DateTime<Utc> = s["earliest_unlock"].as_str().unwrap().parse().unwrap();
    assert_eq!(earliest, until(&point(&c, &a)));
    assert!(s["stored_bytes"].as_u64().unwrap() > 0);
    let text = c.ok(&["vault", "stats"]);
    assert!(
        text.contains("dedup ratio") && text.contains("locked points:     2"),
        "{text}"
    );
}

#[test]
fn prune_does_not_repack_a_locked_points_blobs() {
    let t = tempdir().unwrap();
    let c = Cli::new(bin(), &t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), lifeboat_testkit::pseudo_random(1, 3 << 20)).unwrap();
    std::fs::write(
        src.join("small"),
        lifeboat_testkit::pseudo_random(2, 200 << 10),
    )
    .unwrap();
    // One pack holds both files' data; the locked point needs only `small`.
    let first = backup(&c, &src, &[]);
    std::fs::remove_file(src.join("big")).unwrap();
    let locked = backup(&c, &src, &["--retain-for", "3d", "--lock", "compliance"]);
    c.ok(&["points", "forget", &first]);
    let packs = |c: &Cli| -> Vec<String> {
        lifeboat_testkit::files_below(&std::path::Path::new(&c.vault).join("packs"))
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    };
    let before = packs(&c);
    let rep = c.json(&["prune"]);
    assert_eq!(rep["repacked"], 0, "{rep}");
    let after = packs(&c);
    assert!(
        before.iter().filter(|p| after.contains(p)).count() >= 1
            && after.iter().all(|p| before.contains(p)),
        "the locked point's pack was rewritten: {before:?} -> {after:?}"
    );
    c.assert_restores(&locked, &src, &t.path().join("r"));
}

fn chattr(flag: &str, paths: &[std::path::PathBuf]) {
    if paths.is_empty() {
        return;
    }
    let st = std::process::Command::new("chattr")
        .arg(flag)
        .args(paths)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "chattr {flag} (needs root and ext4-like storage)"
    );
}

/// Objects the storage refuses to delete (an S3 version under Object Lock on
/// a store that refuses plain deletes, here immutable files): prune keeps
/// them, says so (exit 3), leaves a sound vault, and deletes them later.
#[test]
fn prune_copes_with_objects_the_storage_will_not_delete_yet() {
    // Under target/ rather than $TMPDIR: chattr needs a disk filesystem
    // (ext4, xfs, btrfs), which a tmpfs /tmp is not.
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let vault = t.path().join("vault");
    let c = Cli::new(bin(), &vault);
    c.ok(&["vault", "init"]);
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), lifeboat_testkit::pseudo_random(1, 1 << 20)).unwrap();
    let old = backup(&c, &src, &[]);
    let frozen: Vec<_> = lifeboat_testkit::files_below(&vault.join("packs"))
        .into_iter()
        .chain(lifeboat_testkit::files_below(&vault.join("index")))
        .collect();
    std::fs::write(src.join("a"), lifeboat_testkit::pseudo_random(2, 1 << 20)).unwrap();
    let new = backup(&c, &src, &[]);
    c.ok(&["points", "forget", &old]);
    chattr("+i", &frozen);
    let o = c.run(&["prune", "--json"]);
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let refused = rep["not_deleted"].as_array().map_or(0, |a| a.len());
    let code = o.status.code();
    let e = stderr(&o);
    let check = c.run(&["vault", "check"]);
    let restored = t.path().join("r");
    let restore = c.run(&restore_files(&new, &restored, &[]));
    chattr("-i", &frozen);
    assert_eq!(code, Some(3), "{e}");
    assert!(refused >= 2 && e.contains("refused"), "{rep}\n{e}");
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(restore.status.success(), "{}", stderr(&restore));
    // Once the storage allows it, the next prune finishes the job.
    let rep = c.json(&["prune"]);
    assert_eq!(rep["not_deleted"].as_array().unwrap().len(), 0, "{rep}");
    let left: Vec<_> = frozen.iter().filter(|p| p.exists()).collect();
    assert!(left.is_empty(), "still there: {left:?}");
    c.ok(&["vault", "check"]);
    c.assert_restores(&new, &src, &t.path().join("r2"));
}

#[test]
fn latest_is_never_a_point_stamped_in_the_future() {
    let (t, c, src) = setup();
    let first = backup(&c, &src, &[]);
    // A forged point (or a client whose clock is a year ahead) of the same
    // resource, holding the old tree.
    let v = open(&c);
    let (_, p) = v.find_point(&first, None).unwrap();
    let mut f = p.clone();
    f.time = Utc::now() + Duration::days(365);
    let forged = v.write_point(&f).unwrap().to_hex();
    // A real backup after it, of newer data.
    std::fs::write(src.join("written-after.txt"), "new data\n").unwrap();
    let real = backup(&c, &src, &[]);
    // `latest` is the real one: judged by when the storage got it.
    let to = t.path().join("out");
    let o = c.run(&restore_files("latest", &to, &["--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        lifeboat_testkit::restored(&to, &src)
            .join("written-after.txt")
            .is_file(),
        "latest restored the forged point {forged}, not {real}: {out}"
    );
    // Nor in a vault it is copied into (the copy's own storage time is
    // fresh: the copy keeps the time its source stored it at).
    let dst = Cli::new(bin(), &t.path().join("copy-vault"));
    dst.ok(&["vault", "init"]);
    let o = c
        .command(&["copy", "--from", &c.vault, "--to", &dst.vault, "--all"])
        .env("LIFEBOAT_TO_PASSWORD", &dst.password)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let to = t.path().join("out-copy");
    let o = dst.run(&restore_files("latest", &to, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        lifeboat_testkit::restored(&to, &src)
            .join("written-after.txt")
            .is_file(),
        "latest in the copy is the forged point"
    );
}
