//! Bucket snapshots: a bucket (or the keys under a prefix) into a recovery
//! point of kind `bucket`.
//!
//! ```text
//! find the parent point (newest of the same resource)
//! list the bucket (a thread streams the listing; keys of one "directory" come together)
//! per batch of listed objects, in order:
//!     version token, size equal to the parent's node, and all its blobs live
//!         in the vault → reuse its node (no read)
//!     else read the object (bytes, content type, metadata, tags), in parallel
//!          → chunk → vault
//! keys split on '/' form the tree; one tree blob per "directory", written
//! when the listing leaves it (memory: the open directories only)
//! ```
//! Node names are escaped so that every key survives (see
//! `docs/vault-format.md`, "Point kinds: bucket"): `%` is `%25`, an empty
//! component (`a//b`, a trailing `/`) is `%`, and an object whose name equals a
//! directory's in the same tree gets a `%` suffix.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use lifeboat_vault::tree::{Node, NodeKind, Tree};
use lifeboat_vault::{BackupWriter, Id, RecoveryPoint, Summary, Vault};

use crate::error::{BucketError, Result};
use crate::store::{Bucket, ObjectInfo, ObjectMeta, Source};

/// Objects handled together (read in parallel, then added in order).
const BATCH: usize = 256;
/// Objects read at once.
const READERS: usize = 8;

/// What to snapshot, and how.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    /// Only keys starting with this.
    pub prefix: String,
    /// Resource name; default `bucket:<address>` (and `#<prefix>`).
    pub resource: Option<String>,
    /// Tags of the point.
    pub tags: Vec<String>,
    /// Read every object, even those unchanged since the parent point.
    pub force_full: bool,
}

/// Live counters, for progress.
#[derive(Debug, Default)]
pub struct Counters {
    /// Objects seen.
    pub objects: AtomicU64,
    /// Objects whose bytes were read.
    pub objects_read: AtomicU64,
    /// Bytes read from the bucket.
    pub bytes_read: AtomicU64,
    /// Logical bytes of the objects seen.
    pub size: AtomicU64,
}

/// Result of a snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotResult {
    /// The new point's id.
    pub id: Id,
    /// The point.
    pub point: RecoveryPoint,
    /// Objects that could not be read (the point lacks them), with why.
    pub warnings: Vec<String>,
}

/// Default resource name of a bucket (and prefix).
pub fn default_resource(address: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("bucket:{address}")
    } else {
        format!("bucket:{address}#{prefix}")
    }
}

/// Escapes one key component into a node name.
pub fn escape(c: &str) -> String {
    if c.is_empty() {
        "%".to_string()
    } else {
        c.replace('%', "%25")
    }
}

/// The key component a node name stands for.
pub fn unescape(name: &str) -> String {
    if name == "%" {
        String::new()
    } else if let Some(s) = name.strip_suffix('%') {
        unescape(s)
    } else {
        name.replace("%25", "%")
    }
}

/// The attributes of an object node (format: see the module docs).
pub fn node_attrs(info: &ObjectInfo, meta: &ObjectMeta) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert("version".to_string(), info.version.clone());
    if let Some(e) = &info.etag {
        a.insert("etag".to_string(), e.clone());
    }
    if let Some(ct) = &meta.content_type {
        a.insert("content-type".to_string(), ct.clone());
    }
    for (k, v) in &meta.user {
        a.insert(format!("meta.{k}"), v.clone());
    }
    for (k, v) in &meta.tags {
        a.insert(format!("tag.{k}"), v.clone());
    }
    a
}

/// The object metadata an object node carries.
pub fn node_meta(n: &Node) -> ObjectMeta {
    let mut m = ObjectMeta {
        content_type: n.attrs.get("content-type").cloned(),
        modified_ns: (n.mtime_ns != 0).then_some(n.mtime_ns),
        ..ObjectMeta::default()
    };
    for (k, v) in &n.attrs {
        if let Some(k) = k.strip_prefix("meta.") {
            m.user.insert(k.to_string(), v.clone());
        } else if let Some(k) = k.strip_prefix("tag.") {
            m.tags.insert(k.to_string(), v.clone());
        }
    }
    m
}

/// An open "directory" of the point's tree.
struct Level {
    name: String,
    nodes: Vec<Node>,
    parent: HashMap<String, Node>,
}

