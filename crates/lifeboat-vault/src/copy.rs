//! Copying recovery points from one vault to another (cross-site copy).
//!
//! The two vaults have different master keys, so a blob has another id in the
//! target: data blobs are re-identified (read, verified, hashed with the
//! target's id key, sealed with its key) and every tree is rewritten with the
//! target's ids. The walk is generic — `content` and `subtree` of the tree
//! format — so every point kind copies alike; the engine never looks at
//! `meta` (no kind stores blob ids there, format spec §9).
//!
//! ```text
//! source: reader lock (read-only vaults: none, with a warning) → index
//! target: shared writer lock (kind "copy") → index → ledger of this source
//! per point (oldest first):
//!     already in the target (lineage source vault + point)?  → nothing to do
//!     read its trees, level by level (ranged, grouped by pack)
//!     data blobs: ledger knows the target id and the target has it → skipped
//!                 else read from the source → target id → stored unless present
//!     rewrite trees bottom-up with target ids → save
//!     ledger entries → point (copied_from = source vault, source point)
//! ```
//! A point is written only after everything it references (the writer's
//! order), so a copy killed at any moment leaves the target checking clean;
//! the next copy adopts the killed run's packs (as backups do), knows their
//! blobs from the ledger, and sends only what never arrived.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::{Result, VaultError};
use crate::fetch::fetch_blobs;
use crate::id::Id;
use crate::index::Index;
use crate::ledger::Ledger;
use crate::lock::{LockGuard, reader_lock};
use crate::pack::BlobType;
use crate::point::{Lineage, RecoveryPoint};
use crate::tree::Tree;
use crate::vault::Vault;
use crate::writer::BackupWriter;

/// Kind of the source's reader lock.
pub const SOURCE_LOCK_KIND: &str = "copy-source";

/// How a copy runs. New fields get defaults, so callers build it with
/// `CopyOptions { …, ..CopyOptions::default() }`.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Ledger entries collected before a ledger file is written (a kill
    /// loses at most these: the next copy reads those blobs again, but does
    /// not send them again).
    pub ledger_batch: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions { ledger_batch: 512 }
    }
}

/// Counters of a copy, readable while it runs (progress).
#[derive(Debug, Default)]
pub struct CopyCounters {
    /// Points written to the target.
    pub points_copied: AtomicU64,
    /// Points the target already had.
    pub points_present: AtomicU64,
    /// Blobs (data and trees) the target already had or the ledger knew.
    pub blobs_skipped: AtomicU64,
    /// Stored (sealed) bytes read from the source.
    pub bytes_read: AtomicU64,
    /// Stored bytes of source blobs planned for the current point.
    pub bytes_planned: AtomicU64,
    /// Heal: lost blobs stored again from the other vault.
    pub blobs_healed: AtomicU64,
}

/// Figures of a copy.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CopyStats {
    /// Points written to the target.
    pub points_copied: u64,
    /// Points the target already had (nothing done).
    pub points_present: u64,
    /// Blobs stored in the target.
    pub blobs_sent: u64,
    /// Stored bytes read from the source (blobs and trees).
    pub bytes_read: u64,
    /// Stored bytes written to the target for new blobs.
    pub bytes_sent: u64,
    /// Blobs not sent: the target had them already.
    pub blobs_skipped: u64,
}

/// What became of one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Copied; the target's new point.
    Copied(Id),
    /// The target already holds it (this point in the target).
    Present(Id),
}

/// A copy session from one vault into another.
pub struct Copier<'a> {
    source: &'a Vault,
    source_id: Id,
    src_index: Index,
    writer: BackupWriter<'a>,
    ledger: Mutex<Ledger>,
    /// Target points by their lineage (source vault, source point).
    lineage: HashMap<(Id, Id), Id>,
    target_points: HashSet<Id>,
    /// Source tree → target tree, for trees stored in this session.
    trees_done: HashMap<Id, Id>,
    counters: Arc<CopyCounters>,
    opts: CopyOptions,
    /// Heal mode: the target's lost blobs (only these are stored; no points).
    lost: Option<HashSet<Id>>,
    /// The source's storage times of its points, read once when a point is
    /// first copied: a copy is never dated later than its source was
    /// stored (a forged stamp would otherwise be judged by the copy's own,
    /// fresh storage time in the target).
    source_times: Option<HashMap<Id, chrono::DateTime<chrono::Utc>>>,
    _source_lock: Option<LockGuard>,
}

impl std::fmt::Debug for Copier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copier").finish_non_exhaustive()
    }
}

fn vault_id(v: &Vault) -> Id {
    Id::parse(&v.config().id).expect("config ids are validated at open")
}

