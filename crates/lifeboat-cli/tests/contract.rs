//! The CLI contract: the commands and JSON fields other tools and the
//! acceptance checks rely on, run as a real process on real files.

use std::path::Path;
use std::process::Command;

use lifeboat_testkit::args::{backup_files, restore_files};
use lifeboat_testkit::{Cli, compare_trees, make_sample_tree, mutate_tree, restored, tempdir};

fn cli(vault: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_lifeboat"), vault)
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn backup_list_restore_roundtrip_keeps_every_kind_of_entry() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 1);
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);

    let b = c.json(&backup_files(&src, &["--tag", "first", "--tag", "t2"]));
    assert_eq!(b["warnings"], serde_json::json!([]));
    let id = b["id"].as_str().unwrap();
    assert_eq!(id.len(), 64);
    assert!(b["files"].as_u64().unwrap() >= 30, "{b}");
    assert!(b["bytes_read"].as_u64().unwrap() > 8_000_000, "{b}");
    assert!(b["bytes_new"].as_u64().unwrap() > 0);
    assert!(b["bytes_stored"].as_u64().unwrap() > 0);
    assert!(
        b["bytes_stored"].as_u64().unwrap() < b["bytes_read"].as_u64().unwrap(),
        "dedup + compression"
    );
    assert!(b["duration_s"].as_f64().unwrap() > 0.0);

    let list = c.json(&["points", "list"]);
    let arr = list.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    let p = &arr[0];
    assert_eq!(p["id"], id);
    assert_eq!(p["kind"], "files");
    assert!(
        p["resource"]
            .as_str()
            .unwrap()
            .contains(src.to_str().unwrap())
    );
    chrono::DateTime::parse_from_rfc3339(p["time"].as_str().unwrap()).expect("RFC 3339 time");
    assert_eq!(p["tags"], serde_json::json!(["first", "t2"]));
    assert!(
        p["size"].as_u64().unwrap() > 20_000_000,
        "logical size includes the sparse file"
    );

    c.assert_restores(&id[..10], &src, &t.path().join("restore"));
}

#[test]
fn incremental_backup_reads_only_what_changed_and_old_points_stay_intact() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 2);
    let original = t.path().join("original");
    copy_tree(&src, &original);
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let first = c.json(&backup_files(&src, &[]));
    let second = c.json(&backup_files(&src, &[]));
    assert_eq!(
        second["bytes_read"], 0,
        "nothing changed, nothing read: {second}"
    );
    assert_eq!(second["parent"], first["id"]);
    assert!(
        second["bytes_new"].as_u64().unwrap() < 4096,
        "only trees may be new: {second}"
    );

    std::fs::write(src.join("docs/note-9.txt"), b"changed content").unwrap();
    let third = c.json(&backup_files(&src, &[]));
    assert_eq!(
        third["bytes_read"], 15,
        "only the changed file is read: {third}"
    );

    let to = t.path().join("r1");
    c.ok(&[
        "restore",
        "files",
        first["id"].as_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]);
    let diffs = compare_trees(&original, &restored(&to, &src));
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    c.assert_restores("latest", &src, &t.path().join("r3"));
}

#[test]
fn five_percent_change_stores_little() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 3);
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let first = c.json(&backup_files(&src, &[]));
    let changed = mutate_tree(&src, 0.05, 9);
    assert!(changed >= 1);
    let second = c.json(&backup_files(&src, &[]));
    assert!(
        second["bytes_new"].as_u64().unwrap() * 4 < first["bytes_new"].as_u64().unwrap(),
        "a small change must store far less than the first backup: {first} vs {second}"
    );
}

#[test]
fn restore_of_a_sub_path_only() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 4);
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    c.ok(&backup_files(&src, &[]));
    let to = t.path().join("r");
    let sub = src.join("docs/deep");
    c.ok(&[
        "restore",
        "files",
        "latest",
        "--to",
        to.to_str().unwrap(),
        "--path",
        sub.to_str().unwrap(),
    ]);
    let diffs = compare_trees(&sub, &restored(&to, &sub));
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // What the point holds can be listed without restoring.
    let ls = c.json(&["points", "ls", "latest", src.join("docs").to_str().unwrap()]);
    let names: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&src.join("docs/deep").to_str().unwrap()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.ends_with("leaf.txt")),
        "one level only"
    );
    let all = c.json(&[
        "points",
        "ls",
        "latest",
        src.join("docs").to_str().unwrap(),
        "-r",
    ]);
    let leaf = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("leaf.txt"))
        .unwrap();
    assert_eq!(leaf["size"], 5);
    assert_eq!(leaf["kind"], "file");
    assert!(
        !restored(&to, &src.join("data")).exists(),
        "only the sub-path is restored"
    );

    let o = c.run(&restore_files("latest", &to, &["--path", "/no/such/dir"]));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/dir"));
}

