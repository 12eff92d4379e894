//! Prune beside backups and readers, made deterministic with the engine's
//! pause hook (`LIFEBOAT_TEST_PAUSE`, see `lifeboat_vault::testhook`), pid
//! namespaces (`unshare`) and SIGSTOP. Each test reproduces a race that lost
//! data before it was fixed (issue 10, B.8–B.12).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_testkit::args::backup_files;
use lifeboat_testkit::{Cli, files_below, make_sample_tree, pseudo_random, tempdir};

fn cli(vault: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_lifeboat"), vault)
}

/// A process paused at a named point of the engine.
struct Paused {
    child: Child,
    dir: PathBuf,
    point: String,
}

impl Paused {
    /// Starts `cmd` so that it pauses at `point`, and waits until it has.
    fn start(mut cmd: Command, dir: &Path, point: &str) -> Paused {
        std::fs::create_dir_all(dir).unwrap();
        cmd.env("LIFEBOAT_TEST_PAUSE", format!("{point}:{}", dir.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let reached = dir.join(format!("{point}.reached"));
        let deadline = Instant::now() + Duration::from_secs(120);
        while !reached.exists() {
            if let Some(st) = child.try_wait().unwrap() {
                let o = child.wait_with_output().unwrap();
                panic!(
                    "ended ({st}) before reaching {point}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            assert!(Instant::now() < deadline, "never reached {point}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Paused {
            child,
            dir: dir.to_path_buf(),
            point: point.to_string(),
        }
    }

    /// Lets it go on and waits for its end.
    fn finish(self) -> std::process::Output {
        std::fs::write(self.dir.join(format!("{}.go", self.point)), b"").unwrap();
        self.child.wait_with_output().unwrap()
    }
}

fn assert_ok(o: &std::process::Output, what: &str) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

/// B.8: a backup that loads the index while prune replaces it (after prune
/// stored its new index, before the old index files are gone) must not
/// deduplicate against the packs prune is about to delete.
#[test]
fn a_backup_loading_the_index_while_prune_replaces_it_loses_nothing() {
    for point in ["prune-index-written", "prune-old-index-removed"] {
        let t = tempdir().unwrap();
        let src = t.path().join("src");
        make_sample_tree(&src, 31);
        let vault = t.path().join("vault");
        let c = cli(&vault);
        c.ok(&["vault", "init"]);
        let first = c.json(&backup_files(&src, &[]));
        c.ok(&["points", "forget", first["id"].as_str().unwrap()]);

        // Prune marks and deletes point 1's packs at once (no backup runs);
        // it is held after storing its new index.
        let prune = Paused::start(c.command(&["prune", "--json"]), &t.path().join("p"), point);
        // A backup of the same data now: it must store the data again.
        let second = c.json(&backup_files(&src, &[]));
        let rep = assert_ok(&prune.finish(), "prune");
        assert!(
            rep["deleted_packs"].as_u64().unwrap() >= 1,
            "{point}: {rep}"
        );

        c.ok(&["vault", "check", "--read-data"]);
        c.assert_restores(second["id"].as_str().unwrap(), &src, &t.path().join("r"));
    }
}

/// Writes a fresh backup lock of this (live) test process, as an older
/// version would (no identity fields).
fn write_lock(vault: &Path, fill: &str) -> PathBuf {
    let now = chrono::Utc::now().to_rfc3339();
    let lock = vault.join("locks").join(fill.repeat(32));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        &lock,
        serde_json::json!({"kind": "backup", "exclusive": false, "host": host.trim(),
            "pid": std::process::id(), "created": now, "refreshed": now})
        .to_string(),
    )
    .unwrap();
    lock
}

/// B.10: a lock written after `remove_stale` read the locks is not deleted.
#[test]
fn removing_stale_locks_keeps_a_lock_written_meanwhile() {
    let t = tempdir().unwrap();
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let prune = Paused::start(
        c.command(&["prune", "--json"]),
        &t.path().join("p"),
        "stale-judged",
    );
    let lock = write_lock(&vault, "ab");
    let rep = assert_ok(&prune.finish(), "prune");
    assert_eq!(rep["stale_locks_removed"], 0, "{rep}");
    assert!(lock.exists(), "a fresh lock of a live process was deleted");
}

/// B.12: a restore that loaded the index before a prune repacked the packs
/// it reads still restores everything.
#[test]
fn a_restore_paused_while_prune_repacks_still_restores_everything() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("keep.bin"), pseudo_random(7, 3 << 20)).unwrap();
    std::fs::write(src.join("drop.bin"), pseudo_random(8, 9 << 20)).unwrap();
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let first = c.json(&backup_files(&src, &[]));
    std::fs::remove_file(src.join("drop.bin")).unwrap();
    let second = c.json(&backup_files(&src, &[]));
    c.ok(&["points", "forget", first["id"].as_str().unwrap()]);

    let to = t.path().join("r");
    let restore = Paused::start(
        c.command(&[
            "restore",
            "files",
            second["id"].as_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ]),
        &t.path().join("p"),
        "index-loaded",
    );
    let rep = c.json(&["prune"]);
    assert!(rep["repacked"].as_u64().unwrap() >= 1, "{rep}");
    assert_ok(&restore.finish(), "restore");
    assert!(
        lifeboat_testkit::compare_trees(&src, &lifeboat_testkit::restored(&to, &src)).is_empty()
    );

    // Once the restore is over, the next prune deletes the repacked pack.
    let rep = c.json(&["prune"]);
    assert!(rep["deleted_packs"].as_u64().unwrap() >= 1, "{rep}");
    c.ok(&["vault", "check", "--read-data"]);
    let _ = files_below(&vault.join("packs"));
}

/// The lock files of a vault, parsed.
fn locks(vault: &Path) -> Vec<serde_json::Value> {
    files_below(&vault.join("locks"))
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// B.9: a backup in another pid namespace (a container) with this host's
/// name, whose pid does not exist here, keeps its lock: prune defers.
#[test]
fn a_backup_in_another_pid_namespace_is_not_judged_dead() {
    if !Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: unshare --pid is not permitted here");
        return;
    }
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 41);
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let first = c.json(&backup_files(&src, &[]));

    // A pid free on the host, so that the old rule ("same host, no such
    // pid") applies; inside the namespace pids are used up to it.
    let free = (300..30_000)
        .find(|p| (*p..p + 50).all(|q| !Path::new(&format!("/proc/{q}")).exists()))
        .unwrap();
    let script = format!(
        "while [ \"$(sh -c 'echo $$')\" -lt {free} ]; do :; done; \"$BIN\" backup files {} --json; exit $?",
        src.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "bash", "-c", &script])
        .env("BIN", env!("CARGO_BIN_EXE_lifeboat"))
        .env("LIFEBOAT_VAULT", &vault)
        .env("LIFEBOAT_PASSWORD", &c.password)
        .env("LIFEBOAT_INSECURE_FAST_KDF", "1");
    // The contained backup is held after loading the index, which lists
    // point 1's packs as live: it will reference them.
    let backup = Paused::start(cmd, &t.path().join("p"), "index-loaded");
    let pid = locks(&vault)[0]["pid"].as_u64().unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the contained backup's pid {pid} exists on the host; the test needs a free one"
    );

    c.ok(&["points", "forget", first["id"].as_str().unwrap()]);
    let rep = c.json(&["prune"]);
    assert_eq!(rep["stale_locks_removed"], 0, "{rep}");
    assert_eq!(rep["deleted_packs"], 0, "a backup is running: {rep}");

    let out = backup.finish();
    let j = assert_ok(&out, "contained backup");
    c.ok(&["vault", "check", "--read-data"]);
    c.assert_restores(j["id"].as_str().unwrap(), &src, &t.path().join("r"));
}

