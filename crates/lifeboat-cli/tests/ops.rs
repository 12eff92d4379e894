//! Everyday operation: which point `latest` is, exit codes and messages,
//! private vault files, read-only vaults, a closed pipe. Real processes on
//! real vaults; permission checks run as `nobody` through `setpriv`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use lifeboat_testkit::args::{backup_files, restore_files};
use lifeboat_testkit::{Cli, make_sample_tree, restored, tempdir};

/// The binary under test (`LIFEBOAT_TEST_BIN` runs the tests against another
/// build, e.g. the code before a fix).
fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

fn cli(vault: &Path) -> Cli {
    Cli::new(bin(), vault)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A temporary directory every user may enter (for runs as `nobody`).
fn open_tempdir() -> lifeboat_testkit::TempDir {
    let t = tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

/// `c`'s command for `args`, run as `nobody` (the binary's path is readable by all).
fn as_nobody(c: &Cli, args: &[&str]) -> Output {
    let inner = c.command(args);
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
    cmd.output().expect("setpriv")
}

fn chown_nobody(p: &Path) {
    let st = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

// ----- D.21: `latest` is the newest point of the command's own kind -----

#[test]
fn latest_means_the_newest_point_of_the_commands_kind() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"files point").unwrap();
    let bucket = t.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    std::fs::write(bucket.join("obj.txt"), b"bucket point").unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let files_id = c.json(&backup_files(&src, &[]))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bucket_out = c.ok(&["backup", "bucket", "--bucket", bucket.to_str().unwrap()]);
    let points = c.json(&["points", "list"]);
    let bucket_id = points
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "bucket")
        .unwrap_or_else(|| panic!("no bucket point: {bucket_out}"))["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The newest point is the bucket's; `restore files latest` takes the files point.
    let to = t.path().join("restore");
    let r = c.json(&restore_files("latest", &to, &[]));
    assert_eq!(r["point"], files_id.as_str(), "{r}");
    assert_eq!(
        std::fs::read(restored(&to, &src).join("a.txt")).unwrap(),
        b"files point"
    );

    // A point of another kind is refused, naming its kind and the right command.
    let o = c.run(&[
        "restore",
        "files",
        &bucket_id[..12],
        "--to",
        t.path().join("r2").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("\"bucket\" point") && e.contains("lifeboat restore bucket"),
        "{e}"
    );

    // Another files backup is now newest; `restore bucket latest` still takes the bucket point.
    c.ok(&backup_files(&src, &[]));
    let dest = t.path().join("dest-bucket");
    c.ok(&[
        "restore",
        "bucket",
        "latest",
        "--to-bucket",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(dest.join("obj.txt")).unwrap(),
        b"bucket point"
    );
    let o = c.run(&[
        "restore",
        "bucket",
        &files_id[..12],
        "--to-bucket",
        t.path().join("d2").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("lifeboat restore files"),
        "{}",
        stderr(&o)
    );

    // `points show latest --kind` and `points ls latest` (a files point, `/` is the root).
    let shown = c.json(&["points", "show", "latest", "--kind", "bucket"]);
    assert_eq!(shown["id"], bucket_id.as_str());
    let root = c.ok(&["points", "ls", &files_id[..12]]);
    let ls = c.ok(&["points", "ls", &files_id[..12], "/"]);
    assert_eq!(ls, root);
    assert!(ls.contains("/tmp"), "{ls}");
}

// ----- D.23: a directory vault is private -----

#[test]
fn vault_files_are_private_whatever_the_umask() {
    let t = open_tempdir();
    let src = t.path().join("src");
    make_sample_tree(&src, 7);
    let vault = t.path().join("vault");
    let c = cli(&vault);
    let in_umask = |args: &str| {
        let line = format!("umask 022; exec {} {args}", bin());
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(line)
            .env("LIFEBOAT_NEW_PASSWORD", "another good password");
        for (k, v) in c.command(&[]).get_envs() {
            if let Some(v) = v {
                sh.env(k, v);
            }
        }
        let o = sh.output().unwrap();
        assert!(o.status.success(), "{args}: {}", stderr(&o));
    };
    in_umask("vault init");
    in_umask(&format!("backup files {}", src.display()));
    in_umask("key add --label second"); // LIFEBOAT_NEW_PASSWORD below
    let mut n = 0;
    for e in walk(&vault) {
        let m = std::fs::symlink_metadata(&e).unwrap();
        let want = if m.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            m.mode() & 0o7777,
            want,
            "{} is {:o}",
            e.display(),
            m.mode() & 0o7777
        );
        n += 1;
    }
    assert!(n > 10, "walked {n} entries");
    // Another local user can read none of it.
    let key = walk(&vault.join("keys"))
        .into_iter()
        .find(|p| p.is_file())
        .unwrap();
    let o = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!o.status.success(), "nobody read a key file");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() {
            for e in std::fs::read_dir(&out[i]).unwrap() {
                out.push(e.unwrap().path());
            }
        }
        i += 1;
    }
    out
}

// ----- D.24: reading commands write nothing -----

#[test]
fn reading_commands_create_nothing_at_a_wrong_path() {
    let t = tempdir().unwrap();
    let empty = t.path().join("not-a-vault");
    std::fs::create_dir(&empty).unwrap();
    let c = cli(&empty);
    for args in [
        &["points", "list"][..],
        &["vault", "check"],
        &["key", "list"],
    ] {
        let o = c.run(args);
        assert_eq!(code(&o), 1, "{args:?}");
        let e = stderr(&o);
        assert!(e.contains("no vault at") && e.contains("check the"), "{e}");
        assert!(!e.contains("create one"), "{e}");
    }
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "created files"
    );
    let missing = t.path().join("missing");
    let o = cli(&missing).run(&["points", "list"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(!missing.exists());
}

#[test]
fn a_read_only_vault_can_be_listed_checked_and_restored_from() {
    let t = open_tempdir();
    let src = t.path().join("src");
    make_sample_tree(&src, 3);
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    c.ok(&backup_files(&src, &[]));
    // A copy owned by nobody, every write bit removed; tmp/ as a writer leaves it.
    let ro = t.path().join("ro");
    assert!(
        Command::new("cp")
            .args(["-a"])
            .arg(&vault)
            .arg(&ro)
            .status()
            .unwrap()
            .success()
    );
    // A copy made without the writers' staging directory (rsync/rclone of
    // the objects, a snapshot of an S3 vault) has no tmp/.
    let _ = std::fs::remove_dir_all(ro.join("tmp"));
    chown_nobody(&ro);
    assert!(
        Command::new("chmod")
            .args(["-R", "a-w"])
            .arg(&ro)
            .status()
            .unwrap()
            .success()
    );
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    chown_nobody(&out);
    let r = cli(&ro);
    // The read-only commands that hold a reader lock say they cannot write
    // it and name --no-lock (issue 21, D21) ...
    for args in [
        &["vault", "check"][..],
        &["vault", "stats"],
        &["points", "ls", "latest"],
    ] {
        let o = as_nobody(&r, args);
        assert_eq!(code(&o), 1, "{args:?} on a read-only vault: {}", stderr(&o));
        assert!(stderr(&o).contains("--no-lock"), "{args:?}: {}", stderr(&o));
    }
    // ... and with it they work, writing nothing.
    for args in [
        &["points", "list"][..],
        &["vault", "check", "--read-data", "--no-lock"],
        &["vault", "stats", "--no-lock"],
        &["key", "list"],
        &["points", "ls", "latest", "--no-lock"],
        &["restore", "files", "latest", "--to", out.to_str().unwrap()],
    ] {
        let o = as_nobody(&r, args);
        assert!(
            o.status.success(),
            "{args:?} on a read-only vault: {}",
            stderr(&o)
        );
    }
    // Restored as another user: contents (owners and some modes cannot be).
    for f in ["docs/note-0.txt", "docs/note-19.txt"] {
        assert_eq!(
            std::fs::read(restored(&out, &src).join(f)).unwrap(),
            std::fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
}

/// Issue 21, D21: with --no-lock the read-only commands write nothing into a
/// writable vault either (no reader lock, no `tmp/`, no clock probe); without
/// it they hold a reader lock while they run and leave no lock behind.
#[test]
fn no_lock_reads_write_nothing_into_the_vault() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 5);
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    c.ok(&backup_files(&src, &["--retain-for", "1d"]));
    std::fs::remove_dir_all(vault.join("tmp")).unwrap();
    let snapshot = |dir: &Path| -> Vec<(std::path::PathBuf, i64, i64)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let m = std::fs::symlink_metadata(&d).unwrap();
            out.push((d.clone(), m.mtime(), m.mtime_nsec()));
            if m.is_dir() {
                for e in std::fs::read_dir(&d).unwrap() {
                    stack.push(e.unwrap().path());
                }
            }
        }
        out.sort();
        out
    };
    let before = snapshot(&vault);
    for args in [
        &["vault", "check", "--read-data", "--no-lock"][..],
        &["vault", "stats", "--no-lock"],
        &["points", "ls", "latest", "--no-lock"],
        &["points", "list"],
    ] {
        c.ok(args);
    }
    assert_eq!(
        snapshot(&vault),
        before,
        "a --no-lock read changed the vault"
    );
    // Without it, a reader lock is written and removed again.
    c.ok(&["vault", "check"]);
    assert!(vault.join("locks").exists());
    assert_eq!(std::fs::read_dir(vault.join("locks")).unwrap().count(), 0);
}