/// A tokio runtime for the bucket's I/O, driven from plain threads.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lifeboat-bucket-io")
        .enable_all()
        .build()
        .map_err(|e| BucketError::State {
            path: String::new(),
            reason: format!("cannot start the I/O runtime: {e}"),
        })
}

/// Reads an object as a blocking `Read` (for the vault's chunker).
struct BlockingReader<'a> {
    rt: &'a tokio::runtime::Runtime,
    obj: crate::store::ObjectReader,
    buf: bytes::Bytes,
    err: Option<BucketError>,
}

impl Read for BlockingReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rt.block_on(self.obj.next_chunk()) {
                Ok(Some(b)) => self.buf = b,
                Ok(None) => return Ok(0),
                Err(e) => {
                    let msg = e.to_string();
                    self.err = Some(e);
                    return Err(std::io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

fn read_object(
    rt: &tokio::runtime::Runtime,
    bucket: &Bucket,
    w: &BackupWriter,
    info: &ObjectInfo,
    c: &Counters,
) -> Result<Node> {
    let obj = rt.block_on(bucket.open_read(&info.key, Some(&info.version)))?;
    let meta = obj.meta.clone();
    let size = obj.info.size;
    let mut r = BlockingReader {
        rt,
        obj,
        buf: bytes::Bytes::new(),
        err: None,
    };
    let res = w.save_stream(&mut r, |n| {
        c.bytes_read.fetch_add(n, Ordering::Relaxed);
    });
    if let Some(e) = r.err.take() {
        return Err(e);
    }
    let (content, read) = res?;
    rt.block_on(r.obj.finish())?;
    if read != size {
        return Err(BucketError::Changed {
            bucket: bucket.address().to_string(),
            key: info.key.clone(),
        });
    }
    c.objects_read.fetch_add(1, Ordering::Relaxed);
    Ok(Node {
        kind: NodeKind::File,
        size,
        mtime_ns: info.modified_ns,
        content,
        attrs: node_attrs(info, &meta),
        ..Node::default()
    })
}

/// Snapshots `bucket` into `vault`.
pub fn snapshot(
    vault: &Vault,
    bucket: &Bucket,
    opts: &SnapshotOptions,
    c: &Counters,
) -> Result<SnapshotResult> {
    let started = Instant::now();
    let time = chrono::Utc::now();
    let resource = opts
        .resource
        .clone()
        .unwrap_or_else(|| default_resource(bucket.address(), &opts.prefix));
    let rt = runtime()?;
    let writer = BackupWriter::start(vault, "backup")?;
    let parent = if opts.force_full {
        None
    } else {
        let (points, _) = vault.list_points()?;
        points
            .into_iter()
            .rev()
            .find(|(_, p)| p.resource == resource && p.kind == "bucket")
    };
    let mut walk = TreeWalk::new(vault, &writer, parent.as_ref().map(|p| p.1.tree));
    // The listing streams from another thread, a batch at a time.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<ObjectInfo>>>(4);
    std::thread::scope(|s| -> Result<()> {
        let (rt, prefix) = (&rt, &opts.prefix);
        let lister = s.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let r = rt.block_on(bucket.list(prefix, &mut |o| {
                batch.push(o);
                if batch.len() >= BATCH {
                    let _ = tx.send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))));
                }
            }));
            let _ = tx.send(r.map(|_| batch));
        });
        for batch in rx {
            walk.add_batch(&batch?, rt, bucket, c)?;
        }
        lister.join().expect("lister thread");
        Ok(())
    })?;
    let (root, dirs, warnings) = walk.finish()?;
    let stats = writer.stats();
    let mut point = RecoveryPoint::new(&resource, "bucket", root);
    point.time = time;
    point.tags = opts.tags.clone();
    point.paths = vec![bucket.address().to_string()];
    point.parent = parent.as_ref().map(|(id, _)| *id);
    point.meta = serde_json::json!({ "bucket": bucket.address(), "prefix": opts.prefix });
    point.summary = Summary {
        files: c.objects.load(Ordering::Relaxed) - warnings.len() as u64,
        dirs,
        size: c.size.load(Ordering::Relaxed),
        bytes_read: c.bytes_read.load(Ordering::Relaxed),
        bytes_new: stats.bytes_new.load(Ordering::Relaxed),
        bytes_stored: stats.bytes_stored.load(Ordering::Relaxed),
        blobs_new: stats.blobs_new.load(Ordering::Relaxed),
        duration_s: started.elapsed().as_secs_f64(),
    };
    let id = writer.commit(&point)?;
    Ok(SnapshotResult {
        id,
        point,
        warnings,
    })
}

