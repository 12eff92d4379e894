//! Fuzzing the vault's parsers of untrusted bytes: pack headers (and whole
//! packs), index files, recovery points, tree blobs, key files, the config.
//! None may panic on any input. Each target runs for `LIFEBOAT_FUZZ_SECS`
//! (default 30 s; `scripts/fuzz` runs them longer); see
//! `lifeboat_testkit::fuzz`. Inputs that once crashed a parser are kept
//! below as regression tests.

use lifeboat_testkit::fuzz::fuzz;
use lifeboat_vault::chunker::Chunker;
use lifeboat_vault::crypto::{KdfParams, KeyFile, MasterKey};
use lifeboat_vault::index::{IndexFile, ObsoleteMark};
use lifeboat_vault::pack::{PackWriter, decode_header, parse_pack, seal_blob};
use lifeboat_vault::tree::{Node, NodeKind, Tree, Xattr};
use lifeboat_vault::vault::Config;
use lifeboat_vault::{BlobType, Id, RecoveryPoint};

const JSON_TOKENS: &[&[u8]] = &[
    b"{}",
    b"[]",
    b"null",
    b"true",
    b"false",
    b"\"\"",
    b"0",
    b"-1",
    b"1e400",
    b"-0",
    b"4294967295",
    b"4294967296",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b",",
    b":",
    b"\"",
    b"\"name\"",
    b"\"type\"",
    b"\"dir\"",
    b"\"file\"",
    b"\"symlink\"",
    b"\"content\"",
    b"\"subtree\"",
    b"\"extents\"",
    b"\"name_b64\":true",
    b"\"target_b64\":true",
    b"\"m_cost\"",
    b"\"t_cost\"",
    b"\"p_cost\"",
    b"\"chunker\"",
    b"\"avg\"",
    b"\"min\"",
    b"\"max\"",
    b"\"pack_size\"",
    b"\"compression\"",
    b"\"version\"",
    b"\"retention\"",
    b"\"time\"",
    b"\"2026-01-01T00:00:00Z\"",
    b"\"9999-12-31T23:59:59Z\"",
];

fn pack_seed(key: &MasterKey) -> (Vec<u8>, Vec<u8>) {
    let mut w = PackWriter::new();
    for (i, b) in [&b"first blob"[..], &[9u8; 3000][..], b"tree"]
        .iter()
        .enumerate()
    {
        let t = if i == 2 {
            BlobType::Tree
        } else {
            BlobType::Data
        };
        let id = key.blob_id(b);
        let (flags, sealed) = seal_blob(key, t, &id, b, 3);
        w.add(t, flags, id, &sealed, b.len() as u32);
    }
    let (_, bytes, entries) = w.finish(key);
    // The header's plaintext, as the format spec has it.
    let mut h = b"LBPK".to_vec();
    h.push(1);
    h.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in &entries {
        h.push(e.blob_type.code());
        h.push(e.flags);
        h.extend_from_slice(&e.id.0);
        h.extend_from_slice(&e.length.to_le_bytes());
        h.extend_from_slice(&e.raw_length.to_le_bytes());
    }
    (h, bytes)
}

#[test]
fn fuzz_pack_header_and_pack() {
    let key = MasterKey::generate();
    let (header, pack) = pack_seed(&key);
    fuzz("pack header", &[header, pack], &[b"LBPK"], 1 << 16, |b| {
        let _ = decode_header(b, "fuzz");
        if let Ok(entries) = parse_pack(&key, b, "fuzz") {
            let _ = lifeboat_vault::check::expected_pack_size(&entries);
        }
    });
}

fn index_seed() -> Vec<u8> {
    let e = |i: u8| lifeboat_vault::pack::PackEntry {
        blob_type: BlobType::Data,
        flags: 1,
        id: Id([i; 32]),
        offset: 40 * i as u32,
        length: 40,
        raw_length: 7,
    };
    IndexFile {
        packs: vec![(Id([1; 32]), vec![e(0), e(1)]), (Id([2; 32]), vec![e(2)])],
        marks: vec![
            ObsoleteMark {
                pack: Id([3; 32]),
                marked_at: 5,
                blockers: None,
            },
            ObsoleteMark {
                pack: Id([4; 32]),
                marked_at: -1,
                blockers: Some(vec![Id([5; 32])]),
            },
        ],
    }
    .encode()
}

#[test]
fn fuzz_index_file() {
    let key = MasterKey::generate();
    let seed = index_seed();
    let (name, stored) = IndexFile {
        packs: Vec::new(),
        marks: Vec::new(),
    }
    .seal(&key);
    fuzz(
        "index file",
        &[seed, stored.clone()],
        &[b"LBIX"],
        1 << 16,
        |b| {
            if let Ok(f) = IndexFile::decode(b, "fuzz") {
                // What decodes encodes back to the same bytes.
                assert_eq!(f.encode(), b);
            }
            let _ = IndexFile::open(&key, &name, b);
            let _ = IndexFile::open(&key, &Id::of_stored(b), b);
        },
    );
}

#[test]
fn fuzz_recovery_point() {
    let mut p = RecoveryPoint::new("files:host:/srv", "files", Id([7; 32]));
    p.tags = vec!["a".into()];
    p.paths = vec!["/srv".into()];
    let seed = serde_json::to_vec(&p).unwrap();
    fuzz("recovery point", &[seed], JSON_TOKENS, 1 << 14, |b| {
        if let Ok(p) = RecoveryPoint::decode(b, "fuzz") {
            let _ = p.is_locked(chrono::Utc::now(), false);
        }
    });
}