// ----- D.25: exit codes and messages -----

#[test]
fn usage_errors_exit_2() {
    let t = tempdir().unwrap();
    let c = Cli::at(bin(), "ftp://example/vault");
    let o = c.run(&["points", "list"]);
    assert_eq!(code(&o), 2, "bad scheme: {}", stderr(&o));
    let c = cli(&t.path().join("v"));
    c.ok(&["vault", "init"]);
    let o = c.run(&["forget"]);
    assert_eq!(code(&o), 2, "forget without a rule: {}", stderr(&o));
}

#[test]
fn messages_say_what_really_failed() {
    let t = open_tempdir();
    // A name too long for the file system.
    let long = format!("/tmp/{}", "x".repeat(5000));
    let o = Cli::at(bin(), &long).run(&["points", "list"]);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        !e.contains("does not exist") && e.contains("too long"),
        "5,000-character path: {e}"
    );

    // A directory nobody may enter.
    let locked = t.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let c = cli(&locked.join("vault"));
    let o = as_nobody(&c, &["points", "list"]);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        !e.contains("does not exist") && e.contains("ermission denied"),
        "permission denied: {e}"
    );

    // A password that is not UTF-8.
    let v = t.path().join("v");
    let c = cli(&v);
    c.ok(&["vault", "init"]);
    let o = c
        .command(&["points", "list"])
        .env(
            "LIFEBOAT_PASSWORD",
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"caf\xe9"),
        )
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not valid UTF-8"), "{}", stderr(&o));

    // A wrong password: the hint does not send the user to a command that needs it.
    let o = c
        .command(&["points", "list"])
        .env("LIFEBOAT_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        e.contains("wrong password") && !e.contains("key list"),
        "{e}"
    );
}

