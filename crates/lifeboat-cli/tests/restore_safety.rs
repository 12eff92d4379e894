//! A restore never writes outside its target, never follows a symlink it did
//! not create, never destroys what it cannot replace, and tells local errors
//! from damage. Hostile points are forged through the vault library.

mod support;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use lifeboat_testkit::args::restore_files;
use lifeboat_testkit::{Cli, compare_trees, make_sample_tree, pseudo_random, restored, tempdir};
use lifeboat_vault::tree::{Node, NodeKind, Tree};
use lifeboat_vault::{BackupWriter, BlobType, Location, RecoveryPoint, Vault};
use support::blobs::damage_blob_of;

fn cli(vault: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_lifeboat"), vault)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn open(c: &Cli) -> Vault {
    Vault::open(&Location::parse(&c.vault).unwrap(), c.password.as_bytes()).unwrap()
}

fn file_node(w: &BackupWriter, name: &[u8], data: &[u8]) -> Node {
    let id = w.save_blob(BlobType::Data, data).unwrap();
    let mut n = Node {
        kind: NodeKind::File,
        mode: 0o100644,
        size: data.len() as u64,
        content: vec![id],
        mtime_ns: 1_600_000_000_000_000_000,
        ..Node::default()
    };
    n.set_name_bytes(name);
    n
}

fn dir_node(w: &BackupWriter, name: &[u8], nodes: Vec<Node>) -> Node {
    let t = w.save_tree(&Tree { nodes }).unwrap();
    let mut n = Node {
        kind: NodeKind::Dir,
        mode: 0o40755,
        subtree: Some(t),
        ..Node::default()
    };
    n.set_name_bytes(name);
    n
}

fn symlink_node(name: &[u8], target: &[u8]) -> Node {
    let mut n = Node {
        kind: NodeKind::Symlink,
        mode: 0o120777,
        ..Node::default()
    };
    n.set_name_bytes(name);
    n.set_target_bytes(target);
    n
}

/// A vault in `dir/vault` (initialised) holding one files point of `src`.
fn backed_up(dir: &Path, src: &Path) -> Cli {
    let c = cli(&dir.join("vault"));
    c.ok(&["vault", "init"]);
    c.ok(&["backup", "files", s(src)]);
    c
}

/// Writes a point whose root tree holds `nodes` (built by `make`).
fn forge(c: &Cli, make: impl FnOnce(&BackupWriter) -> Vec<Node>) -> String {
    let v = open(c);
    let w = BackupWriter::start(&v, "backup").unwrap();
    let nodes = make(&w);
    let root = w.save_tree(&Tree { nodes }).unwrap();
    let mut p = RecoveryPoint::new("forged", "files", root);
    p.paths = vec!["/".into()];
    w.commit(&p).unwrap().to_hex()
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            out.push(p.clone());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                out.extend(listing(&p));
            }
        }
    }
    out.sort();
    out
}

fn is_temp(p: &Path) -> bool {
    p.file_name()
        .map(|n| n.as_bytes().starts_with(b".lifeboat-restore."))
        .unwrap_or(false)
}

/// A.1: backing up `x/datalink/app` with `datalink -> x/realdata` and
/// restoring into an empty directory recreates `datalink` as a real directory
/// below the target; the live `realdata` is never written.
#[test]
fn a_path_backed_up_through_a_symlink_restores_as_real_directories() {
    let t = tempdir().unwrap();
    let x = t.path().join("x");
    std::fs::create_dir_all(x.join("realdata/app")).unwrap();
    std::fs::write(x.join("realdata/app/config.txt"), b"old\n").unwrap();
    std::os::unix::fs::symlink(x.join("realdata"), x.join("datalink")).unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    c.ok(&["backup", "files", s(&x.join("datalink/app"))]);
    std::fs::write(x.join("realdata/app/config.txt"), b"live, changed\n").unwrap();
    let to = x.join("empty");
    c.ok(&restore_files("latest", &to, &[]));
    assert_eq!(
        std::fs::read(x.join("realdata/app/config.txt")).unwrap(),
        b"live, changed\n",
        "the live file behind the symlink was rewritten"
    );
    let r = restored(&to, &x.join("datalink"));
    assert!(std::fs::symlink_metadata(&r).unwrap().is_dir(), "{r:?}");
    assert_eq!(std::fs::read(r.join("app/config.txt")).unwrap(), b"old\n");
}