#[test]
fn fuzz_tree_blob() {
    let mut file = Node {
        name: "a file".into(),
        kind: NodeKind::File,
        mode: 0o644,
        size: 10,
        mtime_ns: -5,
        content: vec![Id([1; 32])],
        extents: Some(vec![(0, 4), (8, 2)]),
        xattrs: vec![Xattr {
            name: "user.x".into(),
            value: "AAEC".into(),
        }],
        ..Node::default()
    };
    file.attrs.insert("content-type".into(), "text/html".into());
    let mut link = Node {
        kind: NodeKind::Symlink,
        ..Node::default()
    };
    link.set_name_bytes(b"\xff\xfe raw");
    link.set_target_bytes(b"../\x80target");
    let dir = Node {
        name: "d".into(),
        kind: NodeKind::Dir,
        subtree: Some(Id([2; 32])),
        ..Node::default()
    };
    let seed = Tree {
        nodes: vec![file, link, dir],
    }
    .to_bytes();
    fuzz("tree blob", &[seed], JSON_TOKENS, 1 << 14, |b| {
        if let Ok(t) = Tree::from_bytes(b) {
            for n in &t.nodes {
                let _ = n.name_bytes();
                let _ = n.target_bytes();
            }
            let _ = t.find(b"a file");
            let _ = t.to_bytes();
        }
    });
}

#[test]
fn fuzz_key_file() {
    let key = MasterKey::generate();
    let kf = KeyFile::wrap(&key, b"pw", KdfParams::insecure_fast(), "label").unwrap();
    let seed = serde_json::to_vec_pretty(&kf).unwrap();
    fuzz("key file", &[seed], JSON_TOKENS, 1 << 12, |b| {
        let Ok(kf) = KeyFile::from_bytes(b, "fuzz") else {
            return;
        };
        // Cheap costs only, so the fuzzer stays fast; the bounds
        // themselves are checked by validate for every input.
        let p = kf.params;
        if kf.validate("fuzz").is_ok() && p.m_cost <= 2048 && p.t_cost <= 2 && p.p_cost <= 2 {
            let _ = kf.unwrap(b"pw", "fuzz");
        }
    });
}

#[test]
fn key_file_costs_are_bounded() {
    let key = MasterKey::generate();
    let mut kf = KeyFile::wrap(&key, b"pw", KdfParams::insecure_fast(), "").unwrap();
    for (m, t, p) in [
        (u32::MAX, 1, 1),
        (256, u32::MAX, 1),
        (256, 1, 1000),
        (8, 1, 2),
        (0, 1, 1),
    ] {
        kf.params = KdfParams {
            m_cost: m,
            t_cost: t,
            p_cost: p,
        };
        let e = kf.unwrap(b"pw", "keys/x").unwrap_err().to_string();
        assert!(e.contains("cost") && e.contains("keys/x"), "{e}");
    }
}

#[test]
fn fuzz_config() {
    let c = Config {
        format: "lifeboat-vault".into(),
        version: 2,
        id: "ab".repeat(32),
        created: "2026-01-01T00:00:00Z".into(),
        chunker: Default::default(),
        compression: 3,
        pack_size: 16 << 20,
        chunker_seed: None,
    };
    let seed = serde_json::to_vec_pretty(&c).unwrap();
    let data: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fuzz("config", &[seed], JSON_TOKENS, 1 << 12, |b| {
        let Ok(c) = serde_json::from_slice::<Config>(b) else {
            return;
        };
        if c.validate().is_ok() {
            // A config that validates must be usable: the chunker cuts.
            let mut n = 0;
            Chunker::new(c.chunker, 7)
                .for_each_chunk::<std::io::Error>(&data[..], &mut Vec::new(), |_| {
                    n += 1;
                    Ok(())
                })
                .unwrap();
            assert!(n > 0);
        }
    });
}

#[test]
fn configs_out_of_range_name_the_field() {
    let good = Config {
        format: "lifeboat-vault".into(),
        version: 2,
        id: "ab".repeat(32),
        created: String::new(),
        chunker: Default::default(),
        compression: 3,
        pack_size: 16 << 20,
        chunker_seed: None,
    };
    assert!(good.validate().is_ok());
    let mut c = good.clone();
    c.chunker.avg = 0;
    assert!(c.validate().unwrap_err().contains("chunker.avg"));
    let mut c = good.clone();
    c.chunker.min = c.chunker.max;
    assert!(c.validate().unwrap_err().contains("chunker.min"));
    // Found by fuzz_config: odd chunk sizes tripped FastCDC's assertions.
    let mut c = good.clone();
    c.chunker.min = 1001;
    assert!(c.validate().unwrap_err().contains("chunker.min"));
    let mut c = good.clone();
    c.pack_size = 0;
    assert!(c.validate().unwrap_err().contains("pack_size"));
    let mut c = good.clone();
    c.compression = -5;
    assert!(c.validate().unwrap_err().contains("compression"));
    let mut c = good;
    c.id = "zz".into();
    assert!(c.validate().unwrap_err().contains("id"));
}

/// Inputs the fuzzer found, kept as regressions.
#[test]
fn index_file_regressions() {
    // An obsolete mark saying "no blockers" but listing one: decoded as
    // having none, so it did not encode back to itself. Now refused.
    let mut b = b"LBIX\x01".to_vec();
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&[3; 32]);
    b.extend_from_slice(&5i64.to_le_bytes());
    b.push(0);
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&[4; 32]);
    assert!(IndexFile::decode(&b, "x").is_err());
    let n = b.len();
    b[n - 37] = 2; // has-blockers 2
    assert!(IndexFile::decode(&b, "x").is_err());
}