/// B.9: a backup whose lock was removed (by a prune that judged it stale, or
/// `vault unlock`) fails loudly instead of writing its point.
#[test]
fn a_backup_whose_lock_was_removed_writes_no_point() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 42);
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let backup = Paused::start(
        c.command(&backup_files(&src, &["--json"])),
        &t.path().join("p"),
        "before-point",
    );
    // SIGSTOP as well: a frozen backup whose lock someone removes.
    let pid = rustix::process::Pid::from_raw(backup.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    c.ok(&["vault", "unlock", "--all"]);
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let out = backup.finish();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("was removed"), "{err}");
    assert_eq!(c.json(&["points", "list"]).as_array().unwrap().len(), 0);
}

/// B.8: index files that vanish while a backup reads them (a prune replaced
/// them) make it list again, not silently use a partial index.
#[test]
fn a_backup_whose_index_files_vanish_while_it_loads_lists_again() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 43);
    std::fs::write(src.join("big.bin"), pseudo_random(9, 8 << 20)).unwrap();
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    c.json(&backup_files(&src, &[]));
    // The next backup (--force: it reads every file) is held between listing
    // index/ and reading the files; a prune replaces every index file.
    let backup = Paused::start(
        c.command(&backup_files(&src, &["--force", "--json"])),
        &t.path().join("p"),
        "index-listed",
    );
    c.json(&["prune"]);
    // Another writer's lock, so that the backup does not pick up the packs
    // it would miss by indexing them from their headers (resume.rs).
    write_lock(&vault, "cd");
    let j = assert_ok(&backup.finish(), "backup");
    let new = j["bytes_new"].as_u64().unwrap();
    assert!(
        new < 1 << 20,
        "the backup stored {new} bytes again: it used a partial index"
    );
    c.ok(&["vault", "check", "--read-data"]);
}
