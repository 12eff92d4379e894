//! # lifeboat-vault — the vault engine
//!
//! A vault is a store of recovery points on a directory or an object store:
//! content-defined chunks (FastCDC, keyed seed) named by keyed BLAKE3,
//! deduplicated against an index, compressed with zstd, sealed with
//! XChaCha20-Poly1305, packed into immutable pack objects. Structure is stored as
//! tree blobs; a recovery point object, written last, names the root tree.
//! `docs/vault-format.md` is the normative description of every object.
//!
//! ```text
//! Vault::open(location, password)          config → key files (Argon2id) → master key
//! BackupWriter::start(&vault, "backup")    shared lock → index
//!   .save_stream(reader) / .save_tree()    chunk → id → dedup → zstd → seal → pack
//!   .commit(point)                         packs → index → point → unlock
//! fetch_blobs(&vault, &index, wanted, f)   pack-ordered, ranged, parallel reads
//! check(&vault, read_data)                 structure, and optionally every byte
//! forget / prune                           retention policy; two-phase safe delete
//! retention                                point locks, vault lock configuration
//! ```
//! The engine knows nothing of what is backed up: protectors build trees and
//! streams, and call these functions.

pub mod check;
pub mod chunker;
pub mod clock;
pub mod copy;
pub mod credentials;
pub mod crypto;
pub mod duration;
pub mod error;
pub mod fetch;
pub mod forget;
pub mod heal;
pub mod id;
pub mod index;
pub mod ledger;
pub mod lock;
pub mod objectlock;
pub mod openmetrics;
pub mod pack;
pub mod point;
pub mod private;
pub mod prune;
pub mod repair;
mod resume;
pub mod retention;
mod retention_session;
mod retention_store;
mod s3hint;
pub mod seed;
pub mod select;
pub mod stats;
pub mod storage;
pub mod testhook;
pub mod timeouts;
pub mod tree;
pub mod upgrade;
mod upload;
pub mod vault;
pub mod writer;

pub use credentials::S3Credentials;
pub use error::{Result, VaultError};
pub use id::Id;
pub use index::Index;
pub use pack::BlobType;
pub use point::{LockMode, RecoveryPoint, Retention, Summary};
pub use select::PointFilter;
pub use storage::{Location, Storage};
pub use tree::{Node, NodeKind, Tree};
pub use vault::{InitOptions, Vault};
pub use writer::BackupWriter;

/// This machine's host name.
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The user running this process.
pub fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()))
}
