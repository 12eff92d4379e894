//! Issue 21, B9: retention, vault-lock and lock-staleness decisions are made
//! on the storage's clock, never the client's. The real binary runs under
//! `faketime` (Debian `faketime`, an `LD_PRELOAD` that shifts every clock
//! call of the process) against directory vaults; the kernel's file times,
//! which the engine probes, do not move with it.

use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, Duration, Utc};
use lifeboat_testkit::args::backup_files;
use lifeboat_testkit::{Cli, make_sample_tree, tempdir};
use lifeboat_vault::{Location, Vault};
use serde_json::Value;

fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `c`'s command for `args`, run with its clocks shifted by `offset`
/// (faketime's syntax: `+2d`, `-4d`, `+1h`).
fn faked(c: &Cli, offset: &str, args: &[&str]) -> Output {
    let inner = c.command(args);
    let mut cmd = Command::new("faketime");
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

fn setup() -> (lifeboat_testkit::TempDir, Cli, std::path::PathBuf) {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 11);
    let c = Cli::new(bin(), &t.path().join("vault"));
    c.ok(&["vault", "init"]);
    // The faked clock really is faked for this binary.
    let o = faked(&c, "+2d", &["points", "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    (t, c, src)
}

fn until(p: &Value) -> DateTime<Utc> {
    p["retention"]["retain_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn backup_json(o: &Output) -> String {
    assert!(o.status.success(), "{}", stderr(o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn a_compliance_lock_holds_against_a_client_clock_set_forward() {
    let (_t, c, src) = setup();
    let s = src.to_str().unwrap();
    let locked = c.json(&[
        "backup",
        "files",
        s,
        "--retain-for",
        "1d",
        "--lock",
        "compliance",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(&["backup", "files", s]);

    let o = faked(&c, "+2d", &["points", "forget", &locked]);
    assert_eq!(o.status.code(), Some(1), "forgotten: {}", stderr(&o));
    assert!(stderr(&o).contains("locked"), "{}", stderr(&o));
    // A policy that does not keep it cannot delete it either.
    let o = faked(&c, "+2d", &["forget", "--keep-last", "1", "--json"]);
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(3),
        "{}",
        stderr(&o)
    );
    c.ok(&["points", "show", &locked]);
    // Nor can prune, by the same clock, treat its blobs as free to repack.
    let o = faked(&c, "+2d", &["prune"]);
    assert!(o.status.success(), "{}", stderr(&o));
    c.ok(&["points", "show", &locked]);
}

#[test]
fn retention_is_counted_from_the_stores_time_not_a_clock_set_back() {
    let (_t, c, src) = setup();
    let s = src.to_str().unwrap();
    // Written by a client whose clock is two days behind: still a day's lock.
    let o = faked(
        &c,
        "-2d",
        &[
            "backup",
            "files",
            s,
            "--retain-for",
            "1d",
            "--lock",
            "compliance",
            "--json",
        ],
    );
    let id = backup_json(&o);
    let p = c.json(&["points", "show", &id]);
    assert!(until(&p) > Utc::now() + Duration::hours(23), "{p:#}");
    let o = c.run(&["points", "forget", &id]);
    assert_eq!(o.status.code(), Some(1), "forgotten: {}", stderr(&o));

    // A lock extended "for 3 days" from a clock four days behind reaches
    // three days from the store's now, not a day ago.
    let o = faked(
        &c,
        "-4d",
        &["points", "lock", &id, "--retain-for", "3d", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let new: DateTime<Utc> = v["retain_until"].as_str().unwrap().parse().unwrap();
    assert!(new > Utc::now() + Duration::days(2), "{v:#}");
}

#[test]
fn an_immutable_vault_lock_stays_immutable_under_a_clock_set_back() {
    let (_t, c, src) = setup();
    // A configuration written five days ago with a three-day cooling-off:
    // immutable for two days now.
    let v = Vault::open(&Location::parse(&c.vault).unwrap(), c.password.as_bytes()).unwrap();
    let s = lifeboat_vault::retention::LockSettings {
        min_retention: Some(Duration::days(7)),
        max_retention: None,
        mode: lifeboat_vault::LockMode::Compliance,
        changeable_for: Duration::days(3),
    };
    lifeboat_vault::retention::configure(&v, &s, Utc::now() - Duration::days(5)).unwrap();
    drop(v);
    for args in [
        &["vault", "configure", "--remove"][..],
        &[
            "vault",
            "configure",
            "--min-retention",
            "1d",
            "--lock",
            "governance",
        ][..],
    ] {
        let o = faked(&c, "-4d", args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("immutable"), "{}", stderr(&o));
    }
    let shown = c.json(&["vault", "configure", "--show"]);
    assert_eq!(shown["immutable"], true, "{shown:#}");
    assert_eq!(shown["min_retention"], "1w", "{shown:#}");
    // Points still get its minimum, whatever the writer's clock says.
    let o = faked(
        &c,
        "-4d",
        &["backup", "files", src.to_str().unwrap(), "--json"],
    );
    let id = backup_json(&o);
    let p = c.json(&["points", "show", &id]);
    assert_eq!(p["retention"]["mode"], "compliance");
    assert!(until(&p) > Utc::now() + Duration::days(6), "{p:#}");
}

fn lock_files(vault: &Path) -> usize {
    std::fs::read_dir(vault.join("locks")).map_or(0, |d| d.count())
}

#[test]
fn a_running_backups_lock_is_not_stale_to_a_client_clock_set_forward() {
    let (t, c, src) = setup();
    let vault = Path::new(&c.vault).to_path_buf();
    let hold = t.path().join("hold");
    std::fs::create_dir(&hold).unwrap();
    let mut backup = c.command(&backup_files(&src, &[]));
    backup.env(
        "LIFEBOAT_TEST_PAUSE",
        format!("before-point:{}", hold.display()),
    );
    let mut child = backup.spawn().unwrap();
    let reached = hold.join("before-point.reached");
    for _ in 0..6000 {
        if reached.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(reached.exists(), "the backup never reached its point");
    assert_eq!(lock_files(&vault), 1);
    // An hour later by this client's clock the lock would be 30 minutes
    // past stale; by the store's it was written a moment ago.
    let o = faked(&c, "+1h", &["vault", "unlock"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lock_files(&vault), 1, "a live backup's lock was removed");
    std::fs::write(hold.join("before-point.go"), b"").unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn prune_leaves_another_writers_fresh_staging_file_under_a_clock_set_forward() {
    let (_t, c, src) = setup();
    c.ok(&backup_files(&src, &[]));
    let vault = Path::new(&c.vault).to_path_buf();
    // Another process's atomic write in progress: a file it is filling in tmp/.
    let staging = vault.join("tmp").join("in-progress");
    std::fs::write(&staging, b"half a pack").unwrap();
    // Two hours ahead, the file looks an hour past prune's grace; it is not.
    let o = faked(&c, "+2h", &["prune"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(staging.exists(), "prune removed a write in progress");
    // Nor does the probe of the store's clock leave anything behind.
    let left: Vec<_> = std::fs::read_dir(vault.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("in-progress")]);
}
