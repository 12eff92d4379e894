//! The files protector at its edges (issue 21, A.3–A.5): `restore --delete`
//! never deletes what it cannot read, overlapping backup paths lose nothing,
//! and a file changed through a shared mapping while it is read is not stored
//! torn in silence.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use lifeboat_testkit::{Cli, restored, tempdir};
use lifeboat_vault::{Id, Location, Vault};

fn cli(vault: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_lifeboat"), vault)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The pack holding the tree blob of directory `dir` (or the content blob of
/// a file) in the newest point, and the blob's offset and length in it.
fn blob_of(c: &Cli, path: &Path) -> (PathBuf, u32, u32) {
    let v = Vault::open(&Location::parse(&c.vault).unwrap(), c.password.as_bytes()).unwrap();
    let index = v.load_index().unwrap();
    let (_, p) = v.find_point("latest", None).unwrap();
    let mut tree = p.tree;
    let comps: Vec<_> = path.components().skip(1).collect();
    let mut node = None;
    for (i, comp) in comps.iter().enumerate() {
        let t = v.read_tree(&index, &tree).unwrap();
        let n = t.find(comp.as_os_str().as_bytes()).unwrap().clone();
        if i + 1 < comps.len() {
            tree = n.subtree.unwrap();
        }
        node = Some(n);
    }
    let n = node.unwrap();
    let id: Id = n.subtree.unwrap_or_else(|| n.content[0]);
    let loc = index.get(&id).unwrap();
    let pack = PathBuf::from(&c.vault).join(lifeboat_vault::pack::pack_path(&loc.pack));
    (pack, loc.entry.offset, loc.entry.length)
}

/// A.3: with the tree blob of the restored directory itself damaged,
/// `--overwrite if-changed --delete` keeps every file below it on disk (the
/// intact copies the point holds and a file the point does not know), names
/// the directory in the text and the JSON report, exits 3, and still deletes
/// in the directories it can read.
#[test]
fn delete_never_removes_what_is_below_an_unreadable_tree() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    let dir = src.join("dir");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..5 {
        std::fs::write(dir.join(format!("f{i}.txt")), format!("file {i}\n")).unwrap();
    }
    std::fs::write(src.join("top.txt"), "top\n").unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    c.ok(&["backup", "files", s(&src)]);
    let id = "latest".to_string();
    let to = t.path().join("out");
    c.ok(&["restore", "files", &id, "--to", s(&to)]);
    let out_dir = restored(&to, &dir);
    std::fs::write(out_dir.join("unknown.txt"), "not in the point\n").unwrap();
    std::fs::write(restored(&to, &src).join("stray.txt"), "stray\n").unwrap();
    let (pack, off, len) = blob_of(&c, &dir);
    lifeboat_testkit::flip_byte(&pack, (off + len / 2) as i64);

    let args = [
        "restore",
        "files",
        &id,
        "--to",
        s(&to),
        "--overwrite",
        "if-changed",
        "--delete",
    ];
    let o = c.run(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    for i in 0..5 {
        let f = out_dir.join(format!("f{i}.txt"));
        assert_eq!(
            std::fs::read_to_string(&f).ok().as_deref(),
            Some(format!("file {i}\n").as_str()),
            "{} was deleted or changed:\n{err}",
            f.display()
        );
    }
    assert!(out_dir.join("unknown.txt").exists(), "{err}");
    assert!(
        err.contains(&format!("--delete left {} alone", out_dir.display())),
        "{err}"
    );
    assert!(
        !restored(&to, &src).join("stray.txt").exists(),
        "--delete still acts where the point's tree can be read"
    );

    let mut a = args.to_vec();
    a.push("--json");
    let o = c.run(&a);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let dir_s = out_dir.display().to_string();
    assert_eq!(j["not_deleted"], serde_json::json!([dir_s]), "{j}");
    assert!(
        j["damaged"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with(&dir_s)),
        "{j}"
    );
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 6);
}