impl<'a> Copier<'a> {
    /// Starts a copy: a reader lock on the source and its index, a writer
    /// session on the target, the target's ledger of this source and its
    /// points' lineage.
    pub fn start(source: &'a Vault, target: &'a Vault, opts: CopyOptions) -> Result<Copier<'a>> {
        Self::start_as(source, target, opts, "copy")
    }

    /// [`Copier::start`] with another kind of writer lock in the target.
    pub(crate) fn start_as(
        source: &'a Vault,
        target: &'a Vault,
        opts: CopyOptions,
        kind: &str,
    ) -> Result<Copier<'a>> {
        let source_id = vault_id(source);
        if source_id == vault_id(target) {
            return Err(VaultError::Refused(format!(
                "the source and the target are the same vault (id {}); give another --to",
                source_id.short()
            )));
        }
        let lock = reader_lock(source.storage(), SOURCE_LOCK_KIND)?;
        let src_index = source.load_index()?;
        let writer = BackupWriter::start(target, kind)?;
        let ledger = Ledger::load(target.storage(), target.key(), source_id)?;
        let mut c = Copier {
            source,
            source_id,
            src_index,
            writer,
            ledger: Mutex::new(ledger),
            lineage: HashMap::new(),
            target_points: HashSet::new(),
            trees_done: HashMap::new(),
            counters: Arc::new(CopyCounters::default()),
            opts,
            lost: None,
            source_times: None,
            _source_lock: lock,
        };
        c.refresh_target_points()?;
        Ok(c)
    }

    /// Reads the target's points again (their lineage).
    pub fn refresh_target_points(&mut self) -> Result<()> {
        let (points, damaged) = self.writer.vault().list_points()?;
        for d in damaged {
            tracing::warn!("target: {d}");
        }
        self.lineage.clear();
        self.target_points.clear();
        for (id, p) in points {
            self.target_points.insert(id);
            if let Some(l) = &p.copied_from
                && let Some(v) = Id::parse(&l.vault)
            {
                self.lineage.insert((v, l.point), id);
            }
        }
        Ok(())
    }

    /// Loads the source's index again (a following copy sees new packs).
    pub fn refresh_source_index(&mut self) -> Result<()> {
        self.src_index = self.source.load_index()?;
        Ok(())
    }

    /// The target's writer session.
    pub(crate) fn writer(&self) -> &BackupWriter<'a> {
        &self.writer
    }

    /// Heal mode: from now on only blobs of `lost` are stored (again).
    pub(crate) fn set_lost(&mut self, lost: HashSet<Id>) {
        self.lost = Some(lost);
    }

    /// Whether the target already has `t` (a lost blob does not count).
    fn has(&self, t: &Id) -> bool {
        match &self.lost {
            None => self.writer.has_blob(t),
            Some(l) => !l.contains(t),
        }
    }

    /// Stores a blob the target lacks: a lost one again; in heal mode
    /// nothing else.
    fn store(&self, bt: BlobType, t: &Id, data: &[u8]) -> Result<()> {
        match &self.lost {
            None => {
                self.writer.save_blob(bt, data)?;
            }
            Some(l) if l.contains(t) => {
                self.writer.save_blob_again(bt, data)?;
                self.counters.blobs_healed.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Heal mode: stores the target's lost blobs among those of source point
    /// `id` (its trees rewritten with the target's ids); writes no point.
    pub(crate) fn heal_point(&mut self, id: &Id, p: &RecoveryPoint) -> Result<()> {
        let trees = self.read_trees(id, p.tree)?;
        let map = self.send_data(id, &trees)?;
        self.rewrite_trees(p.tree, &trees, &map)?;
        let mut l = self.ledger.lock().expect("lock");
        l.flush(self.writer.vault().storage(), self.writer.vault().key())
    }

    /// Live counters (for a progress display).
    pub fn counters(&self) -> Arc<CopyCounters> {
        self.counters.clone()
    }

    /// Figures so far.
    pub fn stats(&self) -> CopyStats {
        let c = &self.counters;
        let w = self.writer.stats();
        CopyStats {
            points_copied: c.points_copied.load(Ordering::Relaxed),
            points_present: c.points_present.load(Ordering::Relaxed),
            blobs_sent: w.blobs_new.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            bytes_sent: w.bytes_stored.load(Ordering::Relaxed),
            blobs_skipped: c.blobs_skipped.load(Ordering::Relaxed),
        }
    }

    /// The target point that already holds source point `id`, if any (also
    /// when `p` itself is a copy of a target point: a copy back is a no-op).
    pub fn present(&self, id: &Id, p: &RecoveryPoint) -> Option<Id> {
        if let Some(t) = self.lineage.get(&(self.source_id, *id)) {
            return Some(*t);
        }
        let l = p.copied_from.as_ref()?;
        (Id::parse(&l.vault) == Some(vault_id(self.writer.vault()))
            && self.target_points.contains(&l.point))
        .then_some(l.point)
    }

    /// Copies one source point (a no-op when the target already holds it).
    pub fn copy_point(&mut self, id: &Id, p: &RecoveryPoint) -> Result<Outcome> {
        if let Some(t) = self.present(id, p) {
            self.counters.points_present.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::Present(t));
        }
        let trees = self.read_trees(id, p.tree)?;
        let map = self.send_data(id, &trees)?;
        let root = self.rewrite_trees(p.tree, &trees, &map)?;
        {
            let mut l = self.ledger.lock().expect("lock");
            l.flush(self.writer.vault().storage(), self.writer.vault().key())?;
        }
        let mut np = p.clone();
        np.tree = root;
        np.retention = None;
        np.copied_from = Some(Lineage {
            vault: self.source_id.to_hex(),
            point: *id,
        });
        np.parent = p
            .parent
            .and_then(|pp| self.lineage.get(&(self.source_id, pp)).copied());
        let times = self
            .source_times
            .get_or_insert_with(|| self.source.point_times_or_none());
        if let Some(t) = times.get(id)
            && np.time > *t + crate::forget::MAX_SKEW
        {
            tracing::warn!(
                "point {} is stamped {} but its source stored it at {}: copied with that time",
                id.short(),
                np.time.to_rfc3339(),
                t.to_rfc3339()
            );
            np.time = *t;
        }
        crate::testhook::pause("copy-before-point");
        let tid = self.writer.write_point(&np)?;
        self.lineage.insert((self.source_id, *id), tid);
        self.target_points.insert(tid);
        self.counters.points_copied.fetch_add(1, Ordering::Relaxed);
        Ok(Outcome::Copied(tid))
    }

    /// Reads every tree of a point this session has not stored yet.
    fn read_trees(&self, point: &Id, root: Id) -> Result<HashMap<Id, Tree>> {
        let mut trees: HashMap<Id, Tree> = HashMap::new();
        let mut level: Vec<Id> = if self.trees_done.contains_key(&root) {
            Vec::new()
        } else {
            vec![root]
        };
        while !level.is_empty() {
            let bytes: u64 = level
                .iter()
                .filter_map(|t| self.src_index.get(t))
                .map(|l| l.entry.length as u64)
                .sum();
            self.counters.bytes_read.fetch_add(bytes, Ordering::Relaxed);
            let got: Mutex<Vec<(Id, Result<Tree>)>> = Mutex::new(Vec::new());
            fetch_blobs(
                self.source,
                &self.src_index,
                level.iter().map(|t| (*t, *t)).collect(),
                |t, r| {
                    let parsed = r.and_then(|b| parse_tree(t, b));
                    got.lock().expect("lock").push((*t, parsed));
                },
            );
            let mut next = Vec::new();
            let mut failed = Vec::new();
            for (t, r) in got.into_inner().expect("lock") {
                match r {
                    Ok(tree) => {
                        for s in tree.nodes.iter().filter_map(|n| n.subtree) {
                            if !self.trees_done.contains_key(&s) && !trees.contains_key(&s) {
                                next.push(s);
                            }
                        }
                        trees.insert(t, tree);
                    }
                    Err(e) => failed.push((t, e)),
                }
            }
            if let Some((_, first)) = failed.into_iter().next() {
                return Err(self.source_error(point, 1, first));
            }
            next.sort();
            next.dedup();
            next.retain(|s| !trees.contains_key(s));
            level = next;
        }
        Ok(trees)
    }

    fn source_error(&self, point: &Id, count: usize, first: VaultError) -> VaultError {
        VaultError::CopySource {
            point: point.short(),
            location: self.source.storage().location().to_string(),
            count,
            first: Box::new(first),
        }
    }

    /// Makes every data blob of `trees` present in the target; returns the
    /// source → target ids of this point's data blobs.
    fn send_data(&self, point: &Id, trees: &HashMap<Id, Tree>) -> Result<HashMap<Id, Id>> {
        let mut wanted: Vec<Id> = trees
            .values()
            .flat_map(|t| t.nodes.iter().flat_map(|n| n.content.iter().copied()))
            .collect();
        wanted.sort();
        wanted.dedup();
        let mut map = HashMap::with_capacity(wanted.len());
        let mut need = Vec::new();
        {
            let l = self.ledger.lock().expect("lock");
            for s in wanted {
                match l.get(&s) {
                    Some(t) if self.has(&t) => {
                        map.insert(s, t);
                        self.counters.blobs_skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => need.push(s),
                }
            }
        }
        let planned: u64 = need
            .iter()
            .filter_map(|s| self.src_index.get(s))
            .map(|l| l.entry.length as u64)
            .sum();
        self.counters
            .bytes_planned
            .store(planned, Ordering::Relaxed);
        let map = Mutex::new(map);
        // Failures reading the source, and failures writing the target.
        let failed: Mutex<(usize, Option<VaultError>)> = Mutex::new((0, None));
        let target_failed: Mutex<Option<VaultError>> = Mutex::new(None);
        let target_key = self.writer.vault().key();
        fetch_blobs(
            self.source,
            &self.src_index,
            need.into_iter().map(|s| (s, s)).collect(),
            |s, r| {
                let plain = match r {
                    Ok(p) => p,
                    Err(e) => {
                        let mut f = failed.lock().expect("lock");
                        f.0 += 1;
                        f.1.get_or_insert(e);
                        return;
                    }
                };
                if let Some(l) = self.src_index.get(s) {
                    self.counters
                        .bytes_read
                        .fetch_add(l.entry.length as u64, Ordering::Relaxed);
                }
                let t = target_key.blob_id(plain);
                if self.has(&t) {
                    self.counters.blobs_skipped.fetch_add(1, Ordering::Relaxed);
                } else if let Err(e) = self.store(BlobType::Data, &t, plain) {
                    target_failed.lock().expect("lock").get_or_insert(e);
                    return;
                }
                map.lock().expect("lock").insert(*s, t);
                let mut l = self.ledger.lock().expect("lock");
                l.record(*s, t);
                if l.pending() >= self.opts.ledger_batch {
                    let v = self.writer.vault();
                    if let Err(e) = l.flush(v.storage(), v.key()) {
                        tracing::warn!("could not write a copy ledger file: {e}");
                    }
                }
            },
        );
        if let Some(e) = target_failed.into_inner().expect("lock") {
            return Err(e);
        }
        let (count, first) = failed.into_inner().expect("lock");
        if let Some(e) = first {
            return Err(self.source_error(point, count, e));
        }
        Ok(map.into_inner().expect("lock"))
    }

    /// Stores the point's trees with target ids, children first; returns the root's.
    fn rewrite_trees(
        &mut self,
        root: Id,
        trees: &HashMap<Id, Tree>,
        map: &HashMap<Id, Id>,
    ) -> Result<Id> {
        let mut stack = vec![(root, false)];
        let mut open: HashSet<Id> = HashSet::new();
        while let Some((t, expanded)) = stack.pop() {
            if self.trees_done.contains_key(&t) {
                continue;
            }
            let tree = trees
                .get(&t)
                .ok_or_else(|| VaultError::corrupt(format!("tree {t}"), "not read"))?;
            if !expanded {
                if !open.insert(t) {
                    return Err(VaultError::corrupt(
                        format!("tree {t}"),
                        "the tree contains itself (a forged point)",
                    ));
                }
                stack.push((t, true));
                for s in tree.nodes.iter().filter_map(|n| n.subtree) {
                    if !self.trees_done.contains_key(&s) {
                        stack.push((s, false));
                    }
                }
                continue;
            }
            let mut out = tree.clone();
            for n in &mut out.nodes {
                for c in &mut n.content {
                    *c = *map.get(c).ok_or_else(|| {
                        VaultError::corrupt(format!("blob {c}"), "was not copied")
                    })?;
                }
                if let Some(s) = &mut n.subtree {
                    *s = self.trees_done[s];
                }
            }
            let bytes = out.to_bytes();
            let tid = self.writer.vault().key().blob_id(&bytes);
            if self.has(&tid) {
                self.counters.blobs_skipped.fetch_add(1, Ordering::Relaxed);
            } else {
                self.store(BlobType::Tree, &tid, &bytes)?;
            }
            self.trees_done.insert(t, tid);
        }
        Ok(self.trees_done[&root])
    }

    /// Ends the session: flushes the ledger and the writer, releases locks.
    pub fn finish(self) -> Result<CopyStats> {
        let stats = self.stats();
        {
            let mut l = self.ledger.lock().expect("lock");
            let v = self.writer.vault();
            l.flush(v.storage(), v.key())?;
        }
        self.writer.finish()?;
        Ok(stats)
    }
}

/// Parses a source tree, refusing fields this build does not know (they
/// would be lost in the rewritten tree).
fn parse_tree(id: &Id, bytes: &[u8]) -> Result<Tree> {
    let what = || format!("tree {id}");
    let tree = Tree::from_bytes(bytes)
        .map_err(|e| VaultError::corrupt(what(), format!("bad JSON: {e}")))?;
    if tree.to_bytes() != bytes {
        let a: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| VaultError::corrupt(what(), format!("bad JSON: {e}")))?;
        let b: serde_json::Value = serde_json::to_value(&tree).expect("trees serialize");
        if a != b {
            return Err(VaultError::Refused(format!(
                "{} holds fields this lifeboat does not know; copying it would lose them (upgrade lifeboat)",
                what()
            )));
        }
    }
    Ok(tree)
}
