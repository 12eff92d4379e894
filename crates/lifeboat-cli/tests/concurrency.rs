//! Several processes on one vault: concurrent backups, and prune while a
//! backup runs. Real processes; the running backup is frozen with SIGSTOP at
//! a moment when it has loaded the index and written packs.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_testkit::args::backup_files;
use lifeboat_testkit::{Cli, files_below, make_sample_tree, pseudo_random, tempdir};

fn cli(vault: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_lifeboat"), vault)
}

#[test]
fn two_backups_at_once_both_succeed_and_restore() {
    let t = tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    make_sample_tree(&a, 21);
    make_sample_tree(&b, 22);
    std::fs::write(a.join("big.bin"), pseudo_random(1, 40 << 20)).unwrap();
    std::fs::write(b.join("big.bin"), pseudo_random(2, 40 << 20)).unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let spawn = |p: &Path| {
        c.command(&backup_files(p, &["--json"]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&a), spawn(&b));
    let (oa, ob) = (
        ca.wait_with_output().unwrap(),
        cb.wait_with_output().unwrap(),
    );
    assert!(
        oa.status.success(),
        "{}",
        String::from_utf8_lossy(&oa.stderr)
    );
    assert!(
        ob.status.success(),
        "{}",
        String::from_utf8_lossy(&ob.stderr)
    );
    assert_eq!(c.json(&["points", "list"]).as_array().unwrap().len(), 2);
    c.ok(&["vault", "check", "--read-data"]);
    for (src, out) in [(&a, &oa), (&b, &ob)] {
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        c.assert_restores(
            j["id"].as_str().unwrap(),
            src,
            &t.path()
                .join(format!("r-{}", src.file_name().unwrap().to_str().unwrap())),
        );
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), sig)
        .unwrap();
}

#[test]
fn prune_while_a_backup_runs_never_removes_what_it_references() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 23);
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    // Point 1 holds the sample tree.
    let first = c.json(&backup_files(&src, &[]));
    let packs_before = files_below(&vault.join("packs")).len();

    // Backup 2 of the same tree plus much new data: it deduplicates against
    // point 1's packs, then spends its time on the new data.
    for i in 0..6u64 {
        std::fs::write(
            src.join(format!("new-{i}.bin")),
            pseudo_random(100 + i, 16 << 20),
        )
        .unwrap();
    }
    let mut child = c
        .command(&["backup", "files", src.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has written a pack of its own (so it has loaded the index), then freeze it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_below(&vault.join("packs")).len() <= packs_before {
        assert!(Instant::now() < deadline, "backup 2 never wrote a pack");
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup 2 ended too early to test anything"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(child.id(), rustix::process::Signal::STOP);

    // Point 1 is forgotten: nothing the vault lists needs its packs any more.
    c.ok(&["points", "forget", first["id"].as_str().unwrap()]);
    assert_eq!(c.json(&["points", "list"]).as_array().unwrap().len(), 0);
    let rep = c.json(&["prune"]);
    assert!(rep["marked"].as_u64().unwrap() >= 1, "{rep}");
    assert_eq!(rep["deleted_packs"], 0, "a backup is running: {rep}");

    // Backup 2 goes on and finishes; its point references point 1's old blobs.
    signal(child.id(), rustix::process::Signal::CONT);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    c.ok(&["vault", "check", "--read-data"]);
    c.assert_restores(j["id"].as_str().unwrap(), &src, &t.path().join("r"));

    // The next prune unmarks what point 2 needs; the vault stays whole.
    let rep = c.json(&["prune"]);
    assert!(rep["unmarked"].as_u64().unwrap() >= 1, "{rep}");
    c.ok(&["vault", "check", "--read-data"]);
    c.assert_restores("latest", &src, &t.path().join("r2"));
}
