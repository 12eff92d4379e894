//! The index: which pack holds which blob, and which packs prune has marked
//! obsolete.
//!
//! Index files are stored at `index/<64 hex>` (BLAKE3 of the stored bytes); each
//! is a sealed box (aad `lifeboat:index`) of zstd of:
//! ```text
//! "LBIX" ‖ u8 version=1
//! u32le P, then P times: pack id[32] ‖ u32le E ‖ E × (u8 type ‖ u8 flags ‖ id[32] ‖ u32le offset ‖ u32le length ‖ u32le raw length)
//! u32le M, then M times: pack id[32] ‖ i64le marked-at (unix s) ‖ u8 has-blockers ‖ u32le B ‖ B × lock id[32]
//! ```
//! The index of a vault is the union of all its index files; a pack marked in
//! any file is obsolete (see the format spec, "prune").

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::crypto::MasterKey;
use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::pack::{BlobType, PackEntry};
use crate::storage::Storage;

const AAD: &[u8] = b"lifeboat:index";

/// How often [`Index::load`] lists again when files vanish under it.
const LOAD_ATTEMPTS: usize = 8;

/// Prune's mark on a pack that no recovery point needs any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsoleteMark {
    /// The pack.
    pub pack: Id,
    /// When prune marked it (unix seconds, prune host's clock; informational).
    pub marked_at: i64,
    /// Backup locks that were alive after the mark was written; the pack may be
    /// deleted only when none of them is. `None` until prune recorded them.
    pub blockers: Option<Vec<Id>>,
}

/// The decoded content of one index file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Packs and their blobs.
    pub packs: Vec<(Id, Vec<PackEntry>)>,
    /// Obsolete marks.
    pub marks: Vec<ObsoleteMark>,
}

struct Reader<'a> {
    b: &'a [u8],
    what: &'a str,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.b.len() < n {
            return Err(VaultError::corrupt(self.what, "index file ends early"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn id(&mut self) -> Result<Id> {
        Ok(Id(self.take(32)?.try_into().expect("32")))
    }
}

impl IndexFile {
    /// Encodes, compresses and seals; returns (name, stored bytes).
    pub fn seal(&self, key: &MasterKey) -> (Id, Vec<u8>) {
        let b = self.encode();
        let z = zstd::bulk::compress(&b, 3).expect("zstd compresses in memory");
        let stored = key.seal(AAD, &z);
        (Id::of_stored(&stored), stored)
    }

    /// The plaintext encoding (before compression and sealing).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"LBIX");
        b.push(1);
        b.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for (pack, entries) in &self.packs {
            b.extend_from_slice(&pack.0);
            b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
            for e in entries {
                b.push(e.blob_type.code());
                b.push(e.flags);
                b.extend_from_slice(&e.id.0);
                b.extend_from_slice(&e.offset.to_le_bytes());
                b.extend_from_slice(&e.length.to_le_bytes());
                b.extend_from_slice(&e.raw_length.to_le_bytes());
            }
        }
        b.extend_from_slice(&(self.marks.len() as u32).to_le_bytes());
        for m in &self.marks {
            b.extend_from_slice(&m.pack.0);
            b.extend_from_slice(&m.marked_at.to_le_bytes());
            match &m.blockers {
                None => {
                    b.push(0);
                    b.extend_from_slice(&0u32.to_le_bytes());
                }
                Some(list) => {
                    b.push(1);
                    b.extend_from_slice(&(list.len() as u32).to_le_bytes());
                    for l in list {
                        b.extend_from_slice(&l.0);
                    }
                }
            }
        }
        b
    }

    /// Verifies, opens and decodes a stored index file.
    pub fn open(key: &MasterKey, name: &Id, stored: &[u8]) -> Result<IndexFile> {
        let what = format!("index/{name}");
        if Id::of_stored(stored) != *name {
            return Err(VaultError::corrupt(
                &what,
                "content does not match its name",
            ));
        }
        let z = key.open(AAD, stored, &what)?;
        let b = zstd::stream::decode_all(&z[..])
            .map_err(|e| VaultError::corrupt(&what, format!("zstd: {e}")))?;
        IndexFile::decode(&b, &what)
    }

    /// Decodes an index file's plaintext (after opening and decompressing).
    pub fn decode(b: &[u8], what: &str) -> Result<IndexFile> {
        let mut r = Reader { b, what };
        if r.take(4)? != b"LBIX" {
            return Err(VaultError::corrupt(what, "bad magic"));
        }
        let v = r.u8()?;
        if v != 1 {
            return Err(VaultError::corrupt(
                what,
                format!("unknown index version {v}"),
            ));
        }
        let np = r.u32()? as usize;
        let mut packs = Vec::with_capacity(np.min(1 << 16));
        for _ in 0..np {
            let pack = r.id()?;
            let ne = r.u32()? as usize;
            let mut entries = Vec::with_capacity(ne.min(1 << 16));
            for _ in 0..ne {
                let t = r.u8()?;
                let blob_type = BlobType::from_code(t)
                    .ok_or_else(|| VaultError::corrupt(what, format!("unknown blob type {t}")))?;
                let flags = r.u8()?;
                let id = r.id()?;
                entries.push(PackEntry {
                    blob_type,
                    flags,
                    id,
                    offset: r.u32()?,
                    length: r.u32()?,
                    raw_length: r.u32()?,
                });
            }
            packs.push((pack, entries));
        }
        let nm = r.u32()? as usize;
        let mut marks = Vec::with_capacity(nm.min(1 << 16));
        for _ in 0..nm {
            let pack = r.id()?;
            let marked_at = r.i64()?;
            let has = r.u8()?;
            let nb = r.u32()? as usize;
            if has > 1 || (has == 0 && nb > 0) {
                return Err(VaultError::corrupt(
                    what,
                    "bad blockers of an obsolete mark",
                ));
            }
            let mut list = Vec::with_capacity(nb.min(1 << 10));
            for _ in 0..nb {
                list.push(r.id()?);
            }
            marks.push(ObsoleteMark {
                pack,
                marked_at,
                blockers: (has == 1).then_some(list),
            });
        }
        if !r.b.is_empty() {
            return Err(VaultError::corrupt(what, "trailing bytes"));
        }
        Ok(IndexFile { packs, marks })
    }
}

