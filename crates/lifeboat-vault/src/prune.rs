//! `prune`: delete what no recovery point needs, safely beside running backups.
//!
//! Two-phase delete. A pack no point needs is first **marked** obsolete in an
//! index file; backups that load the index after that never deduplicate
//! against it. It is **deleted** only once no backup that may have loaded the
//! index before the mark can still write a point, and a point listing made
//! after that shows nothing needs it; a pack found needed again is unmarked.
//!
//! ```text
//! 0  exclusive prune lock; drop stale locks
//! 1  L0 = live backup locks
//! 2  list packs; 3 load index, all points, walk every tree → referenced blobs
//! 4  classify each indexed pack:
//!      marked, needed again               → unmark
//!      marked, blockers recorded, none in L0 → delete
//!      marked, blockers still live        → keep waiting
//!      unmarked, unused                   → mark
//!      unmarked, mostly unused            → repack needed blobs, mark
//! 5  write repacked packs; 6 write the first new index N1: every pack with its
//!    mark, the packs to delete in this run included
//! 7  L1 = live shared locks (backups and readers)
//!      L1 empty → re-list points, walk new ones; delete new marks they do not need
//!      else     → blockers = L1 on the new marks
//!    write the last new index N2 = N1 without the packs to delete
//! 8  delete the index files read in 3, then N1; 9 delete packs; unindexed
//!    packs only when L1 was empty and a fresh index listing does not know them
//! ```
//! A crash at any step leaves a readable vault: new objects are written before
//! old ones are deleted, and marks are only ever a reason to wait. N1 is
//! removed after the old index files, so every index listing that still holds
//! an old file holds N1 too, whose marks make the doomed packs obsolete: a
//! reader sees all-old or all-new (format spec, §11).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::index::{Index, IndexFile, ObsoleteMark};
use crate::lock::{LockGuard, live_locks, remove_stale};
use crate::pack::{PackEntry, PackWriter, list_packs, pack_path, seal_blob};
use crate::vault::Vault;

mod rewrite;
use rewrite::Rewrite;

/// Options of a prune.
#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// Only report what would be done.
    pub dry_run: bool,
    /// Repack a pack when more than this fraction of its bytes is unused.
    pub repack_unused: f64,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            repack_unused: 0.3,
        }
    }
}

/// What a prune did (or would do).
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    /// Points in the vault.
    pub points: usize,
    /// Packs on storage.
    pub packs: usize,
    /// Packs newly marked obsolete.
    pub marked: usize,
    /// Marked packs found needed again.
    pub unmarked: usize,
    /// Packs whose needed blobs were copied to new packs.
    pub repacked: usize,
    /// Marked packs kept because backups that started before the mark still run.
    pub deferred: usize,
    /// Packs deleted.
    pub deleted_packs: usize,
    /// Unindexed packs (from interrupted runs) deleted.
    pub deleted_garbage: usize,
    /// Bytes freed on storage.
    pub bytes_freed: u64,
    /// Index files replaced by the new index.
    pub index_files_replaced: usize,
    /// Stale locks removed.
    pub stale_locks_removed: usize,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Objects the storage refused to delete (an object under S3 Object
    /// Lock, an immutable file), each with the refusal. They stay; the vault
    /// is as after a prune killed at that step (format spec §11), and a later
    /// prune deletes them once the storage allows.
    #[serde(default)]
    pub not_deleted: Vec<String>,
}

fn shared_lock_ids(vault: &Vault, own: &Id) -> Result<Vec<Id>> {
    Ok(live_locks(vault.storage())?
        .into_iter()
        .filter(|(id, l)| id != own && !l.exclusive)
        .map(|(id, _)| id)
        .collect())
}

