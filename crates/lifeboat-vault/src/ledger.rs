//! The copy ledger: which blob of a source vault is which blob of this vault.
//!
//! Blob ids are keyed per vault, so the same plaintext has one id in the
//! source and another here. A copy learns the target id of a source blob only
//! by reading it; the ledger remembers the answer, so the next copy of a point
//! that shares the blob neither reads nor sends it again (format spec §16).
//!
//! ```text
//! ledger/<64 hex>   sealed box (aad "lifeboat:ledger") of zstd of
//!     "LBLG" ‖ u8 version=1 ‖ source vault id[32] ‖ u32le N ‖ N × (source id[32] ‖ target id[32])
//! ```
//! The ledger of a source is the union of its files. An entry is a fact about
//! two keys and a plaintext, true whether or not the target blob is stored:
//! a copy therefore always asks this vault's index whether the target blob is
//! there, and a missing, stale or damaged ledger costs reads, never data.
//! Files are written whenever enough entries are pending (and at the end of
//! each point), in any order relative to packs; a kill loses at most the
//! entries not yet written, which the next copy learns again by reading.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::crypto::MasterKey;
use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::storage::Storage;

const AAD: &[u8] = b"lifeboat:ledger";
const MAGIC: &[u8] = b"LBLG";
/// Ledger files a load merges into one when it finds more of them.
const COMPACT_ABOVE: usize = 64;

/// Storage path of a ledger file.
pub fn ledger_path(id: &Id) -> String {
    format!("ledger/{id}")
}

/// One ledger file's content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerFile {
    /// The source vault's id.
    pub source: Id,
    /// (source blob id, target blob id).
    pub entries: Vec<(Id, Id)>,
}

impl LedgerFile {
    /// Encodes, compresses and seals; returns (name, stored bytes).
    pub fn seal(&self, key: &MasterKey) -> (Id, Vec<u8>) {
        let mut b = Vec::with_capacity(41 + 64 * self.entries.len());
        b.extend_from_slice(MAGIC);
        b.push(1);
        b.extend_from_slice(&self.source.0);
        b.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (s, t) in &self.entries {
            b.extend_from_slice(&s.0);
            b.extend_from_slice(&t.0);
        }
        let z = zstd::bulk::compress(&b, 3).expect("zstd compresses in memory");
        let stored = key.seal(AAD, &z);
        (Id::of_stored(&stored), stored)
    }

    /// Verifies, opens and decodes a stored ledger file.
    pub fn open(key: &MasterKey, name: &Id, stored: &[u8]) -> Result<LedgerFile> {
        let what = ledger_path(name);
        if Id::of_stored(stored) != *name {
            return Err(VaultError::corrupt(
                &what,
                "content does not match its name",
            ));
        }
        let z = key.open(AAD, stored, &what)?;
        let b = zstd::bulk::decompress(&z, 64 << 20)
            .map_err(|e| VaultError::corrupt(&what, format!("zstd: {e}")))?;
        if b.len() < 41 || &b[..4] != MAGIC || b[4] != 1 {
            return Err(VaultError::corrupt(&what, "bad header"));
        }
        let source = Id(b[5..37].try_into().expect("32"));
        let n = u32::from_le_bytes(b[37..41].try_into().expect("4")) as usize;
        let body = &b[41..];
        if body.len() != n.saturating_mul(64) {
            return Err(VaultError::corrupt(
                &what,
                "length does not match its count",
            ));
        }
        let entries = body
            .chunks_exact(64)
            .map(|c| {
                (
                    Id(c[..32].try_into().expect("32")),
                    Id(c[32..].try_into().expect("32")),
                )
            })
            .collect();
        Ok(LedgerFile { source, entries })
    }
}

/// The ledger of one source vault, as held by a copy.
#[derive(Debug, Default)]
pub struct Ledger {
    source: Id,
    map: HashMap<Id, Id>,
    pending: Vec<(Id, Id)>,
}

impl Ledger {
    /// Loads the entries about `source` (a vault id) from `storage` (the
    /// target vault's). Damaged files are skipped with a warning: the ledger
    /// is a cache. When many files have accumulated, they are merged into
    /// one (the merged file is written before the old ones are removed).
    pub fn load(storage: &Storage, key: &MasterKey, source: Id) -> Result<Ledger> {
        let listed = storage.list("ledger/")?;
        let read: Vec<(Id, Result<LedgerFile>)> = listed
            .par_iter()
            .filter_map(|l| {
                let name = l.path.strip_prefix("ledger/").and_then(Id::parse)?;
                Some((
                    name,
                    storage
                        .read(&l.path)
                        .and_then(|b| LedgerFile::open(key, &name, &b)),
                ))
            })
            .collect();
        let mut ledger = Ledger {
            source,
            ..Ledger::default()
        };
        let mut mine = Vec::new();
        for (name, r) in read {
            match r {
                Ok(f) if f.source == source => {
                    mine.push(name);
                    ledger.map.extend(f.entries);
                }
                Ok(_) => {}
                Err(VaultError::Missing { .. }) => {} // merged meanwhile
                Err(e) if e.is_damage() => {
                    tracing::warn!("ignoring a damaged copy ledger file ({e}); copies re-learn it")
                }
                Err(e) => return Err(e),
            }
        }
        if mine.len() > COMPACT_ABOVE {
            let all = LedgerFile {
                source,
                entries: ledger.map.iter().map(|(s, t)| (*s, *t)).collect(),
            };
            let (name, stored) = all.seal(key);
            storage.write(&ledger_path(&name), stored)?;
            for old in mine.into_iter().filter(|o| *o != name) {
                storage.remove(&ledger_path(&old))?;
            }
        }
        Ok(ledger)
    }

    /// The target id of a source blob, when known.
    pub fn get(&self, source_blob: &Id) -> Option<Id> {
        self.map.get(source_blob).copied()
    }

    /// Notes a mapping (written by the next [`Ledger::flush`]).
    pub fn record(&mut self, source_blob: Id, target_blob: Id) {
        if self.map.insert(source_blob, target_blob) != Some(target_blob) {
            self.pending.push((source_blob, target_blob));
        }
    }

    /// Entries not yet written.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Number of known mappings.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no mapping is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Writes the pending entries as one ledger file.
    pub fn flush(&mut self, storage: &Storage, key: &MasterKey) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let f = LedgerFile {
            source: self.source,
            entries: std::mem::take(&mut self.pending),
        };
        let (name, stored) = f.seal(key);
        if let Err(e) = storage.write(&ledger_path(&name), stored) {
            self.pending = f.entries;
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_file_roundtrip_and_damage() {
        let key = MasterKey::generate();
        let f = LedgerFile {
            source: Id::random(),
            entries: vec![(Id::random(), Id::random()), (Id::random(), Id::random())],
        };
        let (name, stored) = f.seal(&key);
        assert_eq!(LedgerFile::open(&key, &name, &stored).unwrap(), f);
        let mut bad = stored.clone();
        bad[30] ^= 1;
        assert!(LedgerFile::open(&key, &name, &bad).is_err());
        assert!(LedgerFile::open(&key, &Id::of_stored(&bad), &bad).is_err());
        assert!(LedgerFile::open(&MasterKey::generate(), &name, &stored).is_err());
    }
}