/// The point's tree as the listing walks the keys: the open "directories"
/// (the root first), each with the parent point's nodes there.
struct TreeWalk<'a, 'w> {
    vault: &'a Vault,
    writer: &'a BackupWriter<'w>,
    stack: Vec<Level>,
    /// Directories written.
    dirs: u64,
    /// Objects that could not be read, with why.
    warnings: Vec<String>,
}

impl<'a, 'w> TreeWalk<'a, 'w> {
    /// A walk whose root holds the nodes of the parent point's tree `parent`.
    fn new(vault: &'a Vault, writer: &'a BackupWriter<'w>, parent: Option<Id>) -> Self {
        let mut walk = TreeWalk {
            vault,
            writer,
            stack: Vec::new(),
            dirs: 0,
            warnings: Vec::new(),
        };
        let parent = walk.read_tree(parent);
        walk.stack.push(Level {
            name: String::new(),
            nodes: Vec::new(),
            parent,
        });
        walk
    }

    /// The nodes of the parent point's tree `id` by name (none when there is
    /// none, or it cannot be read).
    fn read_tree(&self, id: Option<Id>) -> HashMap<String, Node> {
        id.and_then(|id| self.vault.read_tree(self.writer.index(), &id).ok())
            .map(|t| t.nodes.into_iter().map(|n| (n.name.clone(), n)).collect())
            .unwrap_or_default()
    }

    /// Writes the top directory's tree and adds it to the one above.
    fn close(&mut self) -> Result<()> {
        let l = self.stack.pop().expect("a level to close");
        let id = self.writer.save_tree(&finish_tree(l.nodes))?;
        self.dirs += 1;
        self.stack
            .last_mut()
            .expect("the root stays")
            .nodes
            .push(Node {
                name: l.name,
                kind: NodeKind::Dir,
                subtree: Some(id),
                ..Node::default()
            });
        Ok(())
    }

    /// Closes the open directories below the first `common` ones and opens
    /// the rest of `dirs_of`.
    fn move_to(&mut self, dirs_of: &[String], common: usize) -> Result<()> {
        while self.stack.len() - 1 > common {
            self.close()?;
        }
        for d in &dirs_of[common..] {
            let sub = self
                .stack
                .last()
                .and_then(|l| l.parent.get(d))
                .filter(|n| n.kind == NodeKind::Dir)
                .and_then(|n| n.subtree);
            let parent = self.read_tree(sub);
            self.stack.push(Level {
                name: d.clone(),
                nodes: Vec::new(),
                parent,
            });
        }
        Ok(())
    }

    /// The parent point's node of object `info` (named `leaf`) when it can
    /// be reused without a read: same version and size, and every blob live
    /// in the vault (not in a pack prune marked or deleted: spec §8).
    fn reusable(&self, leaf: &str, info: &ObjectInfo) -> Option<Node> {
        let top = self.stack.last().expect("a level");
        let prev = top
            .parent
            .get(leaf)
            .filter(|n| n.kind == NodeKind::File)
            .or_else(|| top.parent.get(&format!("{leaf}%")));
        match prev {
            Some(p)
                if p.attrs.get("version") == Some(&info.version)
                    && p.size == info.size
                    && p.content.iter().all(|b| self.writer.has_blob(b)) =>
            {
                let mut n = p.clone();
                n.name = leaf.to_string();
                Some(n)
            }
            _ => None,
        }
    }

