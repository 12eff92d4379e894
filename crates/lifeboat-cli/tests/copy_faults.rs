//! `lifeboat copy` on bad ground, through the real binary: an S3 target that
//! throttles (503 SlowDown from a proxy in front of moto), an outage in the
//! middle of a copy, a full target disk (a small tmpfs), a missing bucket.
//! Each fails with a message that says what, where and what to do, leaves
//! nothing half-visible in the target, and the next copy finishes the job.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lifeboat_testkit::http_fault::{Faults, HttpFaultProxy};
use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_testkit::{Cli, make_sample_tree, pseudo_random, tempdir};
use serde_json::Value;
use support::copy::{TO_PASSWORD, check_clean, copy_cmd, stderr, vault};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

fn copied(o: &Output) -> Value {
    assert!(o.status.success(), "copy: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn point_count(c: &Cli) -> usize {
    c.json(&["points", "list"]).as_array().unwrap().len()
}

/// A primary directory vault holding one files point of `mib` MiB of
/// incompressible data (several packs) plus a sample tree.
fn primary(dir: &Path, mib: usize) -> (Cli, std::path::PathBuf) {
    let data = dir.join("data");
    make_sample_tree(&data, 5);
    for i in 0..mib.div_ceil(4) {
        std::fs::write(
            data.join(format!("big-{i}")),
            pseudo_random(70 + i as u64, 4 << 20),
        )
        .unwrap();
    }
    let src = vault(
        &dir.join("primary").display().to_string(),
        "primary password",
    );
    src.ok(&["backup", "files", data.to_str().unwrap()]);
    (src, data)
}

#[test]
fn a_throttling_store_is_retried_and_endless_throttling_fails_naming_the_endpoint() {
    let t = tempdir().unwrap();
    let (src, data) = primary(t.path(), 8);
    let s3 = S3Server::start();
    s3.create_bucket("dr-vault");
    let proxy = HttpFaultProxy::start(s3.port);
    let dst = vault(&proxy.url("dr-vault", "lifeboat"), TO_PASSWORD);

    // The first two PUTs are throttled: retried, and the copy succeeds.
    proxy.set_faults(Faults {
        method: Some("PUT".into()),
        throttle_first: 2,
        ..Faults::default()
    });
    let r = copied(&copy_cmd(&src, &dst, &["--json", "--all"]).output().unwrap());
    assert_eq!(r["points_copied"], 1, "{r:#}");
    assert_eq!(proxy.throttled(), 2, "the proxy throttled nothing");
    check_clean(&dst);

    // Endless throttling: a clear failure after the retries, in bounded time.
    lifeboat_testkit::mutate_tree(&data, 0.3, 3);
    src.ok(&["backup", "files", data.to_str().unwrap()]);
    proxy.set_faults(Faults {
        method: Some("PUT".into()),
        throttle_first: usize::MAX,
        ..Faults::default()
    });
    let started = Instant::now();
    let o = copy_cmd(&src, &dst, &["--json", "--all"]).output().unwrap();
    let err = stderr(&o);
    eprintln!("endless throttling ({:?}): {err}", started.elapsed());
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("throttled") && err.contains(&proxy.endpoint()),
        "the error names neither the throttling nor the endpoint: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    proxy.set_faults(Faults::default());
    check_clean(&dst);
    check_clean(&src);
    assert_eq!(point_count(&dst), 1);
    let r = copied(&copy_cmd(&src, &dst, &["--json", "--all"]).output().unwrap());
    assert_eq!(r["points_copied"], 1, "{r:#}");
    check_clean(&dst);
}

#[test]
fn an_outage_mid_copy_leaves_nothing_half_visible_and_the_next_copy_resumes() {
    let t = tempdir().unwrap();
    let (src, data) = primary(t.path(), 40);
    let s3 = S3Server::start();
    s3.create_bucket("scratch");
    s3.create_bucket("dr-vault");
    let proxy = HttpFaultProxy::start(s3.port);
    // How many packs a whole copy stores (into a scratch vault).
    let scratch = vault(&proxy.url("scratch", "v"), TO_PASSWORD);
    proxy.set_faults(Faults {
        count_only: Some("PUT /scratch/v/packs/".into()),
        ..Faults::default()
    });
    let full = copied(
        &copy_cmd(&src, &scratch, &["--json", "--all"])
            .output()
            .unwrap(),
    );
    let packs = proxy.forwarded();
    eprintln!("a whole copy: {packs} packs, {full}");
    assert!(packs >= 3, "{packs} packs");

    // The site goes away once two packs have arrived.
    let dst = vault(&proxy.url("dr-vault", "lifeboat"), TO_PASSWORD);
    proxy.set_faults(Faults {
        refuse_after: Some(2),
        count_only: Some("PUT /dr-vault/lifeboat/packs/".into()),
        ..Faults::default()
    });
    let o = copy_cmd(&src, &dst, &["--json", "--all"]).output().unwrap();
    let err = stderr(&o);
    eprintln!("outage: {err}");
    assert!(!proxy.listening(), "the outage never came");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&proxy.endpoint()) && err.contains("cannot be reached"),
        "{err}"
    );
    // The site is back: no point in the target, and it checks clean.
    proxy.set_faults(Faults::default());
    assert_eq!(point_count(&dst), 0, "a point is visible without its data");
    check_clean(&dst);
    let r = copied(&copy_cmd(&src, &dst, &["--json", "--all"]).output().unwrap());
    assert_eq!(r["points_copied"], 1, "{r:#}");
    eprintln!("resumed copy: {r}");
    // The two packs that arrived are kept and not sent again.
    let (sent, all) = (
        r["bytes_sent"].as_u64().unwrap(),
        full["bytes_sent"].as_u64().unwrap(),
    );
    assert!(
        sent < all - 16_000_000,
        "the resumed copy sent {sent} of {all} bytes again: {r:#}"
    );
    check_clean(&dst);
    dst.ok(&["vault", "check", "--read-data"]);
    dst.assert_restores("latest", &data, &t.path().join("restored"));
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {} (needs root)", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_target_fails_clearly_and_the_copy_resumes_once_there_is_room() {
    let t = tempdir().unwrap();
    let (src, data) = primary(t.path(), 40);
    let small = Tmpfs::mount(&t.path().join("small"), "20m");
    let target = small.0.join("vault");
    let dst = vault(&target.display().to_string(), TO_PASSWORD);
    let o = copy_cmd(&src, &dst, &["--json", "--all"]).output().unwrap();
    let err = stderr(&o);
    eprintln!("full target: {err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no space left")
            && err.contains(&format!("target vault file://{}", target.display())),
        "{err}"
    );
    assert_eq!(point_count(&dst), 0);
    check_clean(&dst);
    check_clean(&src);
    small.resize("200m");
    let r = copied(&copy_cmd(&src, &dst, &["--json", "--all"]).output().unwrap());
    assert_eq!(r["points_copied"], 1, "{r:#}");
    check_clean(&dst);
    dst.assert_restores("latest", &data, &t.path().join("restored"));
}

#[test]
fn a_missing_bucket_is_named() {
    let t = tempdir().unwrap();
    let (src, _) = primary(t.path(), 1);
    let s3 = S3Server::start();
    let missing = Cli::at(BIN, &s3.url("no-such-bucket", "lifeboat"));
    let o = copy_cmd(&src, &missing, &["--json", "--all"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bucket \"no-such-bucket\" does not exist") && err.contains(&s3.endpoint()),
        "{err}"
    );
    let o = missing
        .command(&["vault", "init"])
        .envs(CREDENTIALS)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("does not exist") && err.contains("create the bucket"),
        "{err}"
    );
}
