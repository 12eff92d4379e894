//! Instance backups under bad conditions: a volume that changes while it is
//! read (held there with `LIFEBOAT_TEST_PAUSE`), a device that cannot be
//! opened, hooks that fail; and consistency marking with hooks.

mod instance_fixture;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use instance_fixture::{MIB, cli, s, stderr};
use lifeboat_testkit::{Cli, pseudo_random, tempdir};

/// A 64 MiB sparse image with data in a few places.
fn make_image(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let f = std::fs::File::create(p).unwrap();
    f.set_len(64 * MIB).unwrap();
    for (i, off) in [0, 5 * MIB, 40 * MIB + 4096].into_iter().enumerate() {
        f.write_all_at(&pseudo_random(i as u64, MIB as usize), off)
            .unwrap();
    }
}

fn spec(dir: &Path, volumes: &[&Path], hooks: &str) -> PathBuf {
    let v: Vec<String> = volumes.iter().map(|p| format!("{:?}", s(p))).collect();
    let p = dir.join("instance.toml");
    std::fs::write(
        &p,
        format!("name = \"host\"\nvolumes = [{}]\n{hooks}", v.join(", ")),
    )
    .unwrap();
    p
}

/// A host with one image whose spec's hooks log `quiesce` (before, then the
/// commands `more_before`, each a TOML string after a comma) and `resume`
/// (after) into `dir/hooks.log`, and an initialised vault: the spec, the
/// log and the vault's runner.
fn hooked_host(dir: &Path, more_before: &str) -> (PathBuf, PathBuf, Cli) {
    let img = dir.join("img/disk.img");
    make_image(&img);
    let log = dir.join("hooks.log");
    let hooks = format!(
        "[hooks]\nbefore = [\"echo quiesce >> {l}\"{more_before}]\nafter = [\"echo resume >> {l}\"]\n",
        l = log.display()
    );
    let spec = spec(dir, &[&img], &hooks);
    let c = cli(&dir.join("vault"));
    c.ok(&["vault", "init"]);
    (spec, log, c)
}

fn points(c: &Cli) -> usize {
    c.json(&["points", "list"]).as_array().unwrap().len()
}

#[test]
fn a_volume_that_changes_while_read_without_hooks_is_marked_crash_consistent_with_a_warning() {
    let t = tempdir().unwrap();
    let img = t.path().join("img/disk.img");
    make_image(&img);
    let spec = spec(t.path(), &[&img], "");
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let pause = t.path().join("pause");
    std::fs::create_dir(&pause).unwrap();
    let child = c
        .command(&["backup", "instance", "--spec", s(&spec), "--json"])
        .env(
            "LIFEBOAT_TEST_PAUSE",
            format!("volume-read:{}", pause.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = pause.join("volume-read.reached");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !reached.exists() {
        assert!(
            std::time::Instant::now() < until,
            "backup never read the volume"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The "application" writes while the backup is between reading and
    // checking the volume.
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(b"written during the backup", 20 * MIB)
        .unwrap();
    drop(f);
    std::fs::write(pause.join("volume-read.go"), b"").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["consistency"], "crash");
    let w = j["warnings"].to_string();
    assert!(
        w.contains("changed while it was read") && w.contains("crash-consistent"),
        "{w}"
    );
    assert!(
        stderr(&o).contains("changed while it was read"),
        "{}",
        stderr(&o)
    );
    let list = c.ok(&["points", "list"]);
    assert!(list.contains("(crash-consistent)"), "{list}");
}

#[test]
fn hooks_make_a_point_application_consistent_and_run_in_order() {
    let t = tempdir().unwrap();
    let (spec, log, c) = hooked_host(t.path(), "");
    let j = c.json(&["backup", "instance", "--spec", s(&spec)]);
    assert_eq!(j["consistency"], "application", "{j}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "quiesce\nresume\n");
    let list = c.ok(&["points", "list"]);
    assert!(list.contains("(application-consistent)"), "{list}");
    let shown = c.json(&["points", "show", "latest"]);
    assert_eq!(shown["consistency"], "application");
}

#[test]
fn a_failing_before_hook_fails_the_backup_and_the_app_is_resumed() {
    let t = tempdir().unwrap();
    let (spec, log, c) = hooked_host(t.path(), ", \"echo cannot flush the cache >&2; exit 3\"");
    let o = c.run(&["backup", "instance", "--spec", s(&spec)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("before hook")
            && e.contains("exit status: 3")
            && e.contains("cannot flush the cache"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "quiesce\nresume\n");
    assert_eq!(points(&c), 0);
}

#[test]
fn a_volume_that_cannot_be_opened_fails_the_backup_naming_it() {
    let t = tempdir().unwrap();
    let img = t.path().join("img/disk.img");
    make_image(&img);
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    // A block device node without a driver behind it: open fails (ENXIO).
    let dev = t.path().join("nodisk");
    let made = std::process::Command::new("mknod")
        .args([s(&dev), "b", "240", "77"])
        .status()
        .unwrap();
    let missing = t.path().join("no/such.img");
    let mut cases = vec![missing];
    if made.success() {
        cases.push(dev);
    }
    for bad in cases {
        let spec = spec(t.path(), &[&img, &bad], "");
        let o = c.run(&["backup", "instance", "--spec", s(&spec)]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!("volume {}: cannot open it", bad.display())),
            "{e}"
        );
        assert_eq!(points(&c), 0);
    }
}

#[test]
fn an_instance_point_takes_a_compliance_lock_that_forget_cannot_break() {
    let t = tempdir().unwrap();
    let img = t.path().join("img/disk.img");
    make_image(&img);
    let spec = spec(t.path(), &[&img], "");
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let b = c.json(&[
        "backup",
        "instance",
        "--spec",
        s(&spec),
        "--retain-for",
        "2d",
        "--lock",
        "compliance",
    ]);
    let id = b["id"].as_str().expect("point id").to_string();
    let shown = c.json(&["points", "show", &id]);
    assert_eq!(shown["retention"]["mode"], "compliance", "{shown}");
    let o = c.run(&["points", "forget", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("compliance"), "{}", stderr(&o));
    assert_eq!(points(&c), 1, "the locked instance point is still there");
}
