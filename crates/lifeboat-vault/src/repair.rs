//! `repair-index`: write a new, complete index from the packs present, and
//! remove the broken and obsolete index files (as restic's `repair index`).
//!
//! ```text
//! exclusive lock (no prune runs meanwhile; backups may: their own index files stay)
//! list index files; open each          → readable ones are trusted per pack,
//!                                          damaged ones only removed at the end
//! list packs with their sizes
//! per pack on storage:
//!     a readable index lists it at the exact size → its entries
//!     else (no index, or a size mismatch)          → read its header
//!     header unreadable                            → reported; stays unindexed
//! index entries of packs that are gone             → dropped (reported)
//! marks of readable files, for packs still present → kept (with their blockers)
//! write the new index file; only then remove the index files read
//! ```
//! A crash at any step leaves a readable vault: the new index file is written
//! before any old one is removed, and the union of index files is the index.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::check::expected_pack_size;
use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::index::{IndexFile, ObsoleteMark, index_path, merge_mark};
use crate::lock::LockGuard;
use crate::pack::{PackEntry, list_packs, read_header};
use crate::vault::Vault;

/// What a repair did.
#[derive(Debug, Default, Serialize)]
pub struct RepairReport {
    /// Index files that opened.
    pub index_files_read: usize,
    /// Index files that were damaged (removed).
    pub index_files_damaged: usize,
    /// Packs on storage.
    pub packs: usize,
    /// Packs whose entries were taken from their own header (no index file
    /// listed them, or listed them at another size).
    pub packs_from_headers: usize,
    /// Packs whose header could not be read (they stay unindexed; `check --read-data` names them).
    pub packs_unreadable: Vec<String>,
    /// Packs an index file listed that are not on storage (their entries were dropped).
    pub packs_missing: usize,
    /// Blobs in the new index.
    pub blobs: usize,
    /// Name of the new index file.
    pub new_index: String,
    /// Index files removed.
    pub index_files_removed: usize,
}

/// Rebuilds the index from the packs present (see the module docs).
pub fn repair_index(vault: &Vault) -> Result<RepairReport> {
    let storage = vault.storage();
    let lock = LockGuard::acquire(storage, "repair-index", true)?;
    let mut rep = RepairReport::default();

    let listed_files: Vec<Id> = storage
        .list("index/")?
        .iter()
        .filter_map(|l| l.path.strip_prefix("index/").and_then(Id::parse))
        .collect();
    let opened: Vec<(Id, Result<IndexFile>)> = listed_files
        .par_iter()
        .map(|name| {
            let r = storage
                .read(&index_path(name))
                .and_then(|b| IndexFile::open(vault.key(), name, &b));
            (*name, r)
        })
        .collect();
    let mut known: HashMap<Id, Vec<PackEntry>> = HashMap::new();
    let mut marks: HashMap<Id, ObsoleteMark> = HashMap::new();
    let mut to_remove = Vec::new();
    for (name, r) in opened {
        match r {
            Ok(f) => {
                rep.index_files_read += 1;
                to_remove.push(name);
                for (pack, entries) in f.packs {
                    known.entry(pack).or_insert(entries);
                }
                for m in f.marks {
                    merge_mark(&mut marks, m);
                }
            }
            Err(VaultError::Missing { .. }) => {} // removed meanwhile
            Err(e) if e.is_damage() => {
                tracing::warn!("{e}; it will be replaced");
                rep.index_files_damaged += 1;
                to_remove.push(name);
            }
            Err(e) => return Err(e),
        }
    }

    let (packs, _) = list_packs(storage)?;
    rep.packs = packs.len();
    rep.packs_missing = known.keys().filter(|p| !packs.contains_key(*p)).count();
    let from_index = |id: &Id, size: u64| {
        known
            .get(id)
            .filter(|e| expected_pack_size(e) == size)
            .cloned()
    };
    let read: Vec<(Id, Result<Vec<PackEntry>>, bool)> = packs
        .par_iter()
        .map(|(id, size)| match from_index(id, *size) {
            Some(e) => (*id, Ok(e), false),
            None => (*id, read_header(storage, vault.key(), id, *size), true),
        })
        .collect();
    let mut new_index = IndexFile::default();
    for (id, r, from_header) in read {
        match r {
            Ok(entries) => {
                rep.packs_from_headers += usize::from(from_header);
                rep.blobs += entries.len();
                new_index.packs.push((id, entries));
            }
            Err(VaultError::Missing { .. }) => {} // removed meanwhile
            Err(e) => {
                tracing::warn!("pack {} stays unindexed: {e}", id.short());
                rep.packs_unreadable
                    .push(format!("{}: {e}", crate::pack::pack_path(&id)));
            }
        }
    }
    new_index.packs.sort_by_key(|(p, _)| *p);
    let present: std::collections::HashSet<Id> = new_index.packs.iter().map(|(p, _)| *p).collect();
    new_index.marks = marks
        .into_values()
        .filter(|m| present.contains(&m.pack))
        .collect();
    new_index.marks.sort_by_key(|m| m.pack);

    let (name, stored) = new_index.seal(vault.key());
    storage.write(&index_path(&name), stored)?;
    rep.new_index = name.to_hex();
    for f in to_remove {
        if f != name {
            storage.remove(&index_path(&f))?;
            rep.index_files_removed += 1;
        }
    }
    lock.release()?;
    Ok(rep)
}
