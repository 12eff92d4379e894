//! Picking up after a writer that was interrupted or killed.
//!
//! A killed backup leaves packs no index file names (it indexes every 32
//! packs and at the end) and, on a directory vault, half-written files in
//! `tmp/`. The next writer, once it holds its lock and has loaded the index:
//!
//! ```text
//! list packs → U = packs the index does not know
//! list locks → another writer or a prune is live?  → leave U alone
//!              (U may be that writer's packs in flight, or prune's garbage)
//!            → else read the headers of U, write one index file naming them,
//!              and deduplicate against them (the killed run's data is reused)
//! tmp/: remove files older than 60 s when no other lock is live, else older
//!       than an hour (a live writer's staging file is younger than that)
//! ```
//! Packs are listed *before* the locks: a writer that is live at the lock
//! listing is seen, and one that started after it cannot own a listed pack.

use std::time::Duration;

use rayon::prelude::*;

use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::index::{Index, IndexFile, index_path};
use crate::lock::{READER_KINDS, live_locks};
use crate::pack::{PackEntry, list_packs, read_header};
use crate::vault::Vault;

/// Indexes the packs of dead writers into `index`; returns how many.
pub(crate) fn adopt_unindexed(vault: &Vault, index: &mut Index, own: &Id) -> Result<usize> {
    let storage = vault.storage();
    let (packs, _) = list_packs(storage)?;
    let unknown: Vec<(Id, u64)> = packs
        .into_iter()
        .filter(|(p, _)| !index.packs().contains_key(p))
        .collect();
    let others = live_locks(storage)?
        .into_iter()
        .filter(|(i, _)| i != own)
        .collect::<Vec<_>>();
    clean_tmp(vault, others.is_empty());
    if unknown.is_empty()
        || others
            .iter()
            .any(|(_, l)| l.exclusive || !READER_KINDS.contains(&l.kind.as_str()))
    {
        return Ok(0);
    }
    let read: Vec<(Id, Result<Vec<PackEntry>>)> = unknown
        .par_iter()
        .map(|(p, size)| (*p, read_header(storage, vault.key(), p, *size)))
        .collect();
    let mut file = IndexFile::default();
    for (p, r) in read {
        match r {
            Ok(entries) => file.packs.push((p, entries)),
            Err(VaultError::Missing { .. }) => {} // removed meanwhile
            Err(e) => tracing::warn!(
                "pack {} is in no index and its header cannot be read ({e}); prune will remove it",
                p.short()
            ),
        }
    }
    if file.packs.is_empty() {
        return Ok(0);
    }
    let (name, stored) = file.seal(vault.key());
    storage.write(&index_path(&name), stored)?;
    let n = file.packs.len();
    tracing::info!("indexed {n} pack(s) an interrupted run had stored; their data is reused");
    for (p, entries) in file.packs {
        index.add_pack(p, entries);
    }
    Ok(n)
}

/// Removes staging leftovers of killed writes (directory vaults only).
fn clean_tmp(vault: &Vault, alone: bool) {
    let crate::storage::Location::Dir(root) = vault.storage().loc() else {
        return;
    };
    let age = if alone {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(3600)
    };
    crate::storage::remove_old_files(&root.join("tmp"), age);
}