#[test]
fn excludes_from_flags_and_files() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 5);
    std::fs::create_dir_all(src.join("cache/x")).unwrap();
    std::fs::write(src.join("cache/x/big"), b"cached").unwrap();
    let ex = t.path().join("excludes");
    std::fs::write(&ex, "# comment\n*.bin\n").unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    c.ok(&backup_files(
        &src,
        &[
            "--exclude",
            "cache/",
            "--exclude",
            "note-1*.txt",
            "--exclude-file",
            ex.to_str().unwrap(),
        ],
    ));
    let to = t.path().join("r");
    c.ok(&restore_files("latest", &to, &[]));
    let r = restored(&to, &src);
    assert!(!r.join("cache").exists());
    assert!(!r.join("data/random.bin").exists());
    assert!(!r.join("docs/note-1.txt").exists() && !r.join("docs/note-12.txt").exists());
    assert!(r.join("docs/note-2.txt").exists() && r.join("data/text.log").exists());

    let o = c.run(&backup_files(&src, &["--exclude-file", "/no/such/file"]));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/file"));
}

#[test]
fn one_file_system_does_not_cross_mounts() {
    if !rustix::process::geteuid().is_root() {
        panic!("this test mounts a tmpfs and must run as root (CI does)");
    }
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("mnt")).unwrap();
    std::fs::write(src.join("top.txt"), b"top").unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(src.join("mnt"))
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    std::fs::write(src.join("mnt/inside.txt"), b"other fs").unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    c.ok(&backup_files(&src, &["--one-file-system"]));
    c.ok(&backup_files(&src, &["--resource", "all"]));
    let _ = Command::new("umount").arg(src.join("mnt")).status();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let list = c.json(&["points", "list"]);
    let first = list[0]["id"].as_str().unwrap();
    c.ok(&restore_files(first, &a, &[]));
    c.ok(&[
        "restore",
        "files",
        "latest",
        "--resource",
        "all",
        "--to",
        b.to_str().unwrap(),
    ]);
    assert!(
        restored(&a, &src).join("mnt").is_dir(),
        "the mount point itself is kept"
    );
    assert!(!restored(&a, &src).join("mnt/inside.txt").exists());
    assert!(restored(&a, &src).join("top.txt").exists());
    assert_eq!(
        std::fs::read(restored(&b, &src).join("mnt/inside.txt")).unwrap(),
        b"other fs"
    );
}

