//! `check`: prove the vault's structure, and with `read_data` every byte.
//!
//! ```text
//! index files open and match their names         (else: error, names the file)
//! every indexed pack exists with the exact size   (header size is computable)
//! every point opens; every tree it reaches opens; every blob it names is indexed
//!     in a pack that exists                        (else: error, names point/blob)
//! read_data: every pack's bytes match its name, its header matches the index,
//!     every blob decrypts and matches its id       (else: error, names pack/blob)
//! packs no index knows: warning (garbage of an interrupted run; prune removes it)
//! each protector's own check of its kind's points (`KindCheck`, through
//!     `check_with`: e.g. an incremental database point's base is there)
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use crate::crypto::{KeyFile, SEAL_OVERHEAD};
use crate::error::Result;
use crate::id::Id;
use crate::index::Index;
use crate::pack::{BlobType, PackEntry, list_packs, open_blob, pack_path, parse_pack};
use crate::vault::Vault;

/// One finding.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The object concerned (storage path, or blob id).
    pub object: String,
    /// What is wrong.
    pub message: String,
}

/// Result of a check.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// Damage: the vault cannot restore everything.
    pub errors: Vec<Problem>,
    /// Harmless oddities (garbage, leftovers).
    pub warnings: Vec<Problem>,
    /// Points checked.
    pub points: usize,
    /// Packs on storage.
    pub packs: usize,
    /// Blobs indexed.
    pub blobs: usize,
    /// Packs whose bytes were read.
    pub packs_read: usize,
    /// Key files checked.
    pub keys: usize,
}

impl CheckReport {
    /// Whether no error was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
    fn err(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem {
            object: object.into(),
            message: message.into(),
        });
    }
}

/// Exact stored size of a pack with these entries.
pub fn expected_pack_size(entries: &[PackEntry]) -> u64 {
    let end = entries
        .iter()
        .map(|e| e.offset as u64 + e.length as u64)
        .max()
        .unwrap_or(0);
    end + (SEAL_OVERHEAD + 9 + 42 * entries.len()) as u64 + 4
}

/// A protector's check of its own kind's points, beyond the structure every
/// point shares (e.g. that an incremental point's base is in the vault and
/// continues it). The engine knows no protector: a caller passes the checks
/// of the protectors it links to [`check_with`].
pub trait KindCheck: Sync {
    /// Of `points` (every readable point of the vault), the errors found,
    /// each naming the point it concerns (its storage path as `object`).
    fn problems(&self, points: &[(Id, crate::point::RecoveryPoint)]) -> Vec<Problem>;
}