/// Collects every blob reachable from the trees of `roots`.
pub fn referenced_blobs(vault: &Vault, index: &Index, roots: &[Id]) -> Result<HashSet<Id>> {
    let seen = Mutex::new(HashSet::new());
    let first_err = Mutex::new(None);
    fn walk(
        vault: &Vault,
        index: &Index,
        tree: Id,
        seen: &Mutex<HashSet<Id>>,
        err: &Mutex<Option<VaultError>>,
    ) {
        if !seen.lock().expect("lock").insert(tree) {
            return;
        }
        match vault.read_tree(index, &tree) {
            Ok(t) => {
                let mut subs = Vec::new();
                {
                    let mut s = seen.lock().expect("lock");
                    for n in &t.nodes {
                        s.extend(n.content.iter().copied());
                        subs.extend(n.subtree);
                    }
                }
                subs.par_iter()
                    .for_each(|s| walk(vault, index, *s, seen, err));
            }
            Err(e) => {
                err.lock().expect("lock").get_or_insert(e);
            }
        }
    }
    roots
        .par_iter()
        .for_each(|r| walk(vault, index, *r, &seen, &first_err));
    if let Some(e) = first_err.into_inner().expect("lock") {
        return Err(VaultError::Refused(format!(
            "prune stopped without deleting anything: a tree cannot be read ({e}); run `lifeboat vault check`"
        )));
    }
    Ok(seen.into_inner().expect("lock"))
}

enum Verdict {
    Keep,
    Unmark,
    Delete,
    Deferred(ObsoleteMark),
    Mark,
    Repack(Vec<PackEntry>),
}

/// Where a running prune is, for a progress display: the step, and of the
/// steps whose size is known (repacking: bytes; deleting: packs) how much of
/// it is done.
#[derive(Debug, Default)]
pub struct PruneProgress {
    step: Mutex<&'static str>,
    done: AtomicU64,
    total: AtomicU64,
}

