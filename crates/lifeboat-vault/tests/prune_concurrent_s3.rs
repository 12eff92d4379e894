//! The two-phase prune scheme on an S3 vault (moto): the scenarios of
//! prune_concurrent.rs, through the same engine calls, on the other backend.

use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_vault::check::check;
use lifeboat_vault::prune::{PruneOptions, prune};
use lifeboat_vault::tree::{Node, Tree};
use lifeboat_vault::vault::InitOptions;
use lifeboat_vault::{BackupWriter, BlobType, Location, RecoveryPoint, Vault};

fn s3_vault(s3: &S3Server, bucket: &str) -> Vault {
    s3.create_bucket(bucket);
    let opts = InitOptions {
        kdf: lifeboat_vault::crypto::KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let loc = Location::parse(&s3.url(bucket, "v")).unwrap();
    Vault::init(&loc, b"pw", &opts).unwrap()
}

/// The S3 signer reads credentials from the environment, which a test may
/// not change in-process: without them, the test runs itself again in a
/// child process that has them. Returns whether the caller is that child (or
/// already has them) and should run the test body.
fn with_credentials(test: &str) -> bool {
    if CREDENTIALS
        .iter()
        .all(|(k, v)| std::env::var(k).as_deref() == Ok(v))
    {
        return true;
    }
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args([test, "--exact", "--nocapture", "--test-threads", "1"]);
    for (k, v) in CREDENTIALS {
        c.env(k, v);
    }
    let st = c.status().unwrap();
    assert!(st.success(), "{test} failed in its child process");
    false
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

fn pack_count(v: &Vault) -> usize {
    v.storage().list("packs/").unwrap().len()
}

#[test]
fn s3_prune_defers_deleting_what_a_running_backup_may_reference() {
    if !with_credentials("s3_prune_defers_deleting_what_a_running_backup_may_reference") {
        return;
    }
    let s3 = S3Server::start();
    let v = s3_vault(&s3, "prune-defer");
    let x = lifeboat_testkit::pseudo_random(1, 100_000);
    let w1 = BackupWriter::start(&v, "backup").unwrap();
    let p1 = point_with(&w1, &[&x]);
    let p1_id = w1.commit(&p1).unwrap();
    let packs_with_x = pack_count(&v);

    let w2 = BackupWriter::start(&v, "backup").unwrap();
    assert!(w2.has_blob(&v.key().blob_id(&x)));
    v.remove_point(&p1_id, false).unwrap();
    let rep = prune(&v, &PruneOptions::default()).unwrap();
    assert!(rep.marked >= 1, "{rep:?}");
    assert_eq!(rep.deleted_packs, 0, "backup 2 is running: {rep:?}");
    assert_eq!(pack_count(&v), packs_with_x);

    let p2 = point_with(&w2, &[&x]);
    let p2_id = w2.commit(&p2).unwrap();
    let rep = prune(&v, &PruneOptions::default()).unwrap();
    assert_eq!(rep.unmarked, packs_with_x, "{rep:?}");
    assert_eq!(rep.deleted_packs, 0);
    let idx = v.load_index().unwrap();
    assert_eq!(v.read_blob(&idx, &v.key().blob_id(&x)).unwrap(), x);
    assert!(check(&v, true, &|_| {}).unwrap().is_ok());

    v.remove_point(&p2_id, false).unwrap();
    let rep = prune(&v, &PruneOptions::default()).unwrap();
    assert!(rep.deleted_packs >= 1, "{rep:?}");
    assert!(check(&v, true, &|_| {}).unwrap().is_ok());
}
