//! The fault and concurrency suites against an S3 vault (moto): backups
//! killed at random moments, two backups at once, and prune while a frozen
//! backup holds an old view of the index. Sized modestly (moto is slow);
//! the directory-vault versions in faults.rs and concurrency.rs go further.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lifeboat_testkit::args::{backup_files, restore_files};
use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_testkit::{Cli, compare_trees, make_sample_tree, pseudo_random, restored, tempdir};

fn s3_cli(s3: &S3Server, bucket: &str) -> Cli {
    s3.create_bucket(bucket);
    let mut c = Cli::at(env!("CARGO_BIN_EXE_lifeboat"), &s3.url(bucket, "vault"));
    c.env = CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c
}

/// Objects under `vault/packs/` in the bucket, seen from outside.
fn pack_count(s3: &S3Server, bucket: &str) -> usize {
    let r = s3
        .request(
            "GET",
            &format!("/{bucket}?list-type=2&prefix=vault/packs/&max-keys=1000"),
        )
        .unwrap();
    r.matches("<Key>").count()
}

fn seed() -> u64 {
    let seed = std::env::var("LIFEBOAT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed {seed} (replay with LIFEBOAT_TEST_SEED={seed})");
    seed
}

fn wait_or_kill(mut child: Child, after: Duration) -> bool {
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    killed
}

#[test]
fn s3_backups_killed_at_random_moments_never_damage_the_vault() {
    let s3 = S3Server::start();
    let c = s3_cli(&s3, "faults");
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src.join("base"), 41);
    c.ok(&["vault", "init"]);
    std::fs::write(src.join("calib.bin"), pseudo_random(900, 6 << 20)).unwrap();
    let start = Instant::now();
    c.ok(&backup_files(&src, &["--quiet"]));
    let full_ms = start.elapsed().as_millis() as u64;
    let mut state = seed();
    let mut killed = 0;
    let mut runs = 0u64;
    while killed < 4 {
        assert!(
            runs < 20,
            "only {killed} of {runs} runs were killed mid-way"
        );
        std::fs::write(
            src.join(format!("new-{runs}.bin")),
            pseudo_random(runs, 6 << 20),
        )
        .unwrap();
        runs += 1;
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = (state >> 33) % full_ms.max(1);
        let child = c
            .command(&["backup", "files", src.to_str().unwrap(), "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if wait_or_kill(child, Duration::from_millis(delay)) {
            killed += 1;
        }
        c.ok(&["vault", "check"]);
    }
    c.ok(&backup_files(&src, &["--quiet"]));
    c.ok(&["vault", "check", "--read-data"]);
    let to = t.path().join("r");
    c.ok(&restore_files("latest", &to, &[]));
    assert!(compare_trees(&src, &restored(&to, &src)).is_empty());
    c.ok(&["prune"]);
    c.ok(&["vault", "check", "--read-data"]);
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), sig)
        .unwrap();
}

#[test]
fn s3_prune_while_a_frozen_backup_runs_keeps_what_it_references() {
    let s3 = S3Server::start();
    let c = s3_cli(&s3, "concurrency");
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 43);
    c.ok(&["vault", "init"]);
    let first = c.json(&backup_files(&src, &[]));
    let packs_before = pack_count(&s3, "concurrency");
    for i in 0..3u64 {
        std::fs::write(
            src.join(format!("new-{i}.bin")),
            pseudo_random(300 + i, 16 << 20),
        )
        .unwrap();
    }
    let mut child = c
        .command(&["backup", "files", src.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Frozen once it has written a pack of its own (it has loaded the index).
    let deadline = Instant::now() + Duration::from_secs(120);
    while pack_count(&s3, "concurrency") <= packs_before {
        assert!(Instant::now() < deadline, "the backup never wrote a pack");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended too early to test anything"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(child.id(), rustix::process::Signal::STOP);
    c.ok(&["points", "forget", first["id"].as_str().unwrap()]);
    let rep = c.json(&["prune"]);
    assert_eq!(rep["deleted_packs"], 0, "a backup is running: {rep}");
    signal(child.id(), rustix::process::Signal::CONT);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.ok(&["vault", "check", "--read-data"]);
    c.json(&["prune"]);
    c.ok(&["vault", "check", "--read-data"]);
    c.assert_restores("latest", &src, &t.path().join("r"));
}

#[test]
fn s3_two_backups_at_once_both_succeed() {
    let s3 = S3Server::start();
    let c = s3_cli(&s3, "two");
    let t = tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    make_sample_tree(&a, 44);
    make_sample_tree(&b, 45);
    c.ok(&["vault", "init"]);
    let spawn = |p: &Path| {
        c.command(&backup_files(p, &["--json"]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&a), spawn(&b));
    for o in [
        ca.wait_with_output().unwrap(),
        cb.wait_with_output().unwrap(),
    ] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    c.ok(&["vault", "check", "--read-data"]);
    let points = c.json(&["points", "list"]);
    assert_eq!(points.as_array().unwrap().len(), 2);
    for (src, name) in [(&a, "ra"), (&b, "rb")] {
        let p = points
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["paths"][0] == src.to_str().unwrap())
            .unwrap();
        c.assert_restores(p["id"].as_str().unwrap(), src, &t.path().join(name));
    }
}