    /// Adds one listing batch: each object reused from the parent point or
    /// read, in listing order, the directories following the keys.
    fn add_batch(
        &mut self,
        batch: &[ObjectInfo],
        rt: &tokio::runtime::Runtime,
        bucket: &Bucket,
        c: &Counters,
    ) -> Result<()> {
        let names: Vec<(Vec<String>, String)> = batch
            .iter()
            .map(|info| {
                let comps: Vec<&str> = info.key.split('/').collect();
                let (leaf, dirs_of) = comps.split_last().expect("split yields one part");
                (dirs_of.iter().map(|d| escape(d)).collect(), escape(leaf))
            })
            .collect();
        let flush = Flush {
            batch,
            names: &names,
            rt,
            bucket,
            writer: self.writer,
            c,
        };
        let mut staged: Vec<Option<Node>> = vec![None; batch.len()];
        let mut placed: Vec<usize> = Vec::new();
        let mut to_read: Vec<usize> = Vec::new();
        for (i, info) in batch.iter().enumerate() {
            let (dirs_of, leaf) = &names[i];
            let common = self
                .stack
                .iter()
                .skip(1)
                .zip(dirs_of)
                .take_while(|(l, d)| &l.name == *d)
                .count();
            if self.stack.len() - 1 != common || dirs_of.len() != common {
                // The directory changes: what was staged belongs to the current one.
                flush.run(
                    &mut self.stack,
                    &mut staged,
                    &mut self.warnings,
                    &mut placed,
                    &mut to_read,
                )?;
                self.move_to(dirs_of, common)?;
            }
            c.objects.fetch_add(1, Ordering::Relaxed);
            c.size.fetch_add(info.size, Ordering::Relaxed);
            match self.reusable(leaf, info) {
                Some(n) => staged[i] = Some(n),
                None => to_read.push(i),
            }
            placed.push(i);
        }
        flush.run(
            &mut self.stack,
            &mut staged,
            &mut self.warnings,
            &mut placed,
            &mut to_read,
        )
    }

    /// Closes every open directory and writes the root: its tree's id, the
    /// directories written and the warnings.
    fn finish(mut self) -> Result<(Id, u64, Vec<String>)> {
        while self.stack.len() > 1 {
            self.close()?;
        }
        let root = self
            .writer
            .save_tree(&finish_tree(self.stack.pop().expect("root").nodes))?;
        Ok((root, self.dirs, self.warnings))
    }
}

/// What reading and placing the objects of one listing batch needs.
struct Flush<'a, 'w> {
    batch: &'a [ObjectInfo],
    names: &'a [(Vec<String>, String)],
    rt: &'a tokio::runtime::Runtime,
    bucket: &'a Bucket,
    writer: &'a BackupWriter<'w>,
    c: &'a Counters,
}

impl Flush<'_, '_> {
    /// Reads the objects that need reading (in parallel) and appends every
    /// placed object to the current top level, in listing order.
    fn run(
        &self,
        stack: &mut [Level],
        staged: &mut [Option<Node>],
        warnings: &mut Vec<String>,
        placed: &mut Vec<usize>,
        to_read: &mut Vec<usize>,
    ) -> Result<()> {
        if placed.is_empty() {
            return Ok(());
        }
        let (rt, bucket, writer, c, batch) =
            (self.rt, self.bucket, self.writer, self.c, self.batch);
        let results: Vec<(usize, Result<Node>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..READERS)
                .map(|r| {
                    to_read
                        .iter()
                        .copied()
                        .skip(r)
                        .step_by(READERS)
                        .collect::<Vec<_>>()
                })
                .filter(|idx| !idx.is_empty())
                .map(|idx| {
                    s.spawn(move || {
                        idx.into_iter()
                            .map(|i| (i, read_object(rt, bucket, writer, &batch[i], c)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("reader thread"))
                .collect()
        });
        for (i, r) in results {
            match r {
                Ok(mut n) => {
                    n.name = self.names[i].1.clone();
                    staged[i] = Some(n);
                }
                Err(e) if e.is_retryable() || e.is_not_found() => {
                    warnings.push(format!("{}: {e}; not in this point", batch[i].key));
                }
                Err(e) => return Err(e),
            }
        }
        let top = stack.last_mut().expect("a level");
        for i in placed.drain(..) {
            if let Some(n) = staged[i].take() {
                top.nodes.push(n);
            }
        }
        to_read.clear();
        Ok(())
    }
}

/// Sorts a level's nodes; an object named like a directory gets a `%` suffix.
fn finish_tree(mut nodes: Vec<Node>) -> Tree {
    let dir_names: std::collections::HashSet<String> = nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Dir)
        .map(|n| n.name.clone())
        .collect();
    for n in nodes.iter_mut() {
        if n.kind == NodeKind::File && dir_names.contains(&n.name) {
            n.name.push('%');
        }
    }
    nodes.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Tree { nodes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_lossless() {
        for c in ["", "a", "%", "%25", "50%", "a%b", "%%", "."] {
            assert_eq!(unescape(&escape(c)), c, "{c:?}");
            assert_eq!(
                unescape(&format!("{}%", escape(c))),
                c,
                "collision form of {c:?}"
            );
        }
        assert_ne!(escape(""), escape("%"));
    }
}
