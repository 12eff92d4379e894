//! `vault stats`: what a vault holds and how well it deduplicates and compresses.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Vault;
use crate::error::Result;
use crate::index::Index;

/// Figures of one vault.
#[derive(Debug, Clone, Serialize)]
pub struct VaultStats {
    /// Readable points.
    pub points: usize,
    /// Points by kind.
    pub points_by_kind: BTreeMap<String, usize>,
    /// Damaged points (not counted above).
    pub points_damaged: usize,
    /// Σ logical size of the points (what restoring each of them would write).
    pub logical_bytes: u64,
    /// Σ plaintext length of the distinct blobs stored (live packs).
    pub unique_bytes: u64,
    /// Σ stored length of those blobs (compressed and sealed).
    pub blob_bytes: u64,
    /// Bytes of every object under `packs/`.
    pub stored_bytes: u64,
    /// logical / unique: how many times each stored byte is used.
    pub dedup_ratio: f64,
    /// unique / blob: what compression saves.
    pub compression_ratio: f64,
    /// logical / stored.
    pub total_ratio: f64,
    /// Pack objects.
    pub packs: usize,
    /// Packs marked obsolete (waiting for prune).
    pub packs_obsolete: usize,
    /// Distinct blobs.
    pub blobs: usize,
    /// Index files.
    pub index_files: usize,
    /// Bytes of the index files.
    pub index_bytes: u64,
    /// Points under an unexpired retention lock.
    pub locked_points: usize,
    /// Of those, in compliance mode.
    pub locked_compliance: usize,
    /// The earliest date a locked point unlocks.
    pub earliest_unlock: Option<DateTime<Utc>>,
    /// The latest date a locked point unlocks.
    pub latest_unlock: Option<DateTime<Utc>>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Computes the figures from the point, pack and index listings and the
/// index (no pack is read).
pub fn stats(vault: &Vault, index: &Index, now: DateTime<Utc>) -> Result<VaultStats> {
    let (points, damaged) = vault.list_points()?;
    let mut by_kind = BTreeMap::new();
    let mut logical = 0;
    let (mut locked, mut compliance) = (0, 0);
    let (mut earliest, mut latest) = (None::<DateTime<Utc>>, None::<DateTime<Utc>>);
    for (_, p) in &points {
        *by_kind.entry(p.kind.clone()).or_insert(0) += 1;
        logical += p.summary.size;
        if let Some(r) = p.retention.as_ref().filter(|r| r.retain_until > now) {
            locked += 1;
            if r.mode == crate::point::LockMode::Compliance {
                compliance += 1;
            }
            earliest = Some(earliest.map_or(r.retain_until, |e| e.min(r.retain_until)));
            latest = Some(latest.map_or(r.retain_until, |e| e.max(r.retain_until)));
        }
    }
    let packs = vault.storage().list("packs/")?;
    let stored: u64 = packs.iter().map(|l| l.size).sum();
    let index_files = vault.storage().list("index/")?;
    let (mut unique, mut sealed, mut blobs) = (0u64, 0u64, 0usize);
    for id in index.blob_ids() {
        if let Some(loc) = index.get(&id) {
            unique += loc.entry.raw_length as u64;
            sealed += loc.entry.length as u64;
            blobs += 1;
        }
    }
    Ok(VaultStats {
        points: points.len(),
        points_by_kind: by_kind,
        points_damaged: damaged.len(),
        logical_bytes: logical,
        unique_bytes: unique,
        blob_bytes: sealed,
        stored_bytes: stored,
        dedup_ratio: ratio(logical, unique),
        compression_ratio: ratio(unique, sealed),
        total_ratio: ratio(logical, stored),
        packs: packs.len(),
        packs_obsolete: index.marks().len(),
        blobs,
        index_files: index_files.len(),
        index_bytes: index_files.iter().map(|l| l.size).sum(),
        locked_points: locked,
        locked_compliance: compliance,
        earliest_unlock: earliest,
        latest_unlock: latest,
    })
}