/// Where a blob is.
#[derive(Debug, Clone, Copy)]
pub struct BlobLocation {
    /// The pack.
    pub pack: Id,
    /// The blob's entry in it.
    pub entry: PackEntry,
    /// Whether the pack is marked obsolete.
    pub obsolete: bool,
}

/// The in-memory union of all index files.
#[derive(Debug, Default)]
pub struct Index {
    blobs: HashMap<Id, BlobLocation>,
    packs: HashMap<Id, Vec<PackEntry>>,
    marks: HashMap<Id, ObsoleteMark>,
    files: Vec<Id>,
    damaged: Vec<VaultError>,
    /// Packs no readable index file lists, known by their own headers.
    recovered: HashMap<Id, Vec<PackEntry>>,
}

impl Index {
    /// Loads every index file of the vault. Damaged index files are skipped and
    /// kept in [`Index::damaged`]; the blobs they listed are then unknown.
    ///
    /// The view is consistent: every file of one listing is read. When a
    /// listed file vanishes while it is read (a prune replaced it), the load
    /// starts again from a fresh listing, so a reader never combines part of
    /// the old index files with part of the new ones (format spec, §11).
    pub fn load(storage: &Storage, key: &MasterKey) -> Result<Index> {
        let mut vanished = String::new();
        for _ in 0..LOAD_ATTEMPTS {
            match Self::load_listing(storage, key)? {
                Ok(idx) => return Ok(idx),
                Err(object) => {
                    tracing::debug!("index file {object} vanished while loading; listing again");
                    vanished = object;
                }
            }
        }
        Err(VaultError::Storage {
            op: "load index",
            path: vanished,
            message: format!(
                "the index changed {LOAD_ATTEMPTS} times while it was read (prunes running back to back?); run the command again"
            ),
            retryable: true,
            no_space: false,
        })
    }

    /// One attempt: `Ok(Err(path))` when a listed file vanished meanwhile.
    fn load_listing(
        storage: &Storage,
        key: &MasterKey,
    ) -> Result<std::result::Result<Index, String>> {
        let listed = storage.list("index/")?;
        crate::testhook::pause("index-listed");
        let loaded: Vec<(Id, Result<IndexFile>)> = listed
            .par_iter()
            .filter_map(|l| {
                let name = l.path.strip_prefix("index/").and_then(Id::parse)?;
                Some((
                    name,
                    storage
                        .read(&l.path)
                        .and_then(|b| IndexFile::open(key, &name, &b)),
                ))
            })
            .collect();
        let mut files = Vec::new();
        let mut ok = Vec::new();
        let mut damaged = Vec::new();
        for (name, r) in loaded {
            match r {
                Ok(f) => {
                    files.push(name);
                    ok.push(f);
                }
                Err(VaultError::Missing { object, .. }) => return Ok(Err(object)),
                Err(e) if e.is_damage() => damaged.push(e),
                Err(e) => return Err(e),
            }
        }
        let mut idx = Index {
            files,
            damaged,
            ..Index::default()
        };
        for f in &ok {
            for m in &f.marks {
                idx.add_mark(m.clone());
            }
        }
        for f in ok {
            for (pack, entries) in f.packs {
                idx.add_pack(pack, entries);
            }
        }
        idx.recover_from_pack_headers(storage, key)?;
        crate::testhook::pause("index-loaded");
        Ok(Ok(idx))
    }

