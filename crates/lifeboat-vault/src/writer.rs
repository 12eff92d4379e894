//! Writing into a vault: the backup session.
//!
//! ```text
//! take a shared lock          (prune sees us and defers deletes)
//! load the index               (after the lock: see the format spec)
//! save_blob(type, bytes) ×N    keyed id → dedup → zstd → seal → pack
//!     a full pack is written to packs/…, its entries go to the pending index;
//!     every INDEX_EVERY packs an index file is written (resumable after a crash)
//! commit(point)                flush packs → write index → write point → unlock
//! ```
//! `save_blob` is called from many threads at once; hashing, compression and
//! encryption run on the caller's thread, only the append to the open pack is
//! serialized. Full packs are stored by background threads (`upload`), and
//! listed in the pending index once stored.

use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::index::{Index, IndexFile, index_path};
use crate::lock::LockGuard;
use std::cell::RefCell;

use crate::chunker::Chunker;
use crate::pack::{BlobType, PackEntry, PackWriter, SealScratch, pack_path, seal_blob_into};
use crate::point::RecoveryPoint;
use crate::tree::Tree;
use crate::vault::Vault;

thread_local! {
    static SEAL: RefCell<SealScratch> = RefCell::new(SealScratch::default());
    static CHUNK_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Bytes of one stream cut before its chunks are stored in parallel
/// ([`BackupWriter::save_stream_parallel`]).
pub const PARALLEL_BATCH: usize = 8 << 20;

/// Packs written between two intermediate index files.
const INDEX_EVERY: usize = 32;

/// The process-wide request to stop writing: once set (by a signal handler),
/// [`BackupWriter::save_blob`] fails with [`VaultError::Interrupted`], and a
/// session dropped without its point stores and indexes the packs in flight
/// instead of removing them, so the next backup reuses them.
pub fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone()
}

fn stopping() -> bool {
    stop_flag().load(Ordering::Relaxed)
}

/// Byte counters of a session.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Plaintext bytes of new blobs.
    pub bytes_new: AtomicU64,
    /// Stored bytes of new blobs.
    pub bytes_stored: AtomicU64,
    /// New blobs.
    pub blobs_new: AtomicU64,
}

struct Pending {
    index: IndexFile,
    packs_since_index: usize,
}

/// A backup in progress.
pub struct BackupWriter<'v> {
    vault: &'v Vault,
    index: Index,
    seen: Mutex<HashSet<Id>>,
    data_pack: Mutex<PackWriter>,
    tree_pack: Mutex<PackWriter>,
    pending: Mutex<Pending>,
    stats: WriteStats,
    /// Packs written whose index file is not written yet: only this session
    /// knows them, so it removes them when it fails.
    unindexed: Mutex<Vec<Id>>,
    chunker: Chunker,
    /// Stores full packs in the background.
    uploader: crate::upload::Uploader,
    /// zstd level for new blobs (the vault's default unless changed).
    compression: i32,
    lock: Option<LockGuard>,
}

impl std::fmt::Debug for BackupWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupWriter").finish_non_exhaustive()
    }
}