/// A.2: a symlink already in the target (at the top of the point's paths and
/// deeper down) is replaced by the point's directory, never followed.
#[test]
fn symlinks_in_the_target_are_replaced_never_followed() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 3);
    let c = backed_up(t.path(), &src);
    let victim = t.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    // The first component of the restored path is a symlink to the victim...
    let to = t.path().join("to");
    std::fs::create_dir(&to).unwrap();
    let first = src.components().nth(1).unwrap().as_os_str().to_owned();
    std::os::unix::fs::symlink(&victim, to.join(&first)).unwrap();
    c.ok(&restore_files("latest", &to, &["--overwrite", "always"]));
    assert!(listing(&victim).is_empty(), "{:?}", listing(&victim));
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o7777, 0o700);
    assert!(compare_trees(&src, &restored(&to, &src)).is_empty());
    // ... and a symlinked subdirectory deeper down.
    let docs = restored(&to, &src).join("docs");
    std::fs::remove_dir_all(&docs).unwrap();
    std::os::unix::fs::symlink(&victim, &docs).unwrap();
    c.ok(&restore_files("latest", &to, &["--overwrite", "always"]));
    assert!(listing(&victim).is_empty(), "{:?}", listing(&victim));
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o7777, 0o700);
    assert!(std::fs::symlink_metadata(&docs).unwrap().is_dir());
    assert!(compare_trees(&src, &restored(&to, &src)).is_empty());
}

