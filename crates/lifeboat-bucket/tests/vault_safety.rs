//! Bucket snapshots and restores against hostile or damaged state: a parent
//! point whose blobs prune marked (B.11), a destination bucket with a planted
//! symbolic link or a hostile point (A.3), the staging directory left in a
//! restored bucket (D.28). Real directory buckets, a real vault.

use std::path::Path;
use std::sync::atomic::AtomicU64;

use lifeboat_bucket::Bucket;
use lifeboat_bucket::restore::{RestoreOptions, restore};
use lifeboat_bucket::snapshot::{Counters, SnapshotOptions, snapshot};
use lifeboat_testkit::{pseudo_random, tempdir};
use lifeboat_vault::crypto::KdfParams;
use lifeboat_vault::index::{IndexFile, ObsoleteMark, index_path};
use lifeboat_vault::pack::pack_path;
use lifeboat_vault::tree::{Node, NodeKind, Tree};
use lifeboat_vault::vault::InitOptions;
use lifeboat_vault::{BackupWriter, BlobType, Location, RecoveryPoint, Vault};

fn vault(dir: &Path) -> Vault {
    let opts = InitOptions {
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    Vault::init(&Location::Dir(dir.to_path_buf()), b"pw", &opts).unwrap()
}

fn bucket(dir: &Path, create: bool) -> Bucket {
    Bucket::open_address(&format!("file://{}", dir.display()), create).unwrap()
}

fn source(dir: &Path) {
    for i in 0..12u64 {
        let p = dir.join(format!("static/{}/f-{i}.js", i % 3));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, pseudo_random(i, 1000 + 7000 * i as usize)).unwrap();
    }
    std::fs::write(dir.join("index.html"), b"<h1>shop</h1>").unwrap();
}

fn diff_r(a: &Path, b: &Path) -> (bool, String) {
    let o = std::process::Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn a_parent_whose_blobs_prune_marked_is_not_reused() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    source(&src);
    let v = vault(&t.path().join("vault"));
    let b = bucket(&src, false);
    snapshot(&v, &b, &SnapshotOptions::default(), &Counters::default()).unwrap();
    // Prune's first phase: the parent's data packs are marked obsolete.
    let idx = v.load_index().unwrap();
    let data_packs: Vec<_> = idx
        .packs()
        .iter()
        .filter(|(_, e)| e.iter().any(|e| e.blob_type == BlobType::Data))
        .map(|(p, _)| *p)
        .collect();
    assert!(!data_packs.is_empty());
    let marks = IndexFile {
        packs: Vec::new(),
        marks: data_packs
            .iter()
            .map(|p| ObsoleteMark {
                pack: *p,
                marked_at: 0,
                blockers: Some(Vec::new()),
            })
            .collect(),
    };
    let (name, stored) = marks.seal(v.key());
    v.storage().write(&index_path(&name), stored).unwrap();
    // The next snapshot must not reuse nodes whose blobs are in marked packs.
    let c = Counters::default();
    let second = snapshot(&v, &b, &SnapshotOptions::default(), &c).unwrap();
    assert_eq!(
        c.objects_read.load(std::sync::atomic::Ordering::Relaxed),
        13,
        "every object whose blobs are not live is read again"
    );
    // Prune's second phase deletes the marked packs: the new point is complete.
    for p in &data_packs {
        v.storage().remove(&pack_path(p)).unwrap();
    }
    let to = t.path().join("restored");
    let rep = restore(
        &v,
        &second.id,
        &bucket(&to, true),
        &RestoreOptions::default(),
        &AtomicU64::new(0),
    )
    .unwrap();
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    let (same, out) = diff_r(&src, &to);
    assert!(same, "{out}");
}

#[test]
fn a_restored_directory_bucket_is_identical_to_its_source() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    source(&src);
    let v = vault(&t.path().join("vault"));
    let r = snapshot(
        &v,
        &bucket(&src, false),
        &SnapshotOptions::default(),
        &Counters::default(),
    )
    .unwrap();
    let to = t.path().join("restored");
    let rep = restore(
        &v,
        &r.id,
        &bucket(&to, true),
        &RestoreOptions::default(),
        &AtomicU64::new(0),
    )
    .unwrap();
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    let (same, out) = diff_r(&src, &to);
    assert!(same, "no staging directory or other leftover: {out}");
}

#[test]
fn a_symlink_planted_in_the_destination_is_never_written_through() {
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    source(&src);
    let v = vault(&t.path().join("vault"));
    let r = snapshot(
        &v,
        &bucket(&src, false),
        &SnapshotOptions::default(),
        &Counters::default(),
    )
    .unwrap();
    let to = t.path().join("dest");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(outside.join("1")).unwrap();
    std::fs::create_dir_all(&to).unwrap();
    std::os::unix::fs::symlink(&outside, to.join("static")).unwrap();
    let rep = restore(
        &v,
        &r.id,
        &bucket(&to, true),
        &RestoreOptions::default(),
        &AtomicU64::new(0),
    )
    .unwrap();
    let below: Vec<_> = walk(&outside);
    assert_eq!(
        below,
        vec![outside.join("1")],
        "nothing is written through the link"
    );
    assert_eq!(rep.failed.len(), 12, "{:?}", rep.failed);
    assert!(
        rep.failed.iter().all(|f| f.contains("symbolic link")),
        "{:?}",
        rep.failed
    );
    assert_eq!(
        std::fs::read(to.join("index.html")).unwrap(),
        b"<h1>shop</h1>"
    );
    // Deleting through the link deletes nothing either.
    std::fs::write(outside.join("1/keep.txt"), b"keep").unwrap();
    let b = bucket(&to, false);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(b.delete("static/1/keep.txt"))
        .unwrap();
    assert!(outside.join("1/keep.txt").exists());
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
    }
    out.sort();
    out
}

#[test]
fn a_hostile_point_never_writes_outside_the_destination() {
    let t = tempdir().unwrap();
    let v = vault(&t.path().join("vault"));
    let w = BackupWriter::start(&v, "backup").unwrap();
    let (content, _) = w.save_stream(&b"escaped"[..], |_| {}).unwrap();
    let file = |name: &str| Node {
        name: name.into(),
        kind: NodeKind::File,
        size: 7,
        content: content.clone(),
        ..Node::default()
    };
    let inner = w
        .save_tree(&Tree {
            nodes: vec![file("escaped.txt")],
        })
        .unwrap();
    let dir = |name: &str| Node {
        name: name.into(),
        kind: NodeKind::Dir,
        subtree: Some(inner),
        ..Node::default()
    };
    let root = w
        .save_tree(&Tree {
            nodes: vec![
                dir(".."),
                dir("a/../.."),
                file("../up.txt"),
                file("/abs.txt"),
                file("ok.txt"),
            ],
        })
        .unwrap();
    let id = w
        .commit(&RecoveryPoint::new("bucket:hostile", "bucket", root))
        .unwrap();
    let to = t.path().join("deep/dest");
    let rep = restore(
        &v,
        &id,
        &bucket(&to, true),
        &RestoreOptions::default(),
        &AtomicU64::new(0),
    )
    .unwrap();
    assert_eq!(rep.objects, 1, "only ok.txt: {:?}", rep.failed);
    assert_eq!(rep.failed.len(), 4, "{:?}", rep.failed);
    for p in ["deep/escaped.txt", "escaped.txt", "deep/up.txt", "abs.txt"] {
        assert!(!t.path().join(p).exists(), "{p} was written outside");
    }
    assert!(!Path::new("/abs.txt").exists());
    let (same, _) = diff_r(&to, &to);
    assert!(same);
}