impl<'v> BackupWriter<'v> {
    /// Starts a session: takes a shared lock, then loads the index, and
    /// indexes the packs of killed writers when no other writer is live
    /// (see `resume`).
    pub fn start(vault: &'v Vault, kind: &str) -> Result<BackupWriter<'v>> {
        let lock = LockGuard::acquire(vault.storage(), kind, false)?;
        let mut index = vault.load_index()?;
        crate::resume::adopt_unindexed(vault, &mut index, &lock.id())?;
        Ok(BackupWriter {
            vault,
            index,
            seen: Mutex::new(HashSet::new()),
            data_pack: Mutex::new(PackWriter::new()),
            tree_pack: Mutex::new(PackWriter::new()),
            pending: Mutex::new(Pending {
                index: IndexFile::default(),
                packs_since_index: 0,
            }),
            stats: WriteStats::default(),
            unindexed: Mutex::new(Vec::new()),
            chunker: Chunker::new(vault.config().chunker, vault.chunker_seed()?),
            uploader: crate::upload::Uploader::start(vault.storage()),
            compression: vault.config().compression,
            lock: Some(lock),
        })
    }

    /// Uses another zstd level than the vault's default for the blobs of this
    /// session (readers do not depend on the level: zstd frames describe
    /// themselves). Database dumps use a fast level, for example.
    pub fn with_compression(mut self, level: i32) -> Self {
        self.compression = level;
        self
    }

    /// The vault written to.
    pub fn vault(&self) -> &Vault {
        self.vault
    }

    /// The index as loaded at start (for reading parent points).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Counters so far.
    pub fn stats(&self) -> &WriteStats {
        &self.stats
    }

    /// Whether a blob is usable without storing it again.
    pub fn has_blob(&self, id: &Id) -> bool {
        self.index.has_live(id) || self.seen.lock().expect("lock").contains(id)
    }

    /// Stores a blob unless the vault has it; returns its id.
    pub fn save_blob(&self, t: BlobType, data: &[u8]) -> Result<Id> {
        if stopping() {
            return Err(VaultError::Interrupted);
        }
        let key = self.vault.key();
        let id = key.blob_id(data);
        if self.index.has_live(&id) || !self.seen.lock().expect("lock").insert(id) {
            return Ok(id);
        }
        self.store_new(t, id, data)
    }

    /// Stores a blob even when the index lists it (once per session): for
    /// `vault heal`, whose listed copy is damaged or missing.
    pub fn save_blob_again(&self, t: BlobType, data: &[u8]) -> Result<Id> {
        if stopping() {
            return Err(VaultError::Interrupted);
        }
        let id = self.vault.key().blob_id(data);
        if !self.seen.lock().expect("lock").insert(id) {
            return Ok(id);
        }
        self.store_new(t, id, data)
    }

    /// Whether this session stored (or deduplicated) the blob.
    pub fn saw(&self, id: &Id) -> bool {
        self.seen.lock().expect("lock").contains(id)
    }

    /// Marks packs obsolete in the next index file this session writes
    /// (after the packs written so far): readers then prefer other copies
    /// of their blobs, and prune deletes them by its usual rules.
    pub fn mark_obsolete(&self, packs: &[Id], now: i64) {
        let mut pend = self.pending.lock().expect("lock");
        for p in packs {
            pend.index.marks.push(crate::index::ObsoleteMark {
                pack: *p,
                marked_at: now,
                blockers: None,
            });
        }
    }

    fn store_new(&self, t: BlobType, id: Id, data: &[u8]) -> Result<Id> {
        let key = self.vault.key();
        let slot = match t {
            BlobType::Data => &self.data_pack,
            BlobType::Tree => &self.tree_pack,
        };
        let full = SEAL.with_borrow_mut(|s| {
            let flags = seal_blob_into(key, t, &id, data, self.compression, s);
            self.stats
                .bytes_new
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            self.stats
                .bytes_stored
                .fetch_add(s.sealed.len() as u64, Ordering::Relaxed);
            self.stats.blobs_new.fetch_add(1, Ordering::Relaxed);
            let mut p = slot.lock().expect("lock");
            if p.is_empty() {
                *p = PackWriter::with_capacity(self.pack_capacity());
            }
            p.add(t, flags, id, &s.sealed, data.len() as u32);
            if p.len() >= self.vault.config().pack_size as usize {
                Some(std::mem::take(&mut *p))
            } else {
                None
            }
        });
        if let Some(p) = full {
            self.write_pack(p)?;
        }
        Ok(id)
    }

    /// Room for a full pack, its largest last blob and the header.
    fn pack_capacity(&self) -> usize {
        let c = self.vault.config();
        c.pack_size as usize + c.chunker.max as usize + 64 * 1024
    }

    /// Stores a tree blob.
    pub fn save_tree(&self, tree: &Tree) -> Result<Id> {
        self.save_blob(BlobType::Tree, &tree.to_bytes())
    }

    /// Chunks a stream with the vault's content-defined chunker, stores each
    /// chunk, and returns the blob ids in order and the bytes read. `on_chunk`
    /// is told each chunk's length as it is read (for progress).
    pub fn save_stream(
        &self,
        reader: impl Read,
        mut on_chunk: impl FnMut(u64),
    ) -> Result<(Vec<Id>, u64)> {
        let mut ids = Vec::new();
        let total = CHUNK_BUF.with_borrow_mut(|buf| {
            self.chunker
                .for_each_chunk::<VaultError>(reader, buf, |chunk| {
                    on_chunk(chunk.len() as u64);
                    ids.push(self.save_blob(BlobType::Data, chunk)?);
                    Ok(())
                })
        })?;
        Ok((ids, total))
    }

    /// Queues a full pack for storing, and lists the packs stored meanwhile.
    /// [`BackupWriter::save_stream`] for one large stream on all cores: the
    /// stream is cut (sequentially: content-defined cuts depend on what came
    /// before) into batches of about [`PARALLEL_BATCH`] bytes, and the chunks
    /// of each batch are hashed, compressed and sealed in parallel (rayon).
    /// The blobs and ids are exactly those of `save_stream`. Uses its own
    /// chunk buffer, not the per-thread one: a rayon thread waiting for the
    /// batch may run another file's `save_stream` meanwhile.
    pub fn save_stream_parallel(
        &self,
        reader: impl Read,
        mut on_chunk: impl FnMut(u64),
    ) -> Result<(Vec<Id>, u64)> {
        use rayon::prelude::*;
        let mut ids = Vec::new();
        let mut batch: Vec<u8> = Vec::with_capacity(PARALLEL_BATCH + self.chunker.max());
        let mut cuts: Vec<(usize, usize)> = Vec::new();
        let store = |batch: &mut Vec<u8>, cuts: &mut Vec<(usize, usize)>, ids: &mut Vec<Id>| {
            let stored: Vec<Result<Id>> = cuts
                .par_iter()
                .map(|&(a, b)| self.save_blob(BlobType::Data, &batch[a..b]))
                .collect();
            batch.clear();
            cuts.clear();
            for id in stored {
                ids.push(id?);
            }
            Ok::<(), VaultError>(())
        };
        let mut buf = Vec::new();
        let total = self
            .chunker
            .for_each_chunk::<VaultError>(reader, &mut buf, |chunk| {
                on_chunk(chunk.len() as u64);
                let a = batch.len();
                batch.extend_from_slice(chunk);
                cuts.push((a, batch.len()));
                if batch.len() >= PARALLEL_BATCH {
                    store(&mut batch, &mut cuts, &mut ids)?;
                }
                Ok(())
            })?;
        store(&mut batch, &mut cuts, &mut ids)?;
        Ok((ids, total))
    }

    fn write_pack(&self, p: PackWriter) -> Result<()> {
        let (id, bytes, entries) = p.finish(self.vault.key());
        self.unindexed.lock().expect("lock").push(id);
        self.uploader.send(id, bytes, entries)?;
        self.uploader
            .collect(false, |id, entries| self.record_pack(id, entries))
    }

    /// Waits until every queued pack is stored, and lists them.
    fn wait_for_packs(&self) -> Result<()> {
        self.uploader
            .collect(true, |id, entries| self.record_pack(id, entries))
    }

    fn record_pack(&self, id: Id, entries: Vec<PackEntry>) -> Result<()> {
        let to_write = {
            let mut pend = self.pending.lock().expect("lock");
            pend.index.packs.push((id, entries));
            pend.packs_since_index += 1;
            if pend.packs_since_index >= INDEX_EVERY {
                pend.packs_since_index = 0;
                Some(std::mem::take(&mut pend.index))
            } else {
                None
            }
        };
        if let Some(f) = to_write {
            self.write_index(&f)?;
        }
        Ok(())
    }

    fn forget_unindexed(&self, f: &IndexFile) {
        let mut u = self.unindexed.lock().expect("lock");
        u.retain(|p| !f.packs.iter().any(|(q, _)| q == p));
    }

    fn write_index(&self, f: &IndexFile) -> Result<()> {
        if f.packs.is_empty() && f.marks.is_empty() {
            return Ok(());
        }
        let (name, stored) = f.seal(self.vault.key());
        self.vault.storage().write(&index_path(&name), stored)?;
        self.forget_unindexed(f);
        Ok(())
    }

    /// Writes the open packs and the pending index (without writing a point).
    pub fn flush(&self) -> Result<()> {
        for slot in [&self.data_pack, &self.tree_pack] {
            let p = std::mem::take(&mut *slot.lock().expect("lock"));
            if !p.is_empty() {
                self.write_pack(p)?;
            }
        }
        self.wait_for_packs()?;
        let f = std::mem::take(&mut self.pending.lock().expect("lock").index);
        self.write_index(&f)
    }

    /// Writes a point and keeps the session open, for long-running writers
    /// that publish many points (a binlog archive): flushes packs and the
    /// index first, so everything the point references is stored before it.
    /// Such a writer should end its session from time to time (commit or
    /// drop, then start a new one), because while its lock lives a prune
    /// defers the deletion of the packs it marks.
    pub fn write_point(&self, point: &RecoveryPoint) -> Result<Id> {
        self.flush()?;
        self.lock
            .as_ref()
            .expect("lock held until commit")
            .check_fresh()?;
        self.vault.write_point(point)
    }

    /// Ends a session whose points were written with [`BackupWriter::write_point`]:
    /// flushes what is pending and releases the lock.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.lock.take().expect("lock held until commit").release()
    }

