//! Change feeds: where the replicator learns that a key may have changed.
//!
//! - Directory sources: inotify (through the `notify` crate), recursive. A
//!   new directory is walked at once (files written into it before its
//!   watch existed are not missed); a queue overflow asks for a full listing.
//! - S3 sources: no notifications (S3-compatible stores differ, moto has
//!   none), so the engine lists in a loop whose interval adapts: short while
//!   listings find changes, doubling up to a maximum while they do not.
//! - Every source also gets a periodic full listing as a safety net.
//!
//! A feed only says "look at key K"; the copy worker then compares the
//! source's current version with the state, so a spurious or repeated event
//! costs a `stat`, never a copy.

use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::store::dir::TMP_DIR;

/// What a feed reports.
#[derive(Debug)]
pub enum FeedEvent {
    /// These keys may have changed.
    Keys(Vec<String>),
    /// Events were lost: list everything.
    Rescan,
}

/// A running filesystem watch; dropping it stops the watch.
pub struct DirFeed {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for DirFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirFeed")
    }
}

fn key_of(root: &Path, p: &Path) -> Option<String> {
    let rel = p.strip_prefix(root).ok()?;
    let k = rel.to_str()?.to_string();
    if k.is_empty() || k == TMP_DIR || k.starts_with(&format!("{TMP_DIR}/")) {
        return None;
    }
    Some(k)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(root, &p, out),
            Ok(t) if t.is_file() => out.extend(key_of(root, &p)),
            _ => {}
        }
    }
}

/// The watch on a new directory is added after its creation event: a file
/// put there in between sends no event. Walk it again once the watch surely
/// exists (the keys are only compared with the state: duplicates are cheap).
fn rewalk_later(root: &Path, dir: &Path, prefix: &str, tx: &mpsc::UnboundedSender<FeedEvent>) {
    let (root, dir, prefix, tx) = (
        root.to_path_buf(),
        dir.to_path_buf(),
        prefix.to_string(),
        tx.clone(),
    );
    std::thread::spawn(move || {
        for delay in [100, 1000] {
            std::thread::sleep(std::time::Duration::from_millis(delay));
            let mut keys = Vec::new();
            walk(&root, &dir, &mut keys);
            keys.retain(|k| k.starts_with(&prefix));
            if !keys.is_empty() && tx.send(FeedEvent::Keys(keys)).is_err() {
                return;
            }
        }
    });
}

impl DirFeed {
    /// Watches `root` (recursively) and sends events for keys starting with `prefix`.
    pub fn start(
        root: &Path,
        prefix: &str,
        tx: mpsc::UnboundedSender<FeedEvent>,
    ) -> notify::Result<DirFeed> {
        let root: PathBuf = root.to_path_buf();
        let r = root.clone();
        let prefix = prefix.to_string();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let ev = match res {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::warn!(
                            "filesystem watch of {}: {e}; listing everything",
                            r.display()
                        );
                        let _ = tx.send(FeedEvent::Rescan);
                        return;
                    }
                };
                if ev.need_rescan() {
                    let _ = tx.send(FeedEvent::Rescan);
                    return;
                }
                if matches!(
                    ev.kind,
                    EventKind::Access(notify::event::AccessKind::Open(_))
                        | EventKind::Access(notify::event::AccessKind::Read)
                ) {
                    return;
                }
                let mut keys = Vec::new();
                for p in &ev.paths {
                    match std::fs::symlink_metadata(p) {
                        Ok(md) if md.is_dir() => {
                            if matches!(
                                ev.kind,
                                EventKind::Create(_)
                                    | EventKind::Modify(notify::event::ModifyKind::Name(_))
                            ) {
                                walk(&r, p, &mut keys);
                                rewalk_later(&r, p, &prefix, &tx);
                            }
                        }
                        _ => keys.extend(key_of(&r, p)),
                    }
                }
                keys.retain(|k| k.starts_with(&prefix));
                if !keys.is_empty() {
                    let _ = tx.send(FeedEvent::Keys(keys));
                }
            })?;
        watcher.watch(&root, RecursiveMode::Recursive)?;
        Ok(DirFeed { _watcher: watcher })
    }
}
