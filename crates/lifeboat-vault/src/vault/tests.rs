//! Unit tests of `vault.rs`.

use super::*;
use crate::crypto::KdfParams;

fn cheap() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            m_cost: 8,
            t_cost: 1,
            p_cost: 1,
        },
        ..InitOptions::default()
    }
}

fn set_version(dir: &std::path::Path, version: u32) {
    let p = dir.join("config");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    c["version"] = version.into();
    std::fs::write(&p, serde_json::to_vec(&c).unwrap()).unwrap();
}

#[test]
fn reads_older_versions_and_refuses_newer_ones() {
    let d = tempfile::tempdir().unwrap();
    let loc = Location::Dir(d.path().to_path_buf());
    let v = Vault::init(&loc, b"pw", &cheap()).unwrap();
    assert_eq!(v.config().version, FORMAT_VERSION);
    set_version(d.path(), 1);
    assert_eq!(Vault::open(&loc, b"pw").unwrap().config().version, 1);
    set_version(d.path(), FORMAT_VERSION + 1);
    match Vault::open(&loc, b"pw") {
        Err(VaultError::UnsupportedVersion {
            found, supported, ..
        }) => assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION)),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}
