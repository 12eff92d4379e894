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
use crate::index::{Index, IndexFile, ObsoleteMark, index_path};
use crate::lock::{LockGuard, live_locks, remove_stale};
use crate::pack::{PackEntry, PackWriter, list_packs, pack_path, seal_blob};
use crate::vault::Vault;

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

/// Removes `path`; a refusal that retrying cannot cure (permissions, a
/// retention) is recorded in `rep` instead of failing the prune.
fn remove_or_note(storage: &crate::Storage, path: &str, rep: &mut PruneReport) -> Result<bool> {
    match storage.remove(path) {
        Ok(()) => Ok(true),
        Err(VaultError::Storage {
            retryable: false,
            no_space: false,
            message,
            ..
        }) => {
            tracing::warn!("prune: the storage refused to delete {path}: {message}; it is kept");
            rep.not_deleted.push(format!("{path}: {message}"));
            Ok(false)
        }
        Err(e) => Err(e),
    }
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

    let (listed, _) = list_packs(storage)?;
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
    // Blobs of points under a retention lock stay in the packs they are in:
    // on an S3 bucket with Object Lock those packs carry the lock, a repacked
    // copy would not.
    let now = vault.now()?;
    let locked_roots: Vec<Id> = points
        .iter()
        .filter(|(_, p)| p.retention.as_ref().is_some_and(|r| r.retain_until > now))
        .map(|(_, p)| p.tree)
        .collect();
    let pinned = if locked_roots.is_empty() {
        HashSet::new()
    } else {
        referenced_blobs(vault, &index, &locked_roots)?
    };
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

    // 4. classify
    let mut verdicts: HashMap<Id, Verdict> = HashMap::new();
    for (pack, entries) in index.packs() {
        let used: Vec<PackEntry> = entries
            .iter()
            .filter(|e| {
                referenced.contains(&e.id) && index.get(&e.id).is_some_and(|l| l.pack == *pack)
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
            None if used.iter().any(|e| pinned.contains(&e.id)) => Verdict::Keep,
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
    let garbage: Vec<Id> = listed
        .keys()
        .filter(|p| !index.packs().contains_key(*p))
        .copied()
        .collect();
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
    let to_repack: Vec<(Id, PackEntry)> = verdicts
        .iter()
        .filter_map(|(p, v)| match v {
            Verdict::Repack(used) => Some(used.iter().map(|e| (*p, *e)).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    if !to_repack.is_empty() {
        let bytes: u64 = to_repack.iter().map(|(_, e)| e.length as u64).sum();
        progress.begin("repacking", bytes);
        new_index
            .packs
            .extend(repack(vault, &index, &to_repack, progress)?);
    }

    // 6. the first new index: every pack still indexed with its mark, the
    // packs deleted below included (so that any reader whose listing holds
    // this file sees them obsolete, whichever old files it also holds)
    let mut new_marks = Vec::new();
    let now = vault.now()?.timestamp();
    let mut delete: Vec<Id> = Vec::new();
    for (pack, v) in &verdicts {
        let entries = index.packs()[pack].clone();
        match v {
            Verdict::Delete => {
                delete.push(*pack);
                new_index.marks.push(index.marks()[pack].clone());
            }
            Verdict::Keep | Verdict::Unmark => {}
            Verdict::Deferred(m) => new_index.marks.push(m.clone()),
            Verdict::Mark | Verdict::Repack(_) => {
                new_marks.push(*pack);
                new_index.marks.push(ObsoleteMark {
                    pack: *pack,
                    marked_at: now,
                    blockers: None,
                });
            }
        }
        new_index.packs.push((*pack, entries));
    }
    new_index.packs.sort_by_key(|(p, _)| *p);
    let (first_name, stored) = new_index.seal(vault.key());
    storage.write(&index_path(&first_name), stored)?;

    // 7. who might still reference the newly marked packs
    let l1 = shared_lock_ids(vault, &lock.id())?;
    let mut delete_garbage = Vec::new();
    let mut last_index = new_index.clone();
    if l1.is_empty() {
        let (now_points, _) = vault.list_points()?;
        let fresh: Vec<Id> = now_points
            .iter()
            .filter(|(i, _)| !seen_points.contains(i))
            .map(|(_, p)| p.tree)
            .collect();
        let fresh_index = vault.load_index()?;
        let needed = if fresh.is_empty() {
            HashSet::new()
        } else {
            referenced_blobs(vault, &fresh_index, &fresh)?
        };
        for p in &new_marks {
            let entries = &index.packs()[p];
            if entries.iter().all(|e| !needed.contains(&e.id)) {
                delete.push(*p);
            }
        }
        let known: HashSet<Id> = fresh_index.packs().keys().copied().collect();
        delete_garbage = garbage.into_iter().filter(|g| !known.contains(g)).collect();
    } else {
        for m in &mut last_index.marks {
            if m.blockers.is_none() {
                m.blockers = Some(l1.clone());
            }
        }
        rep.deferred += new_marks.len();
    }
    // The last index: without the packs about to go, so that no index file
    // names a deleted pack once the first one is removed.
    let gone: HashSet<Id> = delete.iter().copied().collect();
    last_index.packs.retain(|(p, _)| !gone.contains(p));
    last_index.marks.retain(|m| !gone.contains(&m.pack));
    let last_name = if last_index != new_index {
        let (name, stored) = last_index.seal(vault.key());
        storage.write(&index_path(&name), stored)?;
        Some(name)
    } else {
        None
    };

    // 8. the old index files, then the first new one: until every old file
    // is gone, the marks of the first new one are visible to every listing
    crate::testhook::pause("prune-index-written");
    // An old file the storage refuses to delete stays; then the first new
    // one must stay too (it marks every pack this run deletes).
    let mut old_left = false;
    for f in index.files() {
        if remove_or_note(storage, &index_path(f), &mut rep)? {
            rep.index_files_replaced += 1;
        } else {
            old_left = true;
        }
    }
    crate::testhook::pause("prune-old-index-removed");
    if !old_left && last_name.is_some_and(|n| n != first_name) {
        storage.remove(&index_path(&first_name))?;
    }
    // 9. packs
    progress.begin(
        "deleting packs",
        (delete.len() + delete_garbage.len()) as u64,
    );
    let mut refused = HashSet::new();
    for p in delete.iter().chain(&delete_garbage) {
        if let Some(size) = listed.get(p) {
            if remove_or_note(storage, &pack_path(p), &mut rep)? {
                rep.bytes_freed += size;
            } else {
                refused.insert(*p);
            }
        }
        progress.add(1);
    }
    rep.deleted_packs = delete
        .iter()
        .filter(|p| listed.contains_key(*p) && !refused.contains(*p))
        .count();
    rep.deleted_garbage = delete_garbage
        .iter()
        .filter(|p| !refused.contains(*p))
        .count();
    clean_tmp(vault);
    lock.release()?;
    Ok(rep)
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