/// A.3: names from a forged tree that are empty, `.`, `..`, contain `/` or
/// NUL, or put a symlink and a directory under one name are refused and
/// named; nothing is written outside the target; everything valid restores.
#[test]
fn hostile_names_in_a_point_never_escape_the_target() {
    let t = tempdir().unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let victim = t.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let victim_b = victim.as_os_str().as_bytes().to_vec();
    let id = forge(&c, |w| {
        let escape = file_node(w, b"escaped.txt", b"out\n");
        let inner = file_node(w, b"through-link.txt", b"via link\n");
        vec![
            dir_node(w, b"..", vec![escape.clone()]),
            dir_node(w, b".", vec![escape.clone()]),
            dir_node(w, b"", vec![escape.clone()]),
            file_node(w, b"a/../../escaped.txt", b"slash\n"),
            file_node(w, b"nul\0name", b"nul\n"),
            // One name, twice: a symlink out, then a directory with a file.
            symlink_node(b"dup", &victim_b),
            dir_node(w, b"dup", vec![inner]),
            file_node(w, b"ok.txt", b"fine\n"),
            symlink_node(b"link-out", &victim_b),
        ]
    });
    let to = t.path().join("to");
    let o = c.run(&restore_files(&id[..12], &to, &[]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(!t.path().join("escaped.txt").exists());
    assert!(listing(&victim).is_empty(), "{:?}", listing(&victim));
    assert_eq!(std::fs::read(to.join("ok.txt")).unwrap(), b"fine\n");
    // The point's own symlink is restored as a symlink (created last).
    assert_eq!(std::fs::read_link(to.join("link-out")).unwrap(), victim);
    assert!(err.contains("invalid name"), "{err}");
    assert!(err.contains("twice"), "{err}");
    for p in listing(&to) {
        assert!(p.starts_with(&to), "{p:?}");
    }
}

/// A.3 (depth): a tree deeper than PATH_MAX restores through directory
/// handles; a tree deeper than the guard is cut and named, not a crash.
#[test]
fn deep_trees_restore_through_handles_and_the_depth_guard_holds() {
    let t = tempdir().unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let long = vec![b'd'; 200];
    let id = forge(&c, |w| {
        let mut n = file_node(w, b"leaf.txt", b"deep\n");
        for _ in 0..40 {
            n = dir_node(w, &long, vec![n]);
        }
        vec![n]
    });
    let to = t.path().join("to");
    c.ok(&restore_files(&id[..12], &to, &[]));
    // Deeper than PATH_MAX: read it one directory handle at a time.
    // 40 levels of 201 bytes: longer than PATH_MAX (4096).
    let mut d: std::os::fd::OwnedFd = std::fs::File::open(&to).unwrap().into();
    for _ in 0..40 {
        d = rustix::fs::openat(
            &d,
            std::ffi::OsStr::from_bytes(&long),
            rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
    }
    let f = rustix::fs::openat(
        &d,
        "leaf.txt",
        rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(f), &mut got).unwrap();
    assert_eq!(got, "deep\n");

    let id = forge(&c, |w| {
        let mut n = file_node(w, b"leaf.txt", b"too deep\n");
        for _ in 0..5000 {
            n = dir_node(w, b"d", vec![n]);
        }
        vec![n]
    });
    let to = t.path().join("to2");
    let o = c.run(&restore_files(&id[..12], &to, &[]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("too deep"), "{}", stderr(&o));
}

/// A.4: restoring in place over a tree whose point has a damaged blob keeps
/// the intact file on disk; it is named and the exit code is 3.
#[test]
fn a_damaged_blob_never_removes_the_file_on_disk() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 5);
    let c = backed_up(t.path(), &src);
    let to = t.path().join("to");
    c.ok(&restore_files("latest", &to, &[]));
    damage_blob_of(&c, &src.join("docs/note-9.txt"));
    let o = c.run(&restore_files("latest", &to, &["--overwrite", "always"]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("note-9.txt"), "{}", stderr(&o));
    assert!(
        compare_trees(&src, &restored(&to, &src)).is_empty(),
        "{:?}",
        compare_trees(&src, &restored(&to, &src))
    );
}

/// C.15: one damaged tree blob loses only what is below it: everything else
/// is restored, the directory is named, exit 3.
#[test]
fn a_damaged_tree_blob_loses_only_its_directory() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 6);
    let c = backed_up(t.path(), &src);
    damage_blob_of(&c, &src.join("docs/deep"));
    let to = t.path().join("to");
    let o = c.run(&restore_files("latest", &to, &[]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("docs/deep"), "{err}");
    let diffs = compare_trees(&src, &restored(&to, &src));
    assert!(
        diffs.iter().all(|d| d.contains("docs/deep")),
        "only what is below docs/deep is lost: {diffs:?}"
    );
    assert!(restored(&to, &src).join("data/random.bin").exists());
}

fn big_tree(root: &Path, files: usize, size: usize) {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..files {
        std::fs::write(
            root.join(format!("f{i:03}.bin")),
            pseudo_random(i as u64 + 100, size),
        )
        .unwrap();
    }
}

/// A.6: a killed restore leaves each file complete or absent (plus temporary
/// names); the next restore with `--overwrite if-changed` removes the
/// temporary names and completes the tree.
#[test]
fn a_killed_restore_leaves_files_complete_or_absent_and_resumes() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    big_tree(&src, 24, 3 << 20);
    let c = backed_up(t.path(), &src);
    let to = t.path().join("to");
    let r = restored(&to, &src);
    let mut child = c
        .command(&["restore", "files", "latest", "--to", s(&to)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as the first bytes land.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let any = listing(&r).iter().any(|p| {
            std::fs::symlink_metadata(p)
                .map(|m| m.is_file() && m.len() > 0)
                .unwrap_or(false)
        });
        if any || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut complete = 0;
    for p in listing(&r) {
        if is_temp(&p) || std::fs::symlink_metadata(&p).unwrap().is_dir() {
            continue;
        }
        let name = p.file_name().unwrap();
        assert!(
            std::fs::read(&p).unwrap() == std::fs::read(src.join(name)).unwrap(),
            "{p:?} is visible under its name but not complete"
        );
        complete += 1;
    }
    eprintln!("complete files after the kill: {complete} of 24");
    c.ok(&restore_files(
        "latest",
        &to,
        &["--overwrite", "if-changed"],
    ));
    assert!(compare_trees(&src, &r).is_empty());
    assert!(
        !listing(&to).iter().any(|p| is_temp(p)),
        "{:?}",
        listing(&to)
    );
}

/// A.5: a non-empty target is refused unless an overwrite policy is given;
/// `never` adds only what is missing, `if-changed` replaces what differs,
/// `always` replaces everything; `--dry-run` writes nothing; `--delete`
/// removes what the point does not have, only within the backed-up paths.
#[test]
fn existing_content_follows_the_overwrite_policy() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 8);
    let c = backed_up(t.path(), &src);
    let to = t.path().join("to");
    c.ok(&restore_files("latest", &to, &[]));
    let r = restored(&to, &src);
    let edited = r.join("docs/note-1.txt");
    std::fs::write(&edited, b"edited by the user\n").unwrap();
    std::fs::remove_file(r.join("docs/note-2.txt")).unwrap();
    std::fs::write(r.join("docs/extra.txt"), b"not in the point\n").unwrap();
    let outside = to.join("outside.txt"); // not below a backed-up path
    std::fs::write(&outside, b"keep me\n").unwrap();
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let unchanged_ino = ino(&r.join("docs/note-3.txt"));

    let o = c.run(&restore_files("latest", &to, &[]));
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&edited).unwrap(), b"edited by the user\n");

    let plan = c.json(&restore_files(
        "latest",
        &to,
        &["--overwrite", "if-changed", "--delete", "--dry-run"],
    ));
    let actions = plan["actions"].as_array().unwrap();
    let has = |what: &str, end: &str| {
        actions
            .iter()
            .any(|a| a["action"] == what && a["path"].as_str().unwrap().ends_with(end))
    };
    assert!(has("replace", "docs/note-1.txt"), "{plan:#}");
    assert!(has("create", "docs/note-2.txt"), "{plan:#}");
    assert!(has("delete", "docs/extra.txt"), "{plan:#}");
    assert!(!has("replace", "docs/note-3.txt"), "{plan:#}");
    assert!(!has("delete", "outside.txt"), "{plan:#}");
    assert_eq!(std::fs::read(&edited).unwrap(), b"edited by the user\n");
    assert!(r.join("docs/extra.txt").exists() && !r.join("docs/note-2.txt").exists());

    c.ok(&restore_files("latest", &to, &["--overwrite", "never"]));
    assert_eq!(std::fs::read(&edited).unwrap(), b"edited by the user\n");
    assert!(r.join("docs/note-2.txt").exists());

    c.ok(&restore_files(
        "latest",
        &to,
        &["--overwrite", "if-changed", "--delete"],
    ));
    assert!(
        compare_trees(&src, &r).is_empty(),
        "{:?}",
        compare_trees(&src, &r)
    );
    assert_eq!(
        ino(&r.join("docs/note-3.txt")),
        unchanged_ino,
        "unchanged file kept"
    );
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep me\n");

    let before = ino(&r.join("docs/note-3.txt"));
    c.ok(&restore_files("latest", &to, &["--overwrite", "always"]));
    assert_ne!(ino(&r.join("docs/note-3.txt")), before, "always replaces");
    assert!(compare_trees(&src, &r).is_empty());
}