impl PruneProgress {
    fn begin(&self, step: &'static str, total: u64) {
        *self.step.lock().expect("lock") = step;
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// The current step, how much of it is done and its total (0: unknown).
    pub fn get(&self) -> (&'static str, u64, u64) {
        (
            *self.step.lock().expect("lock"),
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// Prunes the vault.
pub fn prune(vault: &Vault, opts: &PruneOptions) -> Result<PruneReport> {
    prune_with_progress(vault, opts, &PruneProgress::default())
}

/// Prunes the vault, telling `progress` where it is.
pub fn prune_with_progress(
    vault: &Vault,
    opts: &PruneOptions,
    progress: &PruneProgress,
) -> Result<PruneReport> {
    progress.begin("reading the index and the points", 0);
    let storage = vault.storage();
    let lock = LockGuard::acquire(storage, "prune", true)?;
    let mut rep = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    if !opts.dry_run {
        rep.stale_locks_removed = remove_stale(storage)?;
    }
    let l0: HashSet<Id> = shared_lock_ids(vault, &lock.id())?.into_iter().collect();

    // 2.–3. packs, index, points and the blobs they need
    let survey = Survey::read(vault, &mut rep)?;

    // 4. classify
    let verdicts = survey.classify(&l0, opts);
    count_verdicts(&verdicts, &mut rep);
    let garbage = survey.garbage();
    if opts.dry_run {
        rep.deleted_packs = verdicts
            .values()
            .filter(|v| matches!(v, Verdict::Delete))
            .count();
        rep.deleted_garbage = garbage.len();
        lock.release()?;
        return Ok(rep);
    }

    // 5. repack
    let mut new_index = IndexFile::default();
    new_index
        .packs
        .extend(repack_verdicts(vault, &survey.index, &verdicts, progress)?);

    // 6. the first new index
    let mut rewrite = Rewrite::write_first(vault, &survey.index, &verdicts, new_index)?;

    // 7. who might still reference the newly marked packs
    let l1 = shared_lock_ids(vault, &lock.id())?;
    rewrite.settle(vault, &survey, garbage, &l1, &mut rep)?;

    // 8. the old index files, then the first new one
    rewrite.replace_old_index(vault, &survey.index, &mut rep)?;

    // 9. packs
    rewrite.delete_packs(vault, &survey.listed, progress, &mut rep)?;
    clean_tmp(vault);
    lock.release()?;
    Ok(rep)
}

/// What a prune read before deciding anything: the packs on storage, the
/// index, the points and the blobs they need.
struct Survey {
    /// Packs on storage with their sizes.
    listed: HashMap<Id, u64>,
    /// The index as loaded in step 3.
    index: Index,
    /// The points listed in step 3.
    seen_points: HashSet<Id>,
    /// Blobs some point needs.
    referenced: HashSet<Id>,
    /// Blobs of points under a retention lock.
    pinned: HashSet<Id>,
}

impl Survey {
    /// Lists the packs, loads the index and the points and walks every tree;
    /// refuses when anything damaged or missing would make a deletion unsafe.
    fn read(vault: &Vault, rep: &mut PruneReport) -> Result<Survey> {
        let (listed, _) = list_packs(vault.storage())?;
        rep.packs = listed.len();
        let index = vault.load_index()?;
        if let Some(e) = index.damaged().first() {
            return Err(VaultError::Refused(format!(
                "prune stopped without deleting anything: an index file is damaged ({e}); run `lifeboat vault repair-index` to rebuild the index from the packs, then prune again"
            )));
        }
        let (points, bad) = vault.list_points()?;
        if let Some(e) = bad.first() {
            return Err(VaultError::Refused(format!(
                "prune stopped without deleting anything: a recovery point is damaged ({e}); run `lifeboat vault check`"
            )));
        }
        rep.points = points.len();
        let seen_points: HashSet<Id> = points.iter().map(|(i, _)| *i).collect();
        let roots: Vec<Id> = points.iter().map(|(_, p)| p.tree).collect();
        let referenced = referenced_blobs(vault, &index, &roots)?;
        let pinned = pinned_blobs(vault, &index, &points)?;
        refuse_unindexed_needs(vault, &index, &referenced)?;
        Ok(Survey {
            listed,
            index,
            seen_points,
            referenced,
            pinned,
        })
    }

    /// Decides what becomes of each indexed pack (step 4).
    fn classify(&self, l0: &HashSet<Id>, opts: &PruneOptions) -> HashMap<Id, Verdict> {
        let (index, listed) = (&self.index, &self.listed);
        let mut verdicts: HashMap<Id, Verdict> = HashMap::new();
        for (pack, entries) in index.packs() {
            let used: Vec<PackEntry> = entries
                .iter()
                .filter(|e| {
                    self.referenced.contains(&e.id)
                        && index.get(&e.id).is_some_and(|l| l.pack == *pack)
                })
                .copied()
                .collect();
            let v = match index.marks().get(pack) {
                Some(_) if !listed.contains_key(pack) => Verdict::Delete, // already gone
                Some(_) if !used.is_empty() => Verdict::Unmark,
                Some(m) => match &m.blockers {
                    Some(b) if b.iter().all(|x| !l0.contains(x)) => Verdict::Delete,
                    Some(_) => Verdict::Deferred(m.clone()),
                    None => Verdict::Mark,
                },
                None if !listed.contains_key(pack) => Verdict::Keep, // missing: check reports it
                None if used.is_empty() => Verdict::Mark,
                None if used.iter().any(|e| self.pinned.contains(&e.id)) => Verdict::Keep,
                None => {
                    let total: u64 = entries.iter().map(|e| e.length as u64).sum();
                    let live: u64 = used.iter().map(|e| e.length as u64).sum();
                    if total > 0 && (total - live) as f64 / total as f64 > opts.repack_unused {
                        Verdict::Repack(used)
                    } else {
                        Verdict::Keep
                    }
                }
            };
            verdicts.insert(*pack, v);
        }
        verdicts
    }

    /// Packs on storage that no index file lists (from interrupted runs).
    fn garbage(&self) -> Vec<Id> {
        self.listed
            .keys()
            .filter(|p| !self.index.packs().contains_key(*p))
            .copied()
            .collect()
    }
}

/// Blobs of points under a retention lock: they stay in the packs they are
/// in, since on an S3 bucket with Object Lock those packs carry the lock and
/// a repacked copy would not.
fn pinned_blobs(
    vault: &Vault,
    index: &Index,
    points: &[(Id, crate::point::RecoveryPoint)],
) -> Result<HashSet<Id>> {
    let now = vault.now()?;
    let locked_roots: Vec<Id> = points
        .iter()
        .filter(|(_, p)| p.retention.as_ref().is_some_and(|r| r.retain_until > now))
        .map(|(_, p)| p.tree)
        .collect();
    if locked_roots.is_empty() {
        Ok(HashSet::new())
    } else {
        referenced_blobs(vault, index, &locked_roots)
    }
}

/// Refuses when a pack that no index file lists holds blobs points need (an
/// index file is missing).
fn refuse_unindexed_needs(vault: &Vault, index: &Index, referenced: &HashSet<Id>) -> Result<()> {
    let needs_unindexed: Vec<Id> = index
        .recovered()
        .iter()
        .filter(|(p, entries)| {
            entries.iter().any(|e| {
                referenced.contains(&e.id) && index.get(&e.id).is_some_and(|l| l.pack == **p)
            })
        })
        .map(|(p, _)| *p)
        .collect();
    // A backup that committed (index file, then point) between the index
    // load and the point listing explains such packs: look again.
    let still_unindexed = if needs_unindexed.is_empty() {
        Vec::new()
    } else {
        let again = vault.load_index()?;
        needs_unindexed
            .into_iter()
            .filter(|p| !again.packs().contains_key(p))
            .collect()
    };
    if let Some(p) = still_unindexed.first() {
        return Err(VaultError::Refused(format!(
            "prune stopped without deleting anything: pack {} holds blobs recovery points need but no index file lists it (an index file is missing); run `lifeboat vault repair-index`, then prune again",
            p.short()
        )));
    }
    Ok(())
}

/// Counts the verdicts into the report.
fn count_verdicts(verdicts: &HashMap<Id, Verdict>, rep: &mut PruneReport) {
    for v in verdicts.values() {
        match v {
            Verdict::Unmark => rep.unmarked += 1,
            Verdict::Deferred(_) => rep.deferred += 1,
            Verdict::Mark => rep.marked += 1,
            Verdict::Repack(_) => {
                rep.repacked += 1;
                rep.marked += 1
            }
            Verdict::Delete | Verdict::Keep => {}
        }
    }
}

/// Copies the needed blobs of the packs to repack into new packs (step 5).
fn repack_verdicts(
    vault: &Vault,
    index: &Index,
    verdicts: &HashMap<Id, Verdict>,
    progress: &PruneProgress,
) -> Result<Vec<(Id, Vec<PackEntry>)>> {
    let to_repack: Vec<(Id, PackEntry)> = verdicts
        .iter()
        .filter_map(|(p, v)| match v {
            Verdict::Repack(used) => Some(used.iter().map(|e| (*p, *e)).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    if to_repack.is_empty() {
        return Ok(Vec::new());
    }
    let bytes: u64 = to_repack.iter().map(|(_, e)| e.length as u64).sum();
    progress.begin("repacking", bytes);
    repack(vault, index, &to_repack, progress)
}

fn repack(
    vault: &Vault,
    index: &Index,
    blobs: &[(Id, PackEntry)],
    progress: &PruneProgress,
) -> Result<Vec<(Id, Vec<PackEntry>)>> {
    let wanted: Vec<(Id, PackEntry)> = blobs.iter().map(|(_, e)| (e.id, *e)).collect();
    let got: Mutex<Vec<(PackEntry, Vec<u8>)>> = Mutex::new(Vec::new());
    let failed: Mutex<Option<VaultError>> = Mutex::new(None);
    crate::fetch::fetch_blobs(vault, index, wanted, |e, r| match r {
        Ok(data) => {
            progress.add(e.length as u64);
            got.lock().expect("lock").push((*e, data.to_vec()))
        }
        Err(err) => {
            failed.lock().expect("lock").get_or_insert(err);
        }
    });
    if let Some(e) = failed.into_inner().expect("lock") {
        return Err(VaultError::Refused(format!(
            "prune stopped: a blob to keep cannot be read while repacking ({e}); run `lifeboat vault check`"
        )));
    }
    let mut out = Vec::new();
    let mut w = PackWriter::new();
    let level = vault.config().compression;
    for (e, data) in got.into_inner().expect("lock") {
        let (flags, sealed) = seal_blob(vault.key(), e.blob_type, &e.id, &data, level);
        w.add(e.blob_type, flags, e.id, &sealed, data.len() as u32);
        if w.len() >= vault.config().pack_size as usize {
            out.push(write_pack(vault, std::mem::take(&mut w))?);
        }
    }
    if !w.is_empty() {
        out.push(write_pack(vault, w)?);
    }
    Ok(out)
}

fn write_pack(vault: &Vault, w: PackWriter) -> Result<(Id, Vec<PackEntry>)> {
    let (id, bytes, entries) = w.finish(vault.key());
    vault.storage().write(&pack_path(&id), bytes)?;
    Ok((id, entries))
}

/// Removes leftovers of interrupted writes older than an hour from `tmp/`.
fn clean_tmp(vault: &Vault) {
    let crate::storage::Location::Dir(root) = vault.storage().loc() else {
        return; // object stores have no staging area
    };
    crate::storage::remove_old_files(&root.join("tmp"), std::time::Duration::from_secs(3600));
}
