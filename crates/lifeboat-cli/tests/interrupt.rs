//! Ctrl-C and kills during a backup (issue 10, D.26): a signalled backup
//! stores and indexes what it has, releases its lock and exits 130; the next
//! backup reuses what an interrupted or killed one stored, and cleans up the
//! killed run's staging files.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_testkit::args::backup_files;
use lifeboat_testkit::{Cli, files_below, pseudo_random, tempdir};

fn cli(vault: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_lifeboat"), vault)
}

/// Total bytes of the packs in the vault.
fn pack_bytes(vault: &Path) -> u64 {
    files_below(&vault.join("packs"))
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum()
}

/// Starts a backup of `src`, waits until it stored `packs` packs, sends `sig`.
fn backup_until(
    c: &Cli,
    src: &Path,
    vault: &Path,
    packs: usize,
    sig: rustix::process::Signal,
) -> std::process::Output {
    let child = c
        .command(&["backup", "files", src.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while files_below(&vault.join("packs")).len() < packs {
        assert!(
            Instant::now() < deadline,
            "the backup never stored {packs} packs"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
    child.wait_with_output().unwrap()
}

fn source(t: &Path) -> (std::path::PathBuf, u64) {
    let src = t.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut total = 0;
    for i in 0..5u64 {
        let data = pseudo_random(500 + i, 14 << 20);
        total += data.len() as u64;
        std::fs::write(src.join(format!("f{i}.bin")), data).unwrap();
    }
    (src, total)
}

#[test]
fn ctrl_c_saves_what_was_stored_and_the_next_backup_reuses_it() {
    let t = tempdir().unwrap();
    let (src, total) = source(t.path());
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let out = backup_until(&c, &src, &vault, 2, rustix::process::Signal::INT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        files_below(&vault.join("locks")).is_empty(),
        "the lock is released"
    );
    // Everything it stored is indexed: nothing is garbage.
    let dry = c.json(&["prune", "--dry-run"]);
    assert_eq!(dry["deleted_garbage"], 0, "{dry}");
    let saved = pack_bytes(&vault);
    assert!(saved >= 20 << 20, "saved {saved}");
    let j = c.json(&backup_files(&src, &[]));
    let new = j["bytes_new"].as_u64().unwrap();
    assert!(
        new + saved / 2 <= total,
        "the next backup stored {new} of {total} again (saved {saved})"
    );
    c.ok(&["vault", "check", "--read-data"]);
    c.assert_restores(j["id"].as_str().unwrap(), &src, &t.path().join("r"));
}

#[test]
fn the_next_backup_reuses_what_a_killed_one_stored_and_cleans_its_staging() {
    let t = tempdir().unwrap();
    let (src, total) = source(t.path());
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let out = backup_until(&c, &src, &vault, 2, rustix::process::Signal::KILL);
    assert_eq!(out.status.code(), None, "killed");
    let saved = pack_bytes(&vault);
    // A staging file of a killed write, two minutes old.
    let leftover = vault.join("tmp").join("leftover.tmp");
    std::fs::write(&leftover, b"half an object").unwrap();
    let two_min_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&leftover)
        .unwrap()
        .set_modified(two_min_ago)
        .unwrap();
    // The killed run's lock is stale (its process is gone) and ignored.
    let j = c.json(&backup_files(&src, &[]));
    let new = j["bytes_new"].as_u64().unwrap();
    assert!(
        new + saved / 2 <= total,
        "the next backup stored {new} of {total} again (saved {saved})"
    );
    assert!(
        !leftover.exists(),
        "the killed run's staging file is cleaned"
    );
    c.ok(&["vault", "check", "--read-data"]);
    c.assert_restores(j["id"].as_str().unwrap(), &src, &t.path().join("r"));
}
