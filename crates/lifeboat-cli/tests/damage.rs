//! Damage is contained, named and repairable: a missing or damaged index
//! file (rebuilt from pack headers, `vault repair-index`), damaged key files
//! (told from a wrong password), hostile plaintext (config ranges, key-file
//! KDF costs), files rewritten while they are read. Real vaults, the real
//! binary.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lifeboat_testkit::args::{backup_files, restore_files};
use lifeboat_testkit::{
    Cli, compare_trees, files_below, flip_byte, make_sample_tree, restored, tempdir,
};

fn cli(vault: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_lifeboat"), vault)
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
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

fn restores_all(c: &Cli, src: &Path, to: &Path) {
    let o = c.run(&restore_files("latest", to, &[]));
    assert!(o.status.success(), "restore failed: {}", text(&o));
    let d = compare_trees(src, &restored(to, src));
    assert!(d.is_empty(), "restore differs: {d:?}");
}

#[test]
fn a_missing_index_file_loses_nothing_and_repair_index_rebuilds_it() {
    let (t, src, vault, c) = setup(31);
    // A second point, so that two index files exist; lose both.
    std::fs::write(src.join("new-file.txt"), b"added later").unwrap();
    c.ok(&backup_files(&src, &[]));
    let idx = files_below(&vault.join("index"));
    assert!(!idx.is_empty());
    for f in &idx {
        std::fs::remove_file(f).unwrap();
    }
    // Packs are intact: restore finds every blob by the pack headers.
    restores_all(&c, &src, &t.path().join("r1"));
    // check names the problem and the remedy; prune refuses and names it too.
    let o = c.run(&["vault", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("repair-index"), "{}", text(&o));
    let o = c.run(&["prune"]);
    assert!(!o.status.success(), "prune must refuse: {}", text(&o));
    assert!(text(&o).contains("repair-index"), "{}", text(&o));
    let packs_before = files_below(&vault.join("packs")).len();
    // Repair: one new index file; then check --read-data and prune are clean.
    let rep = c.json(&["vault", "repair-index"]);
    assert_eq!(rep["packs_from_headers"], packs_before, "{rep}");
    assert_eq!(files_below(&vault.join("index")).len(), 1);
    c.ok(&["vault", "check", "--read-data"]);
    c.ok(&["prune"]);
    assert_eq!(
        files_below(&vault.join("packs")).len(),
        packs_before,
        "prune deleted no pack a point needs"
    );
    restores_all(&c, &src, &t.path().join("r2"));
}

#[test]
fn a_damaged_index_file_is_replaced_by_repair_index_and_prune_runs_again() {
    let (t, src, vault, c) = setup(32);
    let idx = files_below(&vault.join("index")).pop().unwrap();
    flip_byte(&idx, 50);
    let o = c.run(&["prune"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("lifeboat vault repair-index"),
        "prune names the repair: {}",
        text(&o)
    );
    let rep = c.json(&["vault", "repair-index"]);
    assert_eq!(rep["index_files_damaged"], 1, "{rep}");
    assert!(!idx.exists(), "the damaged index file is removed");
    c.ok(&["vault", "check", "--read-data"]);
    c.ok(&["prune"]);
    restores_all(&c, &src, &t.path().join("r"));
}

fn key_files(vault: &Path) -> Vec<PathBuf> {
    files_below(&vault.join("keys"))
}

fn edit_key(path: &Path, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    serde_json::to_vec_pretty(&v).unwrap()
}

#[test]
fn a_damaged_key_file_is_named_not_called_a_wrong_password() {
    let t = tempdir().unwrap();
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let first = key_files(&vault).pop().unwrap();
    let mut add = c.command(&["key", "add"]);
    add.env("LIFEBOAT_NEW_PASSWORD", "second password");
    assert!(add.output().unwrap().status.success());
    // Change one character of the wrapped key in the first key file.
    let bytes = edit_key(&first, |v| {
        let w = v["wrapped"].as_str().unwrap().to_string();
        let mut b = w.into_bytes();
        b[10] = if b[10] == b'A' { b'B' } else { b'A' };
        v["wrapped"] = String::from_utf8(b).unwrap().into();
    });
    std::fs::write(&first, bytes).unwrap();
    let o = c.run(&["points", "list"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let msg = text(&o);
    assert!(
        msg.contains("damaged") && !msg.contains("wrong password"),
        "{msg}"
    );
    // With a damaged key present, another password cannot be told from the
    // damaged key's: the message names the damaged file either way.
    let mut wrong = c.clone();
    wrong.password = "not it".into();
    let o = wrong.run(&["points", "list"]);
    assert!(
        text(&o).contains("damaged"),
        "the damaged file is mentioned: {}",
        text(&o)
    );
    // The second password opens the vault; check names the damaged key file.
    let mut second = c.clone();
    second.password = "second password".into();
    let o = second.run(&["vault", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let name = first.file_name().unwrap().to_str().unwrap();
    assert!(
        text(&o).contains(&format!("keys/{name}")) && text(&o).contains("damaged key file"),
        "{}",
        text(&o)
    );
}

#[test]
fn absurd_kdf_costs_in_a_key_file_are_refused_before_allocating() {
    let t = tempdir().unwrap();
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let key = key_files(&vault).pop().unwrap();
    // Renamed to its new hash, so only the costs are wrong.
    let bytes = edit_key(&key, |v| v["params"]["m_cost"] = 4294967295u32.into());
    std::fs::remove_file(&key).unwrap();
    let name = lifeboat_vault::Id::of_stored(&bytes).to_hex();
    std::fs::write(vault.join("keys").join(name), bytes).unwrap();
    // Under a 1 GiB address-space limit: an allocation attempt would abort.
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--as=1073741824")
        .arg(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["points", "list"])
        .env("LIFEBOAT_VAULT", &vault)
        .env("LIFEBOAT_PASSWORD", &c.password)
        .env_remove("LIFEBOAT_PASSWORD_FILE");
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("m_cost"), "{}", text(&o));
}

#[test]
fn a_config_out_of_range_is_named_by_field_not_a_panic() {
    let (_t, src, vault, c) = setup(33);
    let p = vault.join("config");
    let orig = std::fs::read(&p).unwrap();
    for (field, value) in [
        ("/chunker/avg", serde_json::json!(0)),
        ("/chunker/max", serde_json::json!(u32::MAX)),
        ("/pack_size", serde_json::json!(0)),
        ("/compression", serde_json::json!(99)),
    ] {
        let mut v: serde_json::Value = serde_json::from_slice(&orig).unwrap();
        *v.pointer_mut(field).unwrap() = value;
        std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let o = c.run(&backup_files(&src, &[]));
        assert_eq!(o.status.code(), Some(1), "{field}: {}", text(&o));
        let name = field.trim_start_matches('/').replace('/', ".");
        assert!(text(&o).contains(&name), "{field}: {}", text(&o));
    }
}

/// `backup files SRC` of `c`'s vault while `writer` runs on a thread of its
/// own until the flag it is given is set (once the backup has ended); the
/// backup's output.
fn backup_while(
    c: &Cli,
    src: &Path,
    writer: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
) -> Output {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let writer = std::thread::spawn(move || writer(s));
    let o = c.run(&backup_files(src, &[]));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    o
}

#[test]
fn a_file_rewritten_in_place_during_its_backup_is_flagged_not_stored_silently() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let big = src.join("big.db");
    let size = 96 << 20;
    std::fs::write(&big, lifeboat_testkit::pseudo_random(7, size)).unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    // A writer rewriting 4 KiB blocks in place, without pause, as a database would.
    let b = big.clone();
    let o = backup_while(&c, &src, move |stop| {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&b).unwrap();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let off = (i.wrapping_mul(2654435761) % (size as u64 / 4096)) * 4096;
            f.write_all_at(&[(i % 251) as u8; 4096], off).unwrap();
            i += 1;
            if i.is_multiple_of(64) {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
    });
    assert_eq!(
        o.status.code(),
        Some(3),
        "a torn copy is not silent: {}",
        text(&o)
    );
    assert!(
        text(&o).contains("changed while it was read"),
        "{}",
        text(&o)
    );
    // Once the file holds still, the next backup reads it again and restores it exactly.
    c.ok(&backup_files(&src, &[]));
    let to = t.path().join("r");
    c.ok(&restore_files("latest", &to, &[]));
    assert!(
        std::fs::read(restored(&to, &big)).unwrap() == std::fs::read(&big).unwrap(),
        "the quiet file's second backup is exact"
    );
}

#[test]
fn a_file_that_grows_during_its_backup_is_flagged_and_read_whole_once_it_stops() {
    // A read stops at the size listed; the status after it must catch the growth.
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let log = src.join("app.log");
    std::fs::write(&log, lifeboat_testkit::pseudo_random(9, 64 << 20)).unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let l = log.clone();
    let o = backup_while(&c, &src, move |stop| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&l).unwrap();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            f.write_all(&[(i % 251) as u8; 512]).unwrap();
            i += 1;
            if i.is_multiple_of(16) {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
    });
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("changed while it was read"),
        "{}",
        text(&o)
    );
    c.ok(&backup_files(&src, &[]));
    let to = t.path().join("r");
    c.ok(&restore_files("latest", &to, &[]));
    assert!(
        std::fs::read(restored(&to, &log)).unwrap() == std::fs::read(&log).unwrap(),
        "the quiet file's second backup holds all of it"
    );
}
