//! Reading many blobs fast: the restore read plan.
//!
//! ```text
//! group wanted blobs by pack
//! for each pack, in parallel:
//!     read the byte range spanning the wanted blobs (one ranged read;
//!         several when the wanted blobs are a small part of a large span)
//!     open (decrypt, decompress, verify) each wanted blob
//!     hand it to every target that wants it
//! ```
//! A blob that cannot be read (unknown, missing pack, damaged) is handed over
//! as an error, so the caller can restore everything else and name what it lost.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::index::Index;
use crate::pack::{PackEntry, open_blob, pack_path};
use crate::vault::Vault;

/// Wanted blobs further apart than this are read with separate requests.
const MAX_GAP: u64 = 1024 * 1024;
/// One read covers at most this many bytes (unless one blob is larger): it
/// bounds memory to about this much per thread.
const MAX_SPAN: u64 = 4 * 1024 * 1024;

/// Reads every wanted blob once and calls `deliver(target, blob)` for each
/// target that wants it. `wanted` pairs a blob id with a caller's target.
pub fn fetch_blobs<T, F>(vault: &Vault, index: &Index, wanted: Vec<(Id, T)>, deliver: F)
where
    T: Send + Sync,
    F: Fn(&T, Result<&[u8]>) + Sync,
{
    let mut by_pack: HashMap<Id, HashMap<Id, (PackEntry, Vec<T>)>> = HashMap::new();
    let mut unknown: Vec<(Id, T)> = Vec::new();
    for (id, t) in wanted {
        match index.get(&id) {
            Some(loc) => by_pack
                .entry(loc.pack)
                .or_default()
                .entry(id)
                .or_insert_with(|| (loc.entry, Vec::new()))
                .1
                .push(t),
            None => unknown.push((id, t)),
        }
    }
    for (id, t) in &unknown {
        deliver(t, Err(VaultError::UnknownBlob(id.to_hex())));
    }
    type PackPlan<T> = (Id, Vec<(PackEntry, Vec<T>)>);
    let packs: Vec<PackPlan<T>> = by_pack
        .into_iter()
        .map(|(p, m)| {
            let mut v: Vec<_> = m.into_values().collect();
            v.sort_by_key(|(e, _)| e.offset);
            (p, v)
        })
        .collect();
    packs.par_iter().for_each(|(pack, blobs)| {
        let path = pack_path(pack);
        // Split into runs whose gaps are small, one ranged read per run.
        let mut start = 0;
        while start < blobs.len() {
            let mut end = start + 1;
            while end < blobs.len() {
                let prev = &blobs[end - 1].0;
                let gap = blobs[end].0.offset as u64 - (prev.offset as u64 + prev.length as u64);
                let span = blobs[end].0.offset as u64 + blobs[end].0.length as u64
                    - blobs[start].0.offset as u64;
                if gap > MAX_GAP || span > MAX_SPAN {
                    break;
                }
                end += 1;
            }
            let first = blobs[start].0.offset as u64;
            let last = &blobs[end - 1].0;
            let span = last.offset as u64 + last.length as u64 - first;
            match vault.storage().read_range(&path, first, span) {
                Ok(buf) => {
                    for (e, targets) in &blobs[start..end] {
                        let s = (e.offset as u64 - first) as usize;
                        let r = open_blob(vault.key(), e, &buf[s..s + e.length as usize], &path);
                        for t in targets {
                            deliver(t, r.as_deref().map_err(clone_err));
                        }
                    }
                }
                Err(err) => {
                    for (_, targets) in &blobs[start..end] {
                        for t in targets {
                            deliver(t, Err(clone_err(&err)));
                        }
                    }
                }
            }
            start = end;
        }
    });
}

fn clone_err(e: &VaultError) -> VaultError {
    match e {
        VaultError::Corrupt { object, reason } => VaultError::Corrupt {
            object: object.clone(),
            reason: reason.clone(),
        },
        VaultError::Missing { object, reason } => VaultError::Missing {
            object: object.clone(),
            reason: reason.clone(),
        },
        VaultError::UnknownBlob(b) => VaultError::UnknownBlob(b.clone()),
        other => VaultError::Storage {
            op: "read",
            path: String::new(),
            message: other.to_string(),
            retryable: other.is_retryable(),
            no_space: false,
        },
    }
}