/// Checks the vault. `progress` is told about each pack read.
pub fn check(
    vault: &Vault,
    read_data: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<CheckReport> {
    check_with(vault, read_data, progress, &[])
}

/// [`check`], with the protectors' checks of their kinds' points.
pub fn check_with(
    vault: &Vault,
    read_data: bool,
    progress: &(dyn Fn(u64) + Sync),
    kinds: &[&dyn KindCheck],
) -> Result<CheckReport> {
    let mut rep = CheckReport::default();
    check_keys(vault, &mut rep)?;
    let index = vault.load_index()?;
    for e in index.damaged() {
        rep.err(object_of(e), e.to_string());
    }
    rep.blobs = index.blob_count();

    let (listed, strays) = list_packs(vault.storage())?;
    for path in strays {
        rep.warnings.push(Problem {
            object: path,
            message: "not a pack name; ignored".into(),
        });
    }
    rep.packs = listed.len();

    for (pack, entries) in index.packs() {
        let obsolete = index.marks().contains_key(pack);
        match listed.get(pack) {
            None if obsolete => {}
            None => rep.err(pack_path(pack), "pack is missing (the index lists it)"),
            Some(size) if *size != expected_pack_size(entries) => rep.err(
                pack_path(pack),
                format!(
                    "pack has {size} bytes, the index says {} (truncated or damaged)",
                    expected_pack_size(entries)
                ),
            ),
            Some(_) => {}
        }
    }
    for pack in listed.keys() {
        if !index.packs().contains_key(pack) {
            rep.warnings.push(Problem {
                object: pack_path(pack),
                message:
                    "pack is in no index file (left by an interrupted run, which `lifeboat prune` removes; or an index file is missing, which `lifeboat vault repair-index` mends)"
                        .into(),
            });
        }
    }

    let (points, bad_points) = vault.list_points()?;
    for e in &bad_points {
        rep.err(object_of(e), e.to_string());
    }
    rep.points = points.len();
    for k in kinds {
        rep.errors.extend(k.problems(&points));
    }
    let seen_trees = Mutex::new(HashSet::new());
    let problems = Mutex::new(Vec::new());
    points.par_iter().for_each(|(pid, p)| {
        walk(
            vault,
            &index,
            &listed,
            &p.tree,
            &format!("point {}", pid.short()),
            &seen_trees,
            &problems,
        );
    });
    rep.errors.extend(problems.into_inner().expect("lock"));

    if read_data {
        let packs: Vec<(&Id, &u64)> = listed.iter().collect();
        let found: Vec<Problem> = packs
            .par_iter()
            .flat_map_iter(|(id, _)| {
                let r = read_pack(vault, &index, id);
                progress(1);
                r
            })
            .collect();
        rep.packs_read = packs.len();
        rep.errors.extend(found);
    }
    rep.errors.sort_by(|a, b| a.object.cmp(&b.object));
    rep.errors.dedup();
    Ok(rep)
}

/// Key files: each is named by the BLAKE3 of its bytes, parses, and has
/// costs and encodings lifeboat accepts (the password is not needed).
fn check_keys(vault: &Vault, rep: &mut CheckReport) -> Result<()> {
    for k in vault.storage().list("keys/")? {
        rep.keys += 1;
        let bytes = match vault.storage().read(&k.path) {
            Ok(b) => b,
            Err(crate::error::VaultError::Missing { .. }) => continue, // removed meanwhile
            Err(e) => return Err(e),
        };
        if !crate::vault::key_name_matches(&k.path, &bytes) {
            rep.err(
                &k.path,
                "damaged key file: its content does not match its name (bytes changed on storage); its password may no longer open the vault — put the file back from a copy of the vault, or add a new key (`lifeboat key add`) and remove this one",
            );
        }
        if let Err(e) =
            KeyFile::from_bytes(&bytes, &k.path).and_then(|kf| kf.validate(&k.path).map(|_| ()))
        {
            rep.err(&k.path, format!("damaged key file: {e}"));
        }
    }
    Ok(())
}

fn object_of(e: &crate::error::VaultError) -> String {
    match e {
        crate::error::VaultError::Corrupt { object, .. }
        | crate::error::VaultError::Missing { object, .. } => object.clone(),
        other => other.to_string(),
    }
}

fn walk(
    vault: &Vault,
    index: &Index,
    listed: &HashMap<Id, u64>,
    tree: &Id,
    owner: &str,
    seen: &Mutex<HashSet<Id>>,
    problems: &Mutex<Vec<Problem>>,
) {
    if !seen.lock().expect("lock").insert(*tree) {
        return;
    }
    let report = |object: String, message: String| {
        problems
            .lock()
            .expect("lock")
            .push(Problem { object, message });
    };
    if let Some(loc) = index.get(tree).filter(|l| index.is_recovered(&l.pack)) {
        report(
            pack_path(&loc.pack),
            format!(
                "pack is in no index file but holds tree {} ({owner}): an index file is missing or damaged; run `lifeboat vault repair-index`",
                tree.short()
            ),
        );
    }
    let t = match vault.read_tree(index, tree) {
        Ok(t) => t,
        Err(e) => {
            report(format!("tree {tree}"), format!("{e} (needed by {owner})"));
            return;
        }
    };
    for n in &t.nodes {
        for b in &n.content {
            match index.get(b) {
                None => report(
                    format!("blob {b}"),
                    format!("not in the index (file {:?} of {owner})", n.name),
                ),
                Some(loc) if !listed.contains_key(&loc.pack) => report(
                    pack_path(&loc.pack),
                    format!(
                        "pack is missing; it holds blob {} of file {:?} ({owner})",
                        b.short(),
                        n.name
                    ),
                ),
                Some(loc) if index.is_recovered(&loc.pack) => report(
                    pack_path(&loc.pack),
                    format!(
                        "pack is in no index file but holds blob {} of file {:?} ({owner}): an index file is missing or damaged; restore still finds the blob, prune refuses to run: run `lifeboat vault repair-index`",
                        b.short(),
                        n.name
                    ),
                ),
                Some(loc) if loc.entry.blob_type != BlobType::Data => report(
                    format!("blob {b}"),
                    format!("is a tree, expected data ({owner})"),
                ),
                Some(_) => {}
            }
        }
    }
    let subs: Vec<Id> = t.nodes.iter().filter_map(|n| n.subtree).collect();
    subs.par_iter()
        .for_each(|s| walk(vault, index, listed, s, owner, seen, problems));
}

fn read_pack(vault: &Vault, index: &Index, id: &Id) -> Vec<Problem> {
    let path = pack_path(id);
    let mut out = Vec::new();
    let mut p = |m: String| {
        out.push(Problem {
            object: path.clone(),
            message: m,
        })
    };
    let bytes = match vault.storage().read(&path) {
        Ok(b) => b,
        Err(e) => {
            p(e.to_string());
            return out;
        }
    };
    if Id::of_stored(&bytes) != *id {
        p("content does not match its name (bytes changed on storage)".into());
    }
    let entries = match parse_pack(vault.key(), &bytes, &path) {
        Ok(e) => e,
        Err(e) => {
            p(format!("header unreadable: {e}"));
            // Fall back to the index's view to name the damaged blobs.
            match index.packs().get(id) {
                Some(e) => e.clone(),
                None => return out,
            }
        }
    };
    let header_ok = out.is_empty();
    let mut p = |m: String| {
        out.push(Problem {
            object: path.clone(),
            message: m,
        })
    };
    if header_ok && index.packs().get(id).is_some_and(|i| *i != entries) {
        p("pack header differs from the index".into());
    }
    for e in &entries {
        let end = e.offset as usize + e.length as usize;
        if end > bytes.len() {
            p(format!("blob {} lies beyond the end of the pack", e.id));
            continue;
        }
        if let Err(err) = open_blob(vault.key(), e, &bytes[e.offset as usize..end], &path) {
            p(format!("blob {} is damaged: {err}", e.id));
        }
    }
    out
}
