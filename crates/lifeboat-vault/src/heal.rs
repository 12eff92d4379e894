//! `vault heal --from OTHER`: replace a vault's damaged or missing packs'
//! blobs from another vault that holds copies of the same points.
//!
//! ```text
//! exclusive lock (no prune meanwhile) + a writer session (kind "heal")
//! every indexed, non-obsolete pack: missing → all its blobs are lost;
//!     else read it whole: blobs that open are stored again (salvaged),
//!     the others are lost
//! walk OTHER's points as a copy would (ledger: OTHER id → this vault's id;
//!     unknown ids are learned by reading), storing only lost blobs, no points
//! one index file: the new packs, and the bad packs marked obsolete
//! the bad packs whose every blob is stored again are removed when no other
//!     lock is live (else prune removes them)
//! ```
//! Readers prefer a blob's copy in a pack that is not obsolete, so a restore
//! reads the healed copy at once.

use std::collections::HashSet;

use rayon::prelude::*;
use serde::Serialize;

use crate::copy::{Copier, CopyOptions};
use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::lock::{LockGuard, live_locks};
use crate::pack::{list_packs, open_blob, pack_path};
use crate::vault::Vault;

/// What heal found and did.
#[derive(Debug, Default, Serialize)]
pub struct HealReport {
    /// Packs missing or damaged.
    pub packs_bad: usize,
    /// Blobs found lost (missing or damaged).
    pub blobs_lost: usize,
    /// Intact blobs of damaged packs stored again.
    pub blobs_salvaged: usize,
    /// Lost blobs stored again from the other vault.
    pub blobs_healed: u64,
    /// Lost blobs the other vault did not provide (ids).
    pub blobs_unhealed: Vec<String>,
    /// Bad packs removed.
    pub packs_removed: usize,
}

/// One pack as scanned: its id, its lost blobs, how many intact blobs were
/// stored again, whether it is bad.
type Scanned = (Id, Vec<Id>, usize, bool);

/// Heals `vault` from `other`.
pub fn heal(vault: &Vault, other: &Vault) -> Result<HealReport> {
    let exclusive = LockGuard::acquire(vault.storage(), "heal", true)?;
    let mut copier = Copier::start_as(other, vault, CopyOptions::default(), "heal")?;
    let mut rep = HealReport::default();
    let (listed, _) = list_packs(vault.storage())?;
    let index = copier.writer().index();
    let packs: Vec<(Id, Vec<crate::pack::PackEntry>)> = index
        .packs()
        .iter()
        .filter(|(p, _)| !index.marks().contains_key(*p))
        .map(|(p, e)| (*p, e.clone()))
        .collect();
    let scanned: Vec<Result<Scanned>> = packs
        .par_iter()
        .map(|(pack, entries)| {
            let path = pack_path(pack);
            if !listed.contains_key(pack) {
                return Ok((*pack, entries.iter().map(|e| e.id).collect(), 0, true));
            }
            let bytes = match vault.storage().read(&path) {
                Ok(b) => b,
                Err(VaultError::Missing { .. }) => {
                    return Ok((*pack, entries.iter().map(|e| e.id).collect(), 0, true));
                }
                Err(e) => return Err(e),
            };
            let name_ok = Id::of_stored(&bytes) == *pack;
            let mut lost = Vec::new();
            let mut opened = Vec::new();
            for e in entries {
                let (s, end) = (e.offset as usize, e.offset as usize + e.length as usize);
                match bytes
                    .get(s..end)
                    .ok_or_else(|| VaultError::corrupt(&path, "truncated"))
                    .and_then(|b| open_blob(vault.key(), e, b, &path))
                {
                    Ok(plain) => opened.push((e.blob_type, plain)),
                    Err(_) => lost.push(e.id),
                }
            }
            let bad = !name_ok || !lost.is_empty();
            let mut salvaged = 0;
            if bad {
                for (t, plain) in opened {
                    copier.writer().save_blob_again(t, &plain)?;
                    salvaged += 1;
                }
            }
            Ok((*pack, lost, salvaged, bad))
        })
        .collect();
    let mut bad_packs = Vec::new();
    let mut lost: HashSet<Id> = HashSet::new();
    for r in scanned {
        let (pack, l, salvaged, bad) = r?;
        rep.blobs_salvaged += salvaged;
        if bad {
            bad_packs.push(pack);
        }
        lost.extend(l);
    }
    rep.packs_bad = bad_packs.len();
    rep.blobs_lost = lost.len();
    if !lost.is_empty() {
        copier.set_lost(lost.clone());
        let (points, _) = other.list_points()?;
        for (id, p) in &points {
            copier.heal_point(id, p)?;
        }
    }
    let healed: HashSet<Id> = lost
        .iter()
        .filter(|b| copier.writer().saw(b))
        .copied()
        .collect();
    rep.blobs_healed = healed.len() as u64;
    rep.blobs_unhealed = lost
        .iter()
        .filter(|b| !healed.contains(b))
        .map(|b| b.to_hex())
        .collect();
    let now = chrono::Utc::now().timestamp();
    copier.writer().mark_obsolete(&bad_packs, now);
    copier.finish()?;
    // A bad pack is removed when all its blobs are stored again and no
    // other process may be reading it; else prune removes it later.
    let others = live_locks(vault.storage())?
        .into_iter()
        .any(|(i, _)| i != exclusive.id());
    if !others && rep.blobs_unhealed.is_empty() {
        for p in &bad_packs {
            if listed.contains_key(p) {
                vault.storage().remove(&pack_path(p))?;
                rep.packs_removed += 1;
            }
        }
    }
    exclusive.release()?;
    Ok(rep)
}