    /// Packs no readable index file lists — a running or interrupted
    /// backup's, or those of a missing or damaged index file — are read by
    /// their headers, so that reads (restore, check, copy) lose nothing. Their
    /// blobs are never used for deduplication ([`Index::has_live`]), they are
    /// not in [`Index::packs`], and prune refuses to run while a point needs
    /// one of them (`lifeboat vault repair-index` writes them into an index).
    fn recover_from_pack_headers(&mut self, storage: &Storage, key: &MasterKey) -> Result<()> {
        let orphans: Vec<(Id, u64)> = crate::pack::list_packs(storage)?
            .0
            .into_iter()
            .filter(|(i, _)| !self.packs.contains_key(i))
            .collect();
        let found: Vec<(Id, Result<Vec<PackEntry>>)> = orphans
            .par_iter()
            .map(|(id, size)| (*id, crate::pack::read_header(storage, key, id, *size)))
            .collect();
        for (id, r) in found {
            match r {
                Ok(entries) => {
                    tracing::debug!(
                        "pack {} is in no readable index; using its header",
                        id.short()
                    );
                    self.add_recovered(id, entries);
                }
                Err(VaultError::Missing { .. }) => {} // removed meanwhile (prune)
                Err(e) => tracing::warn!(
                    "pack {} is in no readable index and its header is unreadable: {e}",
                    id.short()
                ),
            }
        }
        Ok(())
    }

    fn add_recovered(&mut self, pack: Id, entries: Vec<PackEntry>) {
        let obsolete = self.marks.contains_key(&pack);
        for e in &entries {
            self.blobs.entry(e.id).or_insert(BlobLocation {
                pack,
                entry: *e,
                obsolete,
            });
        }
        self.recovered.insert(pack, entries);
    }

    /// Whether a pack is known only by its header (no index file lists it).
    pub fn is_recovered(&self, pack: &Id) -> bool {
        self.recovered.contains_key(pack)
    }

    /// Packs known only by their headers, with their entries.
    pub fn recovered(&self) -> &HashMap<Id, Vec<PackEntry>> {
        &self.recovered
    }

    fn add_mark(&mut self, m: ObsoleteMark) {
        merge_mark(&mut self.marks, m);
    }

    /// Adds a pack's entries (a pack just written, or one read from a file).
    pub fn add_pack(&mut self, pack: Id, entries: Vec<PackEntry>) {
        let obsolete = self.marks.contains_key(&pack);
        self.recovered.remove(&pack);
        for e in &entries {
            let loc = BlobLocation {
                pack,
                entry: *e,
                obsolete,
            };
            match self.blobs.get(&e.id) {
                Some(old)
                    if (!old.obsolete || obsolete) && !self.recovered.contains_key(&old.pack) => {}
                _ => {
                    self.blobs.insert(e.id, loc);
                }
            }
        }
        self.packs.insert(pack, entries);
    }

    /// Where a blob is, preferring a pack that is not obsolete.
    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// Whether a blob is stored in a pack that is not obsolete (usable for dedup).
    pub fn has_live(&self, id: &Id) -> bool {
        self.blobs
            .get(id)
            .is_some_and(|l| !l.obsolete && !self.recovered.contains_key(&l.pack))
    }

    /// All indexed packs with their entries.
    pub fn packs(&self) -> &HashMap<Id, Vec<PackEntry>> {
        &self.packs
    }

    /// Obsolete marks by pack.
    pub fn marks(&self) -> &HashMap<Id, ObsoleteMark> {
        &self.marks
    }

    /// Names of the index files this index was loaded from.
    pub fn files(&self) -> &[Id] {
        &self.files
    }

    /// Index files that could not be read.
    pub fn damaged(&self) -> &[VaultError] {
        &self.damaged
    }

    /// Number of distinct blobs.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Ids of all known blobs.
    pub fn blob_ids(&self) -> HashSet<Id> {
        self.blobs.keys().copied().collect()
    }
}

/// Storage path of an index file.
pub fn index_path(id: &Id) -> String {
    format!("index/{id}")
}

/// Adds mark `m` to `marks`: a pack marked in several index files keeps its
/// first mark, with the blockers of all of them.
pub(crate) fn merge_mark(marks: &mut HashMap<Id, ObsoleteMark>, m: ObsoleteMark) {
    match marks.get_mut(&m.pack) {
        Some(old) => {
            if let Some(b) = m.blockers {
                let mut all = old.blockers.take().unwrap_or_default();
                all.extend(b);
                all.sort();
                all.dedup();
                old.blockers = Some(all);
            }
        }
        None => {
            marks.insert(m.pack, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_file_roundtrip_and_name_check() {
        let key = MasterKey::generate();
        let e = PackEntry {
            blob_type: BlobType::Tree,
            flags: 1,
            id: Id::random(),
            offset: 0,
            length: 77,
            raw_length: 50,
        };
        let f = IndexFile {
            packs: vec![(Id::random(), vec![e])],
            marks: vec![
                ObsoleteMark {
                    pack: Id::random(),
                    marked_at: 5,
                    blockers: None,
                },
                ObsoleteMark {
                    pack: Id::random(),
                    marked_at: 6,
                    blockers: Some(vec![Id::random()]),
                },
            ],
        };
        let (name, stored) = f.seal(&key);
        assert_eq!(IndexFile::open(&key, &name, &stored).unwrap(), f);
        let mut bad = stored.clone();
        bad[40] ^= 2;
        assert!(IndexFile::open(&key, &name, &bad).is_err());
        assert!(IndexFile::open(&key, &Id::of_stored(&bad), &bad).is_err());
    }
}
