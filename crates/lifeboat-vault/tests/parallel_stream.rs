//! One large stream stored on all cores gives exactly the blobs and ids of
//! the sequential path, and every blob reads back.

use lifeboat_vault::vault::InitOptions;
use lifeboat_vault::writer::PARALLEL_BATCH;
use lifeboat_vault::{BackupWriter, Location, Vault};

#[test]
fn a_stream_stored_in_parallel_equals_the_sequential_one() {
    let t = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        kdf: lifeboat_vault::crypto::KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let v = Vault::init(&Location::Dir(t.path().join("v")), b"pw", &opts).unwrap();
    // More than two batches, and an end that does not fall on a batch edge.
    let mut data = lifeboat_testkit::pseudo_random(7, 2 * PARALLEL_BATCH + 5_000_123);
    data[PARALLEL_BATCH..PARALLEL_BATCH + 3_000_000].fill(0);
    let w = BackupWriter::start(&v, "backup").unwrap();
    let (seq, n1) = w.save_stream(&data[..], |_| {}).unwrap();
    let mut seen = 0;
    let (par, n2) = w.save_stream_parallel(&data[..], |n| seen += n).unwrap();
    assert_eq!(n1, data.len() as u64);
    assert_eq!((n2, seen), (n1, n1));
    // Several chunks per batch (three batches). The cuts follow the vault's
    // keyed seed, random per vault: about 1 MiB on average, so this stream
    // of 21 MB gives 10 to 20; more than 6 holds for any seed.
    assert!(seq.len() > 6, "several chunks per batch: {}", seq.len());
    assert_eq!(par, seq);
    // A second writer stores the stream in parallel only: it reads back whole.
    drop(w);
    let w = BackupWriter::start(&v, "backup").unwrap();
    let (par, _) = w.save_stream_parallel(&data[..], |_| {}).unwrap();
    w.flush().unwrap();
    let index = v.load_index().unwrap();
    let mut back = Vec::new();
    for id in &par {
        back.extend(v.read_blob(&index, id).unwrap());
    }
    assert!(back == data, "the blobs read back differ from the stream");
}