#[test]
fn vault_init_refuses_a_non_empty_directory_and_warns_on_a_short_password() {
    let t = tempdir().unwrap();
    let d = t.path().join("full");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("precious.txt"), b"x").unwrap();
    let o = cli(&d).run(&["vault", "init"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);

    let mut c = cli(&t.path().join("v"));
    c.password = "a".into();
    let o = c.run(&["vault", "init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.matches("warning:").count(), 1, "warned once: {e}");
    assert!(e.contains("only 1 character"), "{e}");
}

#[test]
fn forget_that_could_not_delete_a_point_exits_3() {
    let t = open_tempdir();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"1").unwrap();
    let vault = t.path().join("vault");
    let c = cli(&vault);
    c.ok(&["vault", "init"]);
    c.ok(&backup_files(&src, &[]));
    c.ok(&backup_files(&src, &[]));
    chown_nobody(&vault);
    // points/ may not be changed: the older point cannot be deleted.
    std::fs::set_permissions(vault.join("points"), std::fs::Permissions::from_mode(0o500)).unwrap();
    let o = as_nobody(&c, &["forget", "--keep-last", "1"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("not forgotten"), "{e}");
    std::fs::set_permissions(vault.join("points"), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(c.json(&["points", "list"]).as_array().unwrap().len(), 2);
}

// ----- D.29: a closed pipe ends the command quietly -----

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 1);
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    c.ok(&backup_files(&src, &[]));
    for args in [
        &["points", "show", "latest"][..],
        &["points", "ls", "latest", "--recursive"],
        &["points", "list"],
    ] {
        // The reading end is closed before the command writes a byte.
        let mut child = c
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let e = stderr(&o);
        assert!(
            !e.contains("panicked") && !e.contains("Broken pipe"),
            "{args:?}: {e}"
        );
        assert_eq!(code(&o), 0, "{args:?}: {e}");
    }
}

#[test]
fn a_warning_is_printed_once() {
    let t = open_tempdir();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    std::fs::write(src.join("secret"), b"x").unwrap();
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let vault = t.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    chown_nobody(&vault);
    let c = cli(&vault);
    let o = as_nobody(&c, &["vault", "init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = as_nobody(&c, &["backup", "files", src.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.matches("secret").count(), 1, "{e}");
}