    /// Finishes the session: flushes, writes the point, releases the lock.
    pub fn commit(mut self, point: &RecoveryPoint) -> Result<Id> {
        self.flush()?;
        crate::testhook::pause("before-point");
        self.lock
            .as_ref()
            .expect("lock held until commit")
            .check_fresh()?;
        let id = self.vault.write_point(point)?;
        self.lock
            .take()
            .expect("lock held until commit")
            .release()?;
        Ok(id)
    }
}

impl Drop for BackupWriter<'_> {
    /// A session that ends without its point (an error, not a kill) removes the
    /// packs no index file names yet: nobody else can know their blobs, and on
    /// a full disk this gives the space back at once. A session that was asked
    /// to stop stores and indexes what it holds instead, for the next backup.
    fn drop(&mut self) {
        if self.lock.is_none() {
            return; // committed
        }
        if stopping() {
            match self.flush() {
                Ok(()) => {
                    tracing::warn!(
                        "interrupted: {} of new data ({} blobs) stored and indexed; the next backup reuses it",
                        human(self.stats.bytes_new.load(Ordering::Relaxed)),
                        self.stats.blobs_new.load(Ordering::Relaxed)
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!("interrupted, and the data in flight could not be stored: {e}")
                }
            }
        }
        // No pack of this session may still be in the writing.
        self.uploader.close();
        for p in self.unindexed.lock().expect("lock").drain(..) {
            if let Err(e) = self.vault.storage().remove(&pack_path(&p)) {
                tracing::warn!("could not remove unfinished pack {}: {e}", p.short());
            }
        }
    }
}

fn human(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}