/// A.7: a full disk is a local error naming the path (exit 1), never "damaged".
#[test]
fn a_full_disk_is_a_local_error_naming_the_path() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    big_tree(&src, 12, 3 << 20);
    let c = backed_up(t.path(), &src);
    let mnt = t.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let m = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs", s(&mnt)])
        .status()
        .unwrap();
    assert!(m.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let o = c.run(&restore_files("latest", &mnt.join("r"), &[]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left"), "{err}");
    assert!(err.contains(s(&mnt)), "names the path: {err}");
    assert!(!err.contains("damaged"), "{err}");
    // What is visible is complete.
    for p in listing(&mnt.join("r")) {
        if is_temp(&p) || std::fs::symlink_metadata(&p).unwrap().is_dir() {
            continue;
        }
        assert!(
            std::fs::read(&p).unwrap() == std::fs::read(src.join(p.file_name().unwrap())).unwrap(),
            "{p:?} is visible but not complete"
        );
    }
}

/// E.30 and D.29: 100,000 hard-linked names (50,000 inodes with two names
/// each) restore as hard links in linear time, and the summary counts each
/// file once and names the symlinks and special files.
#[test]
fn a_hundred_thousand_hard_links_restore_quickly_and_count_once() {
    let t = tempdir().unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let id = forge(&c, |w| {
        let f = file_node(w, b"x", b"one inode per pair\n");
        let mut dirs = Vec::new();
        for d in 0..100u64 {
            let nodes: Vec<Node> = (0..1000u64)
                .map(|i| {
                    let mut n = f.clone();
                    n.set_name_bytes(format!("l{i:04}").as_bytes());
                    // Names i and i+500 of directory d share an inode.
                    n.inode = 1 + d * 500 + i % 500;
                    n.dev = 7;
                    n.links = 2;
                    n
                })
                .collect();
            dirs.push(dir_node(w, format!("d{d:02}").as_bytes(), nodes));
        }
        dirs.push(symlink_node(b"sym", b"d00/l0000"));
        let mut fifo = Node {
            kind: NodeKind::Fifo,
            mode: 0o10644,
            ..Node::default()
        };
        fifo.set_name_bytes(b"pipe");
        dirs.push(fifo);
        dirs
    });
    let to = t.path().join("to");
    let started = Instant::now();
    let j = c.json(&restore_files(&id[..12], &to, &[]));
    let secs = started.elapsed().as_secs_f64();
    eprintln!("100,000 hard-linked names restored in {secs:.1}s");
    assert!(secs < 60.0, "took {secs:.1}s");
    let a = std::fs::metadata(to.join("d99/l0999")).unwrap();
    let b = std::fs::metadata(to.join("d99/l0499")).unwrap();
    assert_eq!((a.nlink(), a.ino()), (2, b.ino()));
    assert_ne!(
        a.ino(),
        std::fs::metadata(to.join("d99/l0998")).unwrap().ino()
    );
    assert_eq!(j["files"], 50_000, "{}", j["files"]);
    assert_eq!(j["hardlinks"], 50_000, "{}", j["hardlinks"]);
    assert_eq!(j["symlinks"], 1);
    assert_eq!(j["specials"], 1);
}
