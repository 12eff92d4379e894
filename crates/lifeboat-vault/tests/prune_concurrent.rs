//! The two-phase prune scheme: a backup that loaded the index before prune
//! marked a pack may still reference it, so prune must not delete it until
//! that backup is gone and a later listing shows the pack unneeded.

use lifeboat_vault::check::check;
use lifeboat_vault::prune::{PruneOptions, prune};
use lifeboat_vault::tree::{Node, Tree};
use lifeboat_vault::vault::InitOptions;
use lifeboat_vault::{BackupWriter, BlobType, Location, RecoveryPoint, Vault};

fn vault(dir: &std::path::Path) -> Vault {
    let opts = InitOptions {
        kdf: lifeboat_vault::crypto::KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    Vault::init(&Location::Dir(dir.join("v")), b"pw", &opts).unwrap()
}

fn point_with(w: &BackupWriter, blobs: &[&[u8]]) -> RecoveryPoint {
    let content = blobs
        .iter()
        .map(|b| w.save_blob(BlobType::Data, b).unwrap())
        .collect();
    let tree = Tree {
        nodes: vec![Node {
            name: "f".into(),
            content,
            ..Node::default()
        }],
    };
    RecoveryPoint::new("r", "files", w.save_tree(&tree).unwrap())
}

fn pack_count(dir: &std::path::Path) -> usize {
    lifeboat_testkit::files_below(&dir.join("v/packs")).len()
}

#[test]
fn prune_defers_deleting_what_a_running_backup_may_reference() {
    let t = tempfile::tempdir().unwrap();
    let v = vault(t.path());
    let x = lifeboat_testkit::pseudo_random(1, 100_000);

    // P1 holds blob x.
    let w1 = BackupWriter::start(&v, "backup").unwrap();
    let p1 = point_with(&w1, &[&x]);
    let p1_id = w1.commit(&p1).unwrap();
    let packs_with_x = pack_count(t.path());

    // Backup 2 starts: it has loaded the index in which x is live.
    let w2 = BackupWriter::start(&v, "backup").unwrap();
    assert!(w2.has_blob(&v.key().blob_id(&x)));

    // P1 is forgotten and prune runs while backup 2 is still going.
    v.remove_point(&p1_id, false).unwrap();
    let rep = prune(&v, &PruneOptions::default()).unwrap();
    assert!(rep.marked >= 1, "{rep:?}");
    assert_eq!(
        rep.deleted_packs, 0,
        "backup 2 is running: nothing may be deleted: {rep:?}"
    );
    assert_eq!(pack_count(t.path()), packs_with_x);

    // A backup that starts after the mark does not deduplicate against it.
    let w3 = BackupWriter::start(&v, "backup").unwrap();
    assert!(
        !w3.has_blob(&v.key().blob_id(&x)),
        "marked packs are not used for dedup"
    );
    drop(w3);

    // Backup 2 finishes, referencing x through its old view of the index.
    let p2 = point_with(&w2, &[&x]);
    let p2_id = w2.commit(&p2).unwrap();

    // The next prune sees that P2 needs the pack and unmarks it.
    let rep = prune(&v, &PruneOptions::default()).unwrap();
    assert_eq!(
        rep.unmarked, packs_with_x,
        "its data and tree packs: {rep:?}"
    );
    assert_eq!(rep.deleted_packs, 0);
    let idx = v.load_index().unwrap();
    assert_eq!(v.read_blob(&idx, &v.key().blob_id(&x)).unwrap(), x);
    assert!(check(&v, true, &|_| {}).unwrap().is_ok());

    // With P2 gone and no backup running, prune deletes at once.
    v.remove_point(&p2_id, false).unwrap();
    let rep = prune(&v, &PruneOptions::default()).unwrap();
    assert!(rep.deleted_packs >= 1, "{rep:?}");
    assert!(check(&v, true, &|_| {}).unwrap().is_ok());
    assert!(v.load_index().unwrap().get(&v.key().blob_id(&x)).is_none());
}

#[test]
fn deferred_marks_are_deleted_once_the_blocking_backup_is_gone() {
    let t = tempfile::tempdir().unwrap();
    let v = vault(t.path());
    let x = lifeboat_testkit::pseudo_random(2, 50_000);
    let y = lifeboat_testkit::pseudo_random(3, 50_000);
    let w1 = BackupWriter::start(&v, "backup").unwrap();
    let p1 = {
        let p = point_with(&w1, &[&x]);
        w1.commit(&p).unwrap()
    };
    let blocker = BackupWriter::start(&v, "backup").unwrap();
    v.remove_point(&p1, false).unwrap();
    let rep = prune(&v, &PruneOptions::default()).unwrap();
    assert_eq!(rep.deleted_packs, 0);
    assert!(rep.deferred >= 1);
    // The blocking backup ends without using x.
    let p = point_with(&blocker, &[&y]);
    blocker.commit(&p).unwrap();
    let rep = prune(&v, &PruneOptions::default()).unwrap();
    assert!(rep.deleted_packs >= 1, "{rep:?}");
    assert!(check(&v, true, &|_| {}).unwrap().is_ok());
}

#[test]
fn repack_keeps_needed_blobs_of_mostly_unused_packs() {
    let t = tempfile::tempdir().unwrap();
    let v = vault(t.path());
    let keep = lifeboat_testkit::pseudo_random(4, 10_000);
    let drop_ = lifeboat_testkit::pseudo_random(5, 200_000);
    let w = BackupWriter::start(&v, "backup").unwrap();
    let p1 = {
        let p = point_with(&w, &[&keep, &drop_]);
        w.commit(&p).unwrap()
    };
    let w = BackupWriter::start(&v, "backup").unwrap();
    let p2 = {
        let p = point_with(&w, &[&keep]);
        w.commit(&p).unwrap()
    };
    v.remove_point(&p1, false).unwrap();
    let rep = prune(&v, &PruneOptions::default()).unwrap();
    assert_eq!(rep.repacked, 1, "{rep:?}");
    assert!(rep.bytes_freed > 150_000, "{rep:?}");
    let idx = v.load_index().unwrap();
    assert_eq!(v.read_blob(&idx, &v.key().blob_id(&keep)).unwrap(), keep);
    assert!(idx.get(&v.key().blob_id(&drop_)).is_none());
    assert!(check(&v, true, &|_| {}).unwrap().is_ok());
    let _ = p2;
}

#[test]
fn prune_progress_counts_the_packs_it_deletes() {
    let t = tempfile::tempdir().unwrap();
    let v = vault(t.path());
    let w = BackupWriter::start(&v, "backup").unwrap();
    let x = lifeboat_testkit::pseudo_random(2, 100_000);
    let p = point_with(&w, &[&x]);
    let id = w.commit(&p).unwrap();
    v.remove_point(&id, false).unwrap();
    // No backup runs: prune marks and deletes in one run.
    let progress = lifeboat_vault::prune::PruneProgress::default();
    let rep = lifeboat_vault::prune::prune_with_progress(&v, &PruneOptions::default(), &progress)
        .unwrap();
    let deleted = (rep.deleted_packs + rep.deleted_garbage) as u64;
    assert!(deleted >= 1, "{rep:?}");
    assert_eq!(progress.get(), ("deleting packs", deleted, deleted));
}