#[test]
fn clear_errors_for_missing_vault_path_and_point() {
    let t = tempdir().unwrap();
    let c = cli(&t.path().join("vault"));
    // No vault given at all.
    let o = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["points", "list"])
        .env_remove("LIFEBOAT_VAULT")
        .env("LIFEBOAT_PASSWORD", "x")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("LIFEBOAT_VAULT"));
    // No vault there.
    let o = c.run(&["points", "list"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("vault init"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    c.ok(&["vault", "init"]);
    // init twice refuses.
    let o = c.run(&["vault", "init"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    // A path that does not exist: clear error, no point.
    let o = c.run(&["backup", "files", "/no/such/path/anywhere"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/path/anywhere does not exist"));
    assert_eq!(c.json(&["points", "list"]).as_array().unwrap().len(), 0);
    // Unknown point.
    let o = c.run(&["restore", "files", "deadbeef", "--to", "/tmp/x"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("deadbeef"));
    // A relative vault path is refused with the expected form.
    let o = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["points", "list", "--vault", "relative/path"])
        .env("LIFEBOAT_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("file:///abs/path"));
}

#[test]
fn password_file_and_keys_add_list_remove() {
    let t = tempdir().unwrap();
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let pwfile = t.path().join("pw2");
    std::fs::write(&pwfile, "second password\n").unwrap();
    // A password file every local user can read is refused (exit 2).
    let o = c.run(&[
        "key",
        "add",
        "--new-password-file",
        pwfile.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("chmod o-rwx"));
    lifeboat_testkit::write_secret(&pwfile, "second password\n");
    let added = c.json(&[
        "key",
        "add",
        "--new-password-file",
        pwfile.to_str().unwrap(),
        "--label",
        "ops",
    ]);
    let new_id = added["id"].as_str().unwrap().to_string();
    let keys = c.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert!(keys.as_array().unwrap().iter().any(|k| k["label"] == "ops"));

    // Open with the second password through --password-file.
    let mut other = c.clone();
    other.password = "ignored".into();
    let o = other
        .command(&[
            "key",
            "list",
            "--json",
            "--password-file",
            pwfile.to_str().unwrap(),
        ])
        .env_remove("LIFEBOAT_PASSWORD")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let keys: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] != new_id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The key in use cannot be removed.
    let o = c.run(&["key", "remove", &first_id[..8]]);
    assert!(!o.status.success());
    // Removing the first key with the second password; the first then fails.
    let o = other
        .command(&[
            "key",
            "remove",
            &first_id[..8],
            "--password-file",
            pwfile.to_str().unwrap(),
        ])
        .env_remove("LIFEBOAT_PASSWORD")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = c.run(&["points", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong password"));
}

#[test]
fn forget_keeps_by_policy_and_prune_frees_space() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    let mut ids = Vec::new();
    for i in 0..5u64 {
        std::fs::write(
            src.join(format!("f{i}")),
            lifeboat_testkit::pseudo_random(i, 2_000_000),
        )
        .unwrap();
        let b = c.json(&backup_files(&src, &[]));
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    let dry = c.json(&["forget", "--keep-last", "2", "--dry-run"]);
    assert_eq!(
        dry["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["keep"] == false)
            .count(),
        3
    );
    assert_eq!(
        c.json(&["points", "list"]).as_array().unwrap().len(),
        5,
        "dry run changes nothing"
    );
    let o = c.run(&["forget"]);
    assert!(!o.status.success(), "forget without a policy is refused");
    c.ok(&["forget", "--keep-last", "2"]);
    let left: Vec<String> = c
        .json(&["points", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ids[3..].to_vec());
    // Delete a file so its data becomes unreferenced, keep only the newest point.
    std::fs::remove_file(src.join("f0")).unwrap();
    c.ok(&backup_files(&src, &[]));
    c.ok(&["forget", "--keep-last", "1"]);
    let before = dir_size(&vault);
    let rep = c.json(&["prune"]);
    assert!(rep["bytes_freed"].as_u64().unwrap() > 1_000_000, "{rep}");
    assert!(dir_size(&vault) < before);
    c.ok(&["vault", "check", "--read-data"]);
    c.assert_restores("latest", &src, &t.path().join("r"));
}

fn dir_size(p: &Path) -> u64 {
    lifeboat_testkit::files_below(p)
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum()
}

#[test]
fn sockets_are_left_out_with_a_note_not_a_failure() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("kept.txt"), b"kept").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("app.sock")).unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let b = c.json(&backup_files(&src, &[]));
    assert_eq!(b["warnings"], serde_json::json!([]));
    assert!(b["notes"][0].as_str().unwrap().contains("app.sock"), "{b}");
    let to = t.path().join("r");
    c.ok(&restore_files("latest", &to, &[]));
    assert!(restored(&to, &src).join("kept.txt").exists());
    assert!(!restored(&to, &src).join("app.sock").exists());
}

/// Runs `lifeboat ARGS` on a pseudo-terminal (util-linux `script`), typing `lines`.
fn on_terminal(args: &str, lines: &[&str]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_lifeboat")),
            "/dev/null",
        ])
        .env("LIFEBOAT_INSECURE_FAST_KDF", "1")
        .env_remove("LIFEBOAT_PASSWORD")
        .env_remove("LIFEBOAT_VAULT")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux script");
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        std::thread::sleep(std::time::Duration::from_millis(400));
        writeln!(stdin, "{l}").unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn passwords_are_asked_on_a_terminal() {
    let t = tempdir().unwrap();
    let vault = t.path().join("vault");
    let v = vault.to_str().unwrap();
    // Two different entries: refused, no vault.
    let o = on_terminal(&format!("vault init --vault {v}"), &["one", "two"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("differ"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!vault.join("config").exists());
    // The same twice: created, and that password opens it.
    let o = on_terminal(
        &format!("vault init --vault {v}"),
        &["typed secret", "typed secret"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let mut c = cli(&vault);
    c.password = "typed secret".into();
    c.ok(&["points", "list"]);
    // Asked once when opening.
    let o = on_terminal(&format!("points list --vault {v}"), &["typed secret"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("vault password"));
}
