//! Bad input loses nothing: wrong passwords, damaged and missing objects,
//! processes killed mid-backup, a full disk. Real files, real processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_testkit::args::{backup_files, restore_files};
use lifeboat_testkit::{
    Cli, compare_trees, files_below, flip_byte, make_sample_tree, pseudo_random, restored, tempdir,
};

fn cli(vault: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_lifeboat"), vault)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Name → content hash of every file of the vault.
fn fingerprint(vault: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_below(vault)
        .into_iter()
        .map(|f| {
            let d = std::fs::read(&f).unwrap();
            (f, d)
        })
        .collect()
}

fn biggest_pack(vault: &Path) -> PathBuf {
    files_below(&vault.join("packs"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

fn setup(seed: u64) -> (lifeboat_testkit::TempDir, PathBuf, PathBuf, Cli) {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, seed);
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    c.ok(&backup_files(&src, &[]));
    (t, src, vault, c)
}

#[test]
fn wrong_password_is_a_clear_error_and_changes_nothing() {
    let (t, src, vault, c) = setup(11);
    let before = fingerprint(&vault);
    let mut wrong = c.clone();
    wrong.password = "not the password".into();
    for args in [
        vec!["backup", "files", src.to_str().unwrap()],
        vec!["points", "list"],
        vec!["prune"],
        vec!["forget", "--keep-last", "1"],
        vec!["vault", "check"],
    ] {
        let o = wrong.run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&o).contains("wrong password"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert_eq!(before, fingerprint(&vault), "the vault is untouched");
    let to = t.path().join("r");
    c.ok(&restore_files("latest", &to, &[]));
}

#[test]
fn a_flipped_byte_in_a_pack_is_named_and_everything_else_restores() {
    let (t, src, vault, c) = setup(12);
    c.ok(&["vault", "check"]);
    let pack = biggest_pack(&vault);
    let len = std::fs::metadata(&pack).unwrap().len() as i64;
    flip_byte(&pack, len / 2);
    let name = in_vault(&vault, &pack);

    let o = c.run(&["vault", "check", "--read-data"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(&name),
        "check names the pack {name}: {}",
        stdout(&o)
    );

    let to = t.path().join("r");
    let o = c.run(&restore_files("latest", &to, &[]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("damaged, not restored"), "{err}");
    let diffs = compare_trees(&src, &restored(&to, &src));
    assert!(
        !diffs.is_empty(),
        "a damaged blob must not be restored silently"
    );
    for d in &diffs {
        let path = d.split(':').next().unwrap();
        assert!(
            d.ends_with("missing in restore"),
            "only damaged files may differ, and they are absent: {d}"
        );
        assert!(
            err.contains(path.trim_start_matches('/')),
            "{path} is named in: {err}"
        );
    }
}

#[test]
fn a_missing_pack_is_named_by_check_and_restore() {
    let (t, src, vault, c) = setup(13);
    let pack = biggest_pack(&vault);
    std::fs::remove_file(&pack).unwrap();
    let name = in_vault(&vault, &pack);
    let o = c.run(&["vault", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(&name), "{}", stdout(&o));
    let to = t.path().join("r");
    let o = c.run(&restore_files("latest", &to, &[]));
    assert_eq!(o.status.code(), Some(3));
    let diffs = compare_trees(&src, &restored(&to, &src));
    assert!(!diffs.is_empty());
    assert!(
        diffs.iter().all(|d| d.ends_with("missing in restore")),
        "{diffs:?}"
    );
    // Every file that is not restored is named on stderr; every other file
    // is intact (compare_trees above found nothing but missing files).
    let err = stderr(&o);
    for d in &diffs {
        let path = d.trim_end_matches(" missing in restore");
        let name = Path::new(path).file_name().unwrap().to_string_lossy();
        assert!(
            err.contains(&*name),
            "{path} is missing but not named: {err}"
        );
    }
}

#[test]
fn a_truncated_pack_is_named_by_check() {
    let (_t, _src, vault, c) = setup(14);
    let pack = biggest_pack(&vault);
    let len = std::fs::metadata(&pack).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&pack).unwrap();
    f.set_len(len - 100).unwrap();
    let o = c.run(&["vault", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("truncated"), "{}", stdout(&o));
}

/// `p`'s path inside the vault at `vault`, as `check` names it.
fn in_vault(vault: &Path, p: &Path) -> String {
    p.strip_prefix(vault).unwrap().to_str().unwrap().to_string()
}

#[test]
fn a_damaged_index_is_named_and_restore_still_gets_everything() {
    let (t, src, vault, c) = setup(15);
    let idx = files_below(&vault.join("index")).pop().unwrap();
    flip_byte(&idx, 30);
    let name = in_vault(&vault, &idx);
    let o = c.run(&["vault", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(&name), "{}", stdout(&o));
    let to = t.path().join("r");
    c.ok(&restore_files("latest", &to, &["--verify"]));
    let diffs = compare_trees(&src, &restored(&to, &src));
    assert!(
        diffs.is_empty(),
        "pack headers stand in for the index: {diffs:?}"
    );
    let o = c.run(&["prune"]);
    assert!(
        !o.status.success(),
        "prune refuses to work on a damaged index"
    );
    assert!(stderr(&o).contains("damaged"));
}

#[test]
fn a_damaged_point_is_named_and_other_points_restore() {
    let (t, src, vault, c) = setup(16);
    let first = files_below(&vault.join("points")).pop().unwrap();
    std::fs::write(src.join("new.txt"), b"second point").unwrap();
    c.ok(&backup_files(&src, &[]));
    flip_byte(&first, 50);
    let name = in_vault(&vault, &first);
    let o = c.run(&["vault", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(&name), "{}", stdout(&o));
    let o = c.run(&["points", "list", "--json"]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains(&name),
        "the listing warns about it: {}",
        stderr(&o)
    );
    c.assert_restores("latest", &src, &t.path().join("r"));
}

/// The seed of a randomized test: `LIFEBOAT_TEST_SEED` replays a failure,
/// else the clock. Printed so a failure can be replayed.
fn test_seed(test: &str) -> u64 {
    let seed = std::env::var("LIFEBOAT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test}: seed {seed} (replay with LIFEBOAT_TEST_SEED={seed})");
    seed
}

/// A tiny deterministic generator for kill times.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

/// Runs `lifeboat ARGS` and sends it SIGKILL after a random delay below
/// `max_ms`; then `vault check` must pass. Returns whether it was killed
/// while still running.
fn run_and_kill(c: &Cli, args: &[&str], rng: &mut Lcg, max_ms: u64) -> bool {
    let mut child = c
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(rng.next(max_ms)));
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    let o = c.run(&["vault", "check"]);
    assert!(
        o.status.success(),
        "after killing {args:?}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    killed
}

#[test]
fn backups_killed_at_random_moments_never_damage_the_vault() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src.join("base"), 17);
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    // How long one backup with 12 MB of new data takes.
    std::fs::write(src.join("new-calib.bin"), pseudo_random(1000, 12 << 20)).unwrap();
    let start = Instant::now();
    c.ok(&backup_files(&src, &[]));
    let full_ms = start.elapsed().as_millis() as u64;
    eprintln!("one backup takes {full_ms} ms");
    let mut rng = Lcg(test_seed("backups_killed_at_random_moments"));
    // Runs until 10 were really killed mid-way (a run that finished before
    // its kill time counts for nothing), so the count does not depend on
    // how fast this machine is.
    let mut killed = 0;
    let mut runs = 0u64;
    while killed < 10 {
        assert!(
            runs < 60,
            "only {killed} of {runs} runs were killed mid-way"
        );
        let i = runs;
        runs += 1;
        std::fs::write(src.join(format!("new-{i}.bin")), pseudo_random(i, 12 << 20)).unwrap();
        if run_and_kill(
            &c,
            &["backup", "files", src.to_str().unwrap(), "--quiet"],
            &mut rng,
            full_ms,
        ) {
            killed += 1;
        }
    }
    // The next backup completes; every point restores intact.
    c.ok(&backup_files(&src, &[]));
    c.ok(&["vault", "check", "--read-data"]);
    let points = c.json(&["points", "list"]);
    for p in points.as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        let to = t.path().join(format!("r-{}", &id[..8]));
        c.ok(&restore_files(id, &to, &["--verify"]));
        let r = restored(&to, &src);
        assert!(compare_trees(&src.join("base"), &r.join("base")).is_empty());
        for f in files_below(&r)
            .iter()
            .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with("new-"))
        {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let n: u64 = match name.trim_start_matches("new-").trim_end_matches(".bin") {
                "calib" => 1000,
                x => x.parse().unwrap(),
            };
            assert!(
                std::fs::read(f).unwrap() == pseudo_random(n, 12 << 20),
                "{name} intact in {id}"
            );
        }
        let _ = std::fs::remove_dir_all(&to);
    }
    // Prune clears what the killed runs left and the vault stays sound.
    c.ok(&["prune"]);
    c.ok(&["vault", "check", "--read-data"]);
    let o = c.run(&["vault", "check", "--json"]);
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        rep["warnings"].as_array().unwrap().len(),
        0,
        "no leftovers after prune: {rep}"
    );
}

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_vault_stays_consistent() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts a small tmpfs and must run as root (CI does)"
    );
    let t = tempdir().unwrap();
    let fs = t.path().join("small");
    std::fs::create_dir_all(&fs).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&fs)
        .status()
        .unwrap();
    assert!(st.success());
    let _m = Mount(fs.clone());
    let vault = fs.join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("small.txt"), b"fits").unwrap();
    c.ok(&backup_files(&src, &[]));
    std::fs::write(src.join("big.bin"), pseudo_random(5, 64 << 20)).unwrap();
    let o = c.run(&backup_files(&src, &[]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("disk is full") || err.contains("No space left"),
        "{err}"
    );
    assert_eq!(
        c.json(&["points", "list"]).as_array().unwrap().len(),
        1,
        "no half point"
    );
    c.ok(&["vault", "check"]);
    let to = t.path().join("r");
    c.ok(&restore_files("latest", &to, &["--verify"]));
    assert_eq!(
        std::fs::read(restored(&to, &src).join("small.txt")).unwrap(),
        b"fits"
    );
    // Space comes back: prune removes what the failed run left, a smaller backup works.
    c.ok(&["prune"]);
    std::fs::remove_file(src.join("big.bin")).unwrap();
    std::fs::write(src.join("medium.bin"), pseudo_random(6, 4 << 20)).unwrap();
    c.ok(&backup_files(&src, &[]));
    c.ok(&["vault", "check", "--read-data"]);
}

#[test]
fn prunes_killed_at_random_moments_never_damage_the_vault() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let mut rng = Lcg(test_seed("prunes_killed_at_random_moments"));
    let mut killed = 0;
    for round in 0..6u64 {
        // New points, some data dropped, then forget old points: work for prune.
        for i in 0..4u64 {
            let n = round * 4 + i;
            std::fs::write(src.join(format!("f{n}")), pseudo_random(n, 3 << 20)).unwrap();
            if n >= 3 {
                let _ = std::fs::remove_file(src.join(format!("f{}", n - 3)));
            }
            c.ok(&backup_files(&src, &["--quiet"]));
        }
        c.ok(&["forget", "--keep-last", "2", "--quiet"]);
        let start = Instant::now();
        let probe = c.run(&["prune", "--dry-run"]);
        assert!(probe.status.success());
        let t_ms = start.elapsed().as_millis() as u64 + 1;
        // Until two prunes of this round were killed mid-way (bounded).
        let mut round_kills = 0;
        for _ in 0..16 {
            if run_and_kill(&c, &["prune", "--quiet"], &mut rng, t_ms) {
                killed += 1;
                round_kills += 1;
                if round_kills == 2 {
                    break;
                }
            }
        }
    }
    assert!(
        killed >= 6,
        "prunes must really be killed mid-way ({killed} in 6 rounds)"
    );
    c.ok(&["vault", "unlock"]);
    c.ok(&["prune"]);
    c.ok(&["vault", "check", "--read-data"]);
    for p in c.json(&["points", "list"]).as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        let to = t.path().join(format!("r-{}", &id[..8]));
        c.ok(&restore_files(id, &to, &["--verify"]));
    }
    let to = t.path().join("latest");
    c.ok(&restore_files("latest", &to, &[]));
    assert!(compare_trees(&src, &restored(&to, &src)).is_empty());
}
