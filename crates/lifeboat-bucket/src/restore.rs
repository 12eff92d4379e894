//! Restoring a bucket point into a bucket.
//!
//! ```text
//! walk the point's trees depth first → (key, object node), keys rebuilt from
//!     the escaped names; only keys under --prefix
//! N worker threads, each: read the object's blobs from the vault in order
//!     (verified against their ids) → a bounded channel → put into the bucket
//!     with its content type, metadata and tags (atomic: all or nothing)
//! an object that cannot be restored (a damaged blob, a key the bucket cannot
//!     hold) is named in the report; everything else is restored
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use lifeboat_vault::tree::{Node, NodeKind};
use lifeboat_vault::{Id, Index, Vault};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::{BucketError, Result};
use crate::snapshot::{node_meta, runtime, unescape};
use crate::store::{Bucket, Source};

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Only keys starting with this.
    pub prefix: String,
    /// Objects restored at once.
    pub concurrency: usize,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            prefix: String::new(),
            concurrency: 8,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// Objects restored.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects that could not be restored, with why.
    pub failed: Vec<String>,
}

/// Calls `each(key, node)` for every object of a tree, depth first.
pub fn walk(
    vault: &Vault,
    index: &Index,
    tree: &Id,
    prefix: &str,
    each: &mut dyn FnMut(String, Node) -> Result<()>,
) -> Result<()> {
    let t = vault.read_tree(index, tree)?;
    for n in t.nodes {
        let key = format!("{prefix}{}", unescape(&n.name));
        match (n.kind, n.subtree) {
            (NodeKind::Dir, Some(sub)) => walk(vault, index, &sub, &format!("{key}/"), each)?,
            (NodeKind::File, _) => each(key, n)?,
            _ => {}
        }
    }
    Ok(())
}

struct ChannelSource {
    rx: mpsc::Receiver<std::result::Result<Bytes, String>>,
    size: u64,
    key: String,
}

impl Source for ChannelSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.rx.recv().await {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(BucketError::BadPoint(format!("{}: {e}", self.key))),
        }
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn size_hint(&self) -> Option<u64> {
        Some(self.size)
    }
}

/// How many objects `bucket` holds under `prefix` (a full listing: what a
/// caller checks before restoring into a bucket it wants empty).
pub fn count(bucket: &Bucket, prefix: &str) -> Result<u64> {
    let mut n = 0u64;
    runtime()?.block_on(bucket.list(prefix, &mut |_| n += 1))?;
    Ok(n)
}

/// Restores point `point` into `bucket`.
pub fn restore(
    vault: &Vault,
    point: &Id,
    bucket: &Bucket,
    opts: &RestoreOptions,
    written: &AtomicU64,
) -> Result<RestoreReport> {
    let index = vault.load_index()?;
    let p = vault.read_point(point)?;
    if p.kind != "bucket" {
        return Err(BucketError::BadPoint(format!(
            "recovery point {} is of kind {:?}, not a bucket (see `lifeboat points list`)",
            point.short(),
            p.kind
        )));
    }
    let rt = runtime()?;
    let report = Mutex::new(RestoreReport::default());
    let (tx, rx) = std::sync::mpsc::sync_channel::<(String, Node)>(opts.concurrency.max(1) * 2);
    let rx = Mutex::new(rx);
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..opts.concurrency.max(1) {
            s.spawn(|| {
                loop {
                    let next = rx.lock().expect("queue").recv();
                    let Ok((key, node)) = next else { break };
                    match restore_one(vault, &index, &rt, bucket, &key, &node, written) {
                        Ok(()) => {
                            let mut r = report.lock().expect("report");
                            r.objects += 1;
                            r.bytes += node.size;
                        }
                        Err(e) => report
                            .lock()
                            .expect("report")
                            .failed
                            .push(format!("{key}: {e}")),
                    }
                }
            });
        }
        let r = walk(vault, &index, &p.tree, "", &mut |key, node| {
            if key.starts_with(&opts.prefix) {
                tx.send((key, node))
                    .map_err(|_| BucketError::BadPoint("restore workers stopped".into()))?;
            }
            Ok(())
        });
        drop(tx);
        r
    })?;
    let mut rep = report.into_inner().expect("report");
    rep.failed.sort();
    Ok(rep)
}

fn restore_one(
    vault: &Vault,
    index: &Index,
    rt: &tokio::runtime::Runtime,
    bucket: &Bucket,
    key: &str,
    node: &Node,
    written: &AtomicU64,
) -> Result<()> {
    let (tx, rx) = mpsc::channel(2);
    let meta = node_meta(node);
    let (b, k) = (bucket.clone(), key.to_string());
    let mut src = ChannelSource {
        rx,
        size: node.size,
        key: key.to_string(),
    };
    let put = rt.spawn(async move { b.put(&k, &meta, &mut src).await });
    for id in &node.content {
        let r = vault
            .read_blob(index, id)
            .map(Bytes::from)
            .map_err(|e| e.to_string());
        let failed = r.is_err();
        if let Ok(b) = &r {
            written.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        if tx.blocking_send(r).is_err() || failed {
            break; // the put failed, or it will fail on this error
        }
    }
    drop(tx);
    let info = rt
        .block_on(put)
        .map_err(|e| BucketError::BadPoint(format!("{key}: restore task failed: {e}")))??;
    if info.size != node.size {
        return Err(BucketError::BadPoint(format!(
            "{key}: wrote {} bytes, the point holds {}",
            info.size, node.size
        )));
    }
    Ok(())
}
