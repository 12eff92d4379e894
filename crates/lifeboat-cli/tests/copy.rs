//! Cross-site copy (`lifeboat copy`) between real vaults with different
//! passwords and master keys: incremental figures, lineage, no-op repeats,
//! restores from the target after the source is deleted, a read-only
//! source (pull), an S3 target (moto), bucket points, and SIGKILL at random
//! moments with resume.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_testkit::{Cli, compare_trees, make_sample_tree, mutate_tree, pseudo_random, tempdir};
use serde_json::Value;
use support::copy::{TO_PASSWORD, check_clean, copy_cmd, stderr, two_vaults, vault};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");
fn copy(src: &Cli, dst: &Cli, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let o = copy_cmd(src, dst, &a).output().unwrap();
    assert!(o.status.success(), "copy {args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn pack_bytes(vault: &Path) -> u64 {
    lifeboat_testkit::files_below(&vault.join("packs"))
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[test]
fn files_points_copy_incrementally_and_restore_from_the_target_alone() {
    let t = tempdir().unwrap();
    let data = t.path().join("data");
    make_sample_tree(&data, 7);
    let (src, dst) = two_vaults(t.path());
    let first = src.json(&["backup", "files", data.to_str().unwrap()]);

    let c1 = copy(&src, &dst, &["--all"]);
    assert_eq!(c1["points_copied"], 1, "{c1:#}");
    assert!(c1["blobs_sent"].as_u64().unwrap() > 10, "{c1:#}");
    let total_read = c1["bytes_read"].as_u64().unwrap();
    assert!(total_read > 1_000_000, "{c1:#}");

    // Twice: a no-op that reads and sends nothing.
    let c2 = copy(&src, &dst, &["--all"]);
    assert_eq!(
        (
            &c2["points_copied"],
            &c2["points_present"],
            &c2["blobs_sent"],
            &c2["bytes_read"]
        ),
        (&0.into(), &1.into(), &0.into(), &0.into()),
        "{c2:#}"
    );

    // 5 % changed: the copy reads and sends about the changed bytes only.
    let changed = mutate_tree(&data, 0.05, 11);
    assert!(changed > 0);
    let second = src.json(&["backup", "files", data.to_str().unwrap()]);
    let new_bytes = second["bytes_new"].as_u64().unwrap();
    let c3 = copy(&src, &dst, &["latest"]);
    assert_eq!(c3["points_copied"], 1, "{c3:#}");
    assert!(c3["blobs_skipped"].as_u64().unwrap() > 0, "{c3:#}");
    let read = c3["bytes_read"].as_u64().unwrap();
    eprintln!(
        "incremental copy: read {read} bytes, sent {}, the backup stored {new_bytes} new bytes; first copy read {total_read}",
        c3["bytes_sent"]
    );
    assert!(
        read < total_read / 3 && read <= new_bytes * 2 + 64 * 1024,
        "the incremental copy re-read unchanged data: {c3:#}"
    );

    // Lineage: source vault and point, shown by `points list`.
    let src_id = std::fs::read_to_string(t.path().join("primary/config")).unwrap();
    let src_id: Value = serde_json::from_str(&src_id).unwrap();
    let list = dst.json(&["points", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["copied_from"]["vault"], src_id["id"]);
    assert_eq!(list[0]["copied_from"]["point"], first["id"]);
    assert_eq!(list[1]["copied_from"]["point"], second["id"]);
    assert_eq!(
        list[1]["parent"], list[0]["id"],
        "the parent maps to its copy"
    );
    assert!(list[1]["retention"].is_null());
    let text = dst.ok(&["points", "list"]);
    assert!(
        text.contains(&format!("copy of {}", &second["id"].as_str().unwrap()[..8])),
        "{text}"
    );
    check_clean(&dst);
    dst.ok(&["vault", "check", "--read-data"]);

    // The primary is gone: both points restore from the secondary alone.
    let old = t.path().join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::remove_dir_all(t.path().join("primary")).unwrap();
    dst.assert_restores("latest", &data, &t.path().join("r2"));
    let first_copy = list[0]["id"].as_str().unwrap();
    dst.ok(&[
        "restore",
        "files",
        first_copy,
        "--to",
        t.path().join("r1").to_str().unwrap(),
    ]);
}

#[test]
fn a_read_only_primary_is_pulled_from_into_an_s3_secondary() {
    let t = tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = t.path().join("data");
    make_sample_tree(&data, 3);
    let primary = t.path().join("primary");
    let src = vault(&primary.display().to_string(), "primary password");
    src.ok(&["backup", "files", data.to_str().unwrap()]);
    // The primary as the secondary site sees it: nothing it may write.
    let chmod = |mode: &str| {
        assert!(
            Command::new("chmod")
                .args(["-R", mode])
                .arg(&primary)
                .status()
                .unwrap()
                .success()
        )
    };
    chmod("a+rX");
    chmod("a-w");
    let s3 = S3Server::start();
    s3.create_bucket("dr-vault");
    let dst = vault(&s3.url("dr-vault", "lifeboat/dr"), TO_PASSWORD);
    let inner = copy_cmd(&src, &dst, &["--all", "--json"]);
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let before = lifeboat_testkit::files_below(&primary);
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "pull as nobody: {}", stderr(&o));
    assert!(stderr(&o).contains("reading without one"), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["points_copied"], 1, "{r:#}");
    assert_eq!(
        lifeboat_testkit::files_below(&primary),
        before,
        "the source was written to"
    );
    chmod("u+w");
    std::fs::remove_dir_all(&primary).unwrap();
    check_clean(&dst);
    dst.assert_restores("latest", &data, &t.path().join("restored"));
}

#[test]
fn bucket_points_copy_and_restore_identically() {
    let t = tempdir().unwrap();
    let bucket = t.path().join("frontend");
    for i in 0..30u64 {
        let p = bucket.join(format!("static/{}/f-{i}.js", i % 3));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, pseudo_random(i, 200 + 9000 * i as usize)).unwrap();
    }
    std::fs::write(bucket.join("index.html"), b"<h1>shop</h1>").unwrap();
    rustix::fs::setxattr(
        bucket.join("index.html"),
        "user.lifeboat.content-type",
        b"text/html",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let (src, dst) = two_vaults(t.path());
    let addr = format!("file://{}", bucket.display());
    src.ok(&["backup", "bucket", "--bucket", &addr]);
    let r = copy(&src, &dst, &["--kind", "bucket", "--all"]);
    assert_eq!(r["points_copied"], 1, "{r:#}");
    std::fs::remove_dir_all(t.path().join("primary")).unwrap();
    let to = t.path().join("restored");
    dst.ok(&[
        "restore",
        "bucket",
        "latest",
        "--to-bucket",
        &format!("file://{}", to.display()),
    ]);
    let o = Command::new("diff")
        .arg("-r")
        .arg(&bucket)
        .arg(&to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let mut buf = [0u8; 64];
    let n = rustix::fs::getxattr(
        to.join("index.html"),
        "user.lifeboat.content-type",
        &mut buf,
    )
    .unwrap();
    assert_eq!(&buf[..n], b"text/html");
}

fn seed() -> u64 {
    let s = std::env::var("LIFEBOAT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("LIFEBOAT_TEST_SEED={s}");
    s
}

/// xorshift64*: a small seeded generator for kill moments.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn a_copy_killed_at_random_moments_resumes_without_resending() {
    let mut rng = seed() | 1;
    let t = tempdir().unwrap();
    let data = t.path().join("data");
    // Several points, ~48 MiB of incompressible data.
    let src = vault(
        &t.path().join("primary").display().to_string(),
        "primary password",
    );
    for round in 0..3u64 {
        for i in 0..4u64 {
            let p: PathBuf = data.join(format!("r{round}/f{i}"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, pseudo_random(round * 10 + i, 4 << 20)).unwrap();
        }
        src.ok(&["backup", "files", data.to_str().unwrap()]);
    }
    // A reference copy: how long one takes, how many bytes its packs hold.
    let reference = vault(
        &t.path().join("reference").display().to_string(),
        TO_PASSWORD,
    );
    let started = Instant::now();
    let full = copy(&src, &reference, &["--all"]);
    let took = started.elapsed();
    let full_packs = pack_bytes(&t.path().join("reference"));
    eprintln!("reference copy: {took:?}, {full_packs} pack bytes: {full:#}");

    let dst = vault(
        &t.path().join("secondary").display().to_string(),
        TO_PASSWORD,
    );
    let mut kills = 0;
    let mut sent_total = 0u64;
    let mut attempts = 0;
    while kills < 10 {
        attempts += 1;
        assert!(
            attempts < 40,
            "the copy finished before it could be killed 10 times"
        );
        let at = Duration::from_micros(next(&mut rng) % (took.as_micros() as u64).max(1));
        let mut child = copy_cmd(&src, &dst, &["--all", "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if finished {
            // It completed before the moment: start again from scratch.
            std::fs::remove_dir_all(t.path().join("secondary")).unwrap();
            let _ = vault(
                &t.path().join("secondary").display().to_string(),
                TO_PASSWORD,
            );
            continue;
        }
        kills += 1;
        eprintln!("kill {kills} at {at:?}");
        check_clean(&dst);
    }
    let last = copy(&src, &dst, &["--all"]);
    sent_total += last["bytes_sent"].as_u64().unwrap();
    eprintln!("after {kills} kills the resume sent {sent_total} bytes: {last:#}");
    check_clean(&dst);
    dst.ok(&["vault", "check", "--read-data"]);
    assert_eq!(dst.json(&["points", "list"]).as_array().unwrap().len(), 3);
    // What arrived was not sent again: the packs hold about one copy.
    let packs = pack_bytes(&t.path().join("secondary"));
    eprintln!("packs: {packs} bytes vs {full_packs} for one uninterrupted copy");
    assert!(
        packs < full_packs + full_packs / 5,
        "the killed copies stored {packs} bytes of packs, one copy stores {full_packs}"
    );
    std::fs::remove_dir_all(t.path().join("primary")).unwrap();
    let out = t.path().join("out");
    dst.ok(&["restore", "files", "latest", "--to", out.to_str().unwrap()]);
    let d = compare_trees(&data, &lifeboat_testkit::restored(&out, &data));
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn chunker_params_copied_from_the_primary_make_copies_and_own_backups_deduplicate() {
    let t = tempdir().unwrap();
    let data = t.path().join("data");
    make_sample_tree(&data, 5);
    // Files larger than a chunk: there the cut points depend on the seed.
    for i in 0..3u64 {
        std::fs::write(
            data.join(format!("big-{i}")),
            pseudo_random(100 + i, 8 << 20),
        )
        .unwrap();
    }
    let size: u64 = lifeboat_testkit::files_below(&data)
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    let primary = t.path().join("primary");
    let src = vault(&primary.display().to_string(), "primary password");
    src.ok(&["backup", "files", data.to_str().unwrap()]);

    // Paired: the secondary cuts data as the primary does.
    let mut paired = Cli::new(BIN, &t.path().join("paired"));
    paired.password = TO_PASSWORD.into();
    let o = paired
        .command(&[
            "vault",
            "init",
            "--copy-chunker-params-from",
            primary.to_str().unwrap(),
        ])
        .env("LIFEBOAT_FROM_PASSWORD", &src.password)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("paired/config")).unwrap()).unwrap();
    assert!(cfg["chunker_seed"].is_string(), "{cfg:#}");
    // A wrong source password is named as such.
    let o = paired
        .command(&[
            "vault",
            "init",
            "--copy-chunker-params-from",
            primary.to_str().unwrap(),
        ])
        .env("LIFEBOAT_VAULT", t.path().join("other").to_str().unwrap())
        .env("LIFEBOAT_FROM_PASSWORD", "not it")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wrong password"), "{}", stderr(&o));

    // Unpaired, and with other chunker sizes (plaintext config, set before any data).
    let plain = vault(&t.path().join("plain").display().to_string(), TO_PASSWORD);
    let other = vault(
        &t.path().join("other-sizes").display().to_string(),
        TO_PASSWORD,
    );
    let cfg_path = t.path().join("other-sizes/config");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["chunker"] = serde_json::json!({"min": 65536, "avg": 131072, "max": 524288});
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();

    for dst in [&paired, &plain, &other] {
        let r = copy(&src, dst, &["--all"]);
        assert_eq!(r["points_copied"], 1, "{r:#}");
    }
    // The secondary's own backup of the same data, after the copy. The copied
    // point is its parent (same resource): touched files are read again, and
    // only then do chunk boundaries matter.
    let before = t.path().join("as-backed-up");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&data)
            .arg(&before)
            .status()
            .unwrap()
            .success()
    );
    for f in lifeboat_testkit::files_below(&data) {
        if f.is_file() {
            let st = Command::new("touch").arg(&f).status().unwrap();
            assert!(st.success());
        }
    }
    let own = |c: &Cli| {
        let r = c.json(&["backup", "files", data.to_str().unwrap()]);
        r["bytes_new"].as_u64().unwrap()
    };
    let paired_new = own(&paired);
    let plain_new = own(&plain);
    eprintln!(
        "own backup after a copy of {size} bytes: paired stored {paired_new} new bytes, unpaired {plain_new}"
    );
    assert!(paired_new < size / 50, "paired: {paired_new} of {size} new");
    assert!(plain_new > size / 2, "unpaired: {plain_new} of {size} new");
    own(&other);
    // Copies into a vault with other chunk sizes restore identically.
    std::fs::remove_dir_all(&primary).unwrap();
    for dst in [&paired, &other] {
        let (_, first) = {
            let l = dst.json(&["points", "list"]);
            (l.clone(), l[0]["id"].as_str().unwrap().to_string())
        };
        let to = t.path().join(format!("r-{}", &first[..8]));
        dst.ok(&["restore", "files", &first, "--to", to.to_str().unwrap()]);
        let d = compare_trees(&before, &lifeboat_testkit::restored(&to, &data));
        assert!(d.is_empty(), "{d:?}");
        check_clean(dst);
    }
}

#[test]
fn bad_input_fails_clearly_and_leaves_the_target_clean() {
    let t = tempdir().unwrap();
    let data = t.path().join("data");
    make_sample_tree(&data, 9);
    let (src, dst) = two_vaults(t.path());
    src.ok(&["backup", "files", data.to_str().unwrap()]);

    // Wrong target password: named, exit 1, nothing written.
    let mut wrong = dst.clone();
    wrong.password = "not the secondary's".into();
    let o = copy_cmd(&src, &wrong, &["--all"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot open the to vault") && stderr(&o).contains("wrong password"),
        "{}",
        stderr(&o)
    );
    // Usage: nothing selected.
    let o = copy_cmd(&src, &dst, &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // An endpoint nobody answers on.
    let port = lifeboat_testkit::mariadb::free_port();
    let gone = Cli::at(
        BIN,
        &format!(
            "s3://dr-vault/x?endpoint=http://127.0.0.1:{port}&connect_timeout=1s&total_timeout=3s"
        ),
    );
    let started = Instant::now();
    let o = copy_cmd(&src, &gone, &["--all"])
        .envs(CREDENTIALS)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("127.0.0.1"), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(60));

    // A pack of the source vanishes after the copy loaded the source's index.
    let pause = t.path().join("pause");
    std::fs::create_dir(&pause).unwrap();
    let child = copy_cmd(&src, &dst, &["--all", "--json"])
        .env(
            "LIFEBOAT_TEST_PAUSE",
            format!("index-loaded:{}", pause.display()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pause.join("index-loaded.reached").exists() {
        assert!(Instant::now() < deadline, "the copy never loaded the index");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The largest pack holds data blobs.
    let victim = lifeboat_testkit::files_below(&t.path().join("primary/packs"))
        .into_iter()
        .filter(|p| p.is_file())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(pause.join("index-loaded.go"), b"").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    let pack = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        err.contains("could not read")
            && err.contains("nothing of this point was written")
            && err.contains(&pack)
            && err.contains("lifeboat vault check")
            && err.contains("lifeboat vault heal --from"),
        "the error names neither the pack nor what to do: {err}"
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["points_copied"], 0, "{r:#}");
    assert_eq!(dst.json(&["points", "list"]).as_array().unwrap().len(), 0);
    check_clean(&dst);
}

/// Flips a byte in the largest pack and deletes the second largest.
fn damage(vault: &Path) {
    let mut packs: Vec<PathBuf> = lifeboat_testkit::files_below(&vault.join("packs"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    packs.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    assert!(packs.len() >= 2, "{packs:?}");
    let len = std::fs::metadata(&packs[0]).unwrap().len() as i64;
    lifeboat_testkit::flip_byte(&packs[0], len / 2);
    std::fs::remove_file(&packs[1]).unwrap();
}

fn heal(damaged: &Cli, from: &Cli) -> Value {
    let o = damaged
        .command(&["vault", "heal", "--from", &from.vault, "--json"])
        .env("LIFEBOAT_FROM_PASSWORD", &from.password)
        .output()
        .unwrap();
    assert!(o.status.success(), "heal: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn heal_replaces_flipped_and_deleted_packs_from_the_other_copy() {
    let t = tempdir().unwrap();
    let data = t.path().join("data");
    make_sample_tree(&data, 4);
    for i in 0..3u64 {
        std::fs::write(
            data.join(format!("big-{i}")),
            pseudo_random(200 + i, 6 << 20),
        )
        .unwrap();
    }
    let primary = t.path().join("primary");
    let secondary = t.path().join("secondary");
    let src = vault(&primary.display().to_string(), "primary password");
    let dst = vault(&secondary.display().to_string(), TO_PASSWORD);
    src.ok(&["backup", "files", data.to_str().unwrap()]);
    copy(&src, &dst, &["--all"]);

    // The secondary is damaged; the primary (with whose ledger it was copied) heals it.
    damage(&secondary);
    assert!(!dst.run(&["vault", "check", "--read-data"]).status.success());
    let r = heal(&dst, &src);
    eprintln!("heal of the secondary: {r:#}");
    assert!(r["blobs_lost"].as_u64().unwrap() > 0, "{r:#}");
    assert_eq!(r["blobs_healed"], r["blobs_lost"], "{r:#}");
    assert!(r["blobs_unhealed"].as_array().unwrap().is_empty());
    dst.ok(&["vault", "check", "--read-data"]);

    // The other way: the primary is damaged and healed from its copy (no
    // ledger there: ids are learned by reading).
    damage(&primary);
    assert!(!src.run(&["vault", "check", "--read-data"]).status.success());
    let r = heal(&src, &dst);
    eprintln!("heal of the primary: {r:#}");
    assert_eq!(r["blobs_healed"], r["blobs_lost"], "{r:#}");
    src.ok(&["vault", "check", "--read-data"]);
    src.assert_restores("latest", &data, &t.path().join("from-primary"));
    std::fs::remove_dir_all(&primary).unwrap();
    dst.assert_restores("latest", &data, &t.path().join("from-secondary"));
}

#[test]
fn copies_take_their_own_compliance_lock_that_the_secondary_cannot_forget() {
    let t = tempdir().unwrap();
    let data = t.path().join("data");
    make_sample_tree(&data, 3);
    let (src, dst) = two_vaults(t.path());
    src.ok(&["backup", "files", data.to_str().unwrap()]);
    let r = copy(
        &src,
        &dst,
        &["--all", "--retain-for", "3d", "--lock", "compliance"],
    );
    assert_eq!(r["points_copied"], 1, "{r}");
    let list = dst.json(&["points", "list"]);
    let id = list[0]["id"].as_str().unwrap().to_string();
    let shown = dst.json(&["points", "show", &id]);
    assert_eq!(shown["retention"]["mode"], "compliance", "{shown}");
    assert!(!shown["copied_from"].is_null(), "{shown}");
    // Someone holding the secondary's password cannot remove the copy early.
    let o = dst.run(&["points", "forget", &id, "--bypass-governance"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = dst.run(&["forget", "--keep-last", "0"]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(dst.json(&["points", "list"]).as_array().unwrap().len(), 1);
    // A bad flag is a usage error before anything is copied.
    let o = copy_cmd(&src, &dst, &["--all", "--lock", "forever"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
