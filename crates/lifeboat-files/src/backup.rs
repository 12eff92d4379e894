//! Backing up directory trees.
//!
//! ```text
//! resolve paths → find the parent point (newest of the same resource)
//! mirror the absolute structure from / down to each path
//!     (a given path inside another, reached through a symlink that the other's
//!     walk stores as a link, is stored at its real path: select.rs)
//! save_dir(path, parent subtree), entries in parallel:
//!     a given path inside  stored whole: no excludes, its own filesystem
//!     excluded?            skip
//!     directory            recurse (or an empty tree past a mount point with --one-file-system)
//!     file, unchanged      size, mtime, ctime, inode match the parent's node → reuse its content
//!     file, changed        read (data extents only, for sparse files) → chunk → vault;
//!                          read again when it changed meanwhile (read.rs)
//!     symlink/fifo/device  record; socket → warning, skipped
//!     error on one entry   warning, skipped; the backup goes on
//! tree blob per directory → point
//! ```

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use lifeboat_vault::tree::{Node, NodeKind, Tree};
use lifeboat_vault::{BackupWriter, Id, RecoveryPoint, Summary, Vault};
use rayon::prelude::*;

use crate::meta;
use crate::{Counters, FilesError, Result};

mod read;
mod select;

pub use read::{PARALLEL_FROM, REREADS, SECOND_LOOK_BUDGET, data_extents, recent_window};
use select::Sel;

/// What to back up, and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Paths to back up.
    pub paths: Vec<PathBuf>,
    /// gitignore-style exclude patterns.
    pub excludes: Vec<String>,
    /// Files of exclude patterns, one per line.
    pub exclude_files: Vec<PathBuf>,
    /// Do not cross filesystem boundaries below each path.
    pub one_file_system: bool,
    /// Resource name; default `files:<host>:<paths>`.
    pub resource: Option<String>,
    /// Tags for the point.
    pub tags: Vec<String>,
    /// Kind recorded in the point (default "files").
    pub kind: Option<String>,
    /// Ignore the parent point: read every file.
    pub force_full: bool,
}

/// Result of a backup.
#[derive(Debug, Clone)]
pub struct BackupResult {
    /// The new point's id.
    pub id: Id,
    /// The point.
    pub point: RecoveryPoint,
    /// Entries that could not be backed up, with why (the point is incomplete).
    pub warnings: Vec<String>,
    /// Entries left out by design (sockets), for information.
    pub notes: Vec<String>,
}

struct Ctx<'a> {
    writer: &'a BackupWriter<'a>,
    vault: &'a Vault,
    excludes: Gitignore,
    one_fs: bool,
    counters: &'a Counters,
    warnings: Mutex<Vec<String>>,
    notes: Mutex<Vec<String>>,
    /// How recent a file's times must be for a second read to compare.
    recent: std::time::Duration,
    /// Bytes of second reads left.
    second_looks: AtomicU64,
    /// Files read once for want of second reads: how many, the first.
    unlooked: Mutex<(u64, Option<PathBuf>)>,
}

impl Ctx<'_> {
    fn note(&self, n: String) {
        tracing::info!("{n}");
        self.notes.lock().expect("lock").push(n);
    }

    fn warn(&self, w: String) {
        // Returned to the caller, who shows it: logged only with -v, so
        // it is not printed twice.
        tracing::info!("{w}");
        self.warnings.lock().expect("lock").push(w);
    }

    fn parent_tree(&self, id: Option<Id>) -> HashMap<Vec<u8>, Node> {
        let Some(id) = id else { return HashMap::new() };
        match self.vault.read_tree(self.writer.index(), &id) {
            Ok(t) => t.nodes.into_iter().map(|n| (n.name_bytes(), n)).collect(),
            Err(e) => {
                tracing::debug!("parent tree {id} unreadable, reading files again: {e}");
                HashMap::new()
            }
        }
    }
}

/// Default resource name for a set of paths.
pub fn default_resource(paths: &[PathBuf]) -> String {
    let p: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    format!("files:{}:{}", lifeboat_vault::host_name(), p.join(","))
}

fn build_excludes(opts: &BackupOptions) -> Result<Gitignore> {
    let mut b = GitignoreBuilder::new("/");
    let mut add = |line: &str, from: &str| -> Result<()> {
        b.add_line(None, line)
            .map(|_| ())
            .map_err(|e| FilesError::BadExclude {
                pattern: line.to_string(),
                from: from.to_string(),
                reason: e.to_string(),
            })
    };
    for p in &opts.excludes {
        add(p, "--exclude")?;
    }
    for f in &opts.exclude_files {
        let text =
            std::fs::read_to_string(f).map_err(|e| FilesError::io("read exclude file", f, e))?;
        for line in text.lines() {
            let l = line.trim_end();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            add(l, &f.display().to_string())?;
        }
    }
    b.build().map_err(|e| FilesError::BadExclude {
        pattern: String::new(),
        from: "excludes".into(),
        reason: e.to_string(),
    })
}

/// Backs up `opts.paths` into `vault` as a new recovery point.
pub fn backup(vault: &Vault, opts: &BackupOptions, counters: &Counters) -> Result<BackupResult> {
    let started = Instant::now();
    let time = chrono::Utc::now();
    if opts.paths.is_empty() {
        return Err(FilesError::Usage(
            "give at least one path to back up".into(),
        ));
    }
    let paths = resolve_paths(&opts.paths)?;
    let resource = opts
        .resource
        .clone()
        .unwrap_or_else(|| default_resource(&paths));
    let writer = BackupWriter::start(vault, "backup")?;
    let parent = if opts.force_full {
        None
    } else {
        let (points, _) = vault.list_points()?;
        points
            .into_iter()
            .rev()
            .find(|(_, p)| p.resource == resource)
    };
    let built = build_tree(
        &writer,
        opts,
        &paths,
        parent.as_ref().map(|(_, p)| p.tree),
        Vec::new(),
        counters,
    )?;
    let root = built.root;
    let stats = writer.stats();
    let mut point = RecoveryPoint::new(&resource, opts.kind.as_deref().unwrap_or("files"), root);
    point.time = time;
    point.tags = opts.tags.clone();
    point.paths = built
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    point.parent = parent.as_ref().map(|(id, _)| *id);
    point.summary = Summary {
        files: counters.files.load(Ordering::Relaxed),
        dirs: counters.dirs.load(Ordering::Relaxed),
        size: counters.size.load(Ordering::Relaxed),
        bytes_read: counters.bytes_read.load(Ordering::Relaxed),
        bytes_new: stats.bytes_new.load(Ordering::Relaxed),
        bytes_stored: stats.bytes_stored.load(Ordering::Relaxed),
        blobs_new: stats.blobs_new.load(Ordering::Relaxed),
        duration_s: 0.0,
    };
    point.summary.duration_s = started.elapsed().as_secs_f64();
    let (warnings, notes) = (built.warnings, built.notes);
    let id = writer.commit(&point)?;
    Ok(BackupResult {
        id,
        point,
        warnings,
        notes,
    })
}

/// The root tree of a files-style point, built inside another protector's
/// backup session (the instance protector puts paths and volumes in one point).
#[derive(Debug)]
pub struct BuiltTree {
    /// Root tree blob: the absolute paths mirrored from `/`.
    pub root: Id,
    /// The paths stored: the given ones, except that a path reached through
    /// a symlink that another given path stores as a link is stored at its
    /// real path (see the notes).
    pub paths: Vec<PathBuf>,
    /// Entries that could not be backed up, with why.
    pub warnings: Vec<String>,
    /// Entries left out by design (sockets).
    pub notes: Vec<String>,
}

/// Resolves and checks paths to back up: absolute, normalized, existing,
/// sorted, without duplicates.
pub fn resolve_paths(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for p in given {
        let abs = std::path::absolute(p).map_err(|e| FilesError::io("resolve", p, e))?;
        if std::fs::symlink_metadata(&abs).is_err() {
            return Err(FilesError::NoSuchPath(abs));
        }
        paths.push(normalize(&abs));
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Backs up `paths` (absolute, from [`resolve_paths`]) with `writer`, with the
/// excludes and `one_file_system` of `opts` (its other fields are not used),
/// and returns the root tree, without writing a point. `parent_root` is the root
/// tree of the parent point (unchanged files are not read again). `extra`
/// are nodes built by the caller, placed at their absolute paths (which must
/// not lie inside one of `paths`); their parent directories are mirrored.
/// A path inside another is stored as [`BuiltTree::paths`] says (see
/// `select.rs`): overlapping paths lose nothing.
pub fn build_tree(
    writer: &BackupWriter,
    opts: &BackupOptions,
    paths: &[PathBuf],
    parent_root: Option<Id>,
    extra: Vec<(PathBuf, Node)>,
    counters: &Counters,
) -> Result<BuiltTree> {
    let ctx = Ctx {
        writer,
        vault: writer.vault(),
        excludes: build_excludes(opts)?,
        one_fs: opts.one_file_system,
        counters,
        warnings: Mutex::new(Vec::new()),
        notes: Mutex::new(Vec::new()),
        recent: read::recent_window(),
        second_looks: AtomicU64::new(read::SECOND_LOOK_BUDGET),
        unlooked: Mutex::new((0, None)),
    };

    let (paths, notes) = select::relocate(paths)?;
    for n in notes {
        ctx.note(n);
    }
    let sel = Sel::new(&paths, extra)?;
    let root = virtual_dir(&ctx, Path::new("/"), &sel, parent_root)?;
    if let Some(n) = read::unlooked_note(&ctx) {
        ctx.note(n);
    }
    Ok(BuiltTree {
        root,
        paths,
        warnings: ctx.warnings.into_inner().expect("lock"),
        notes: ctx.notes.into_inner().expect("lock"),
    })
}

/// The tree of a directory on the way to given paths (or caller's nodes):
/// only what leads to them, each given path stored whole.
fn virtual_dir(ctx: &Ctx, dir: &Path, sel: &Sel, parent: Option<Id>) -> Result<Id> {
    let prev = ctx.parent_tree(parent);
    let mut nodes = Vec::new();
    for (name, s) in &sel.children {
        if let Some(n) = &s.built {
            let mut n = n.clone();
            n.set_name_bytes(name.as_bytes());
            nodes.push(n);
            continue;
        }
        let path = dir.join(name);
        let md = std::fs::symlink_metadata(&path).map_err(|e| FilesError::io("stat", &path, e))?;
        let prev_node = prev.get(name.as_bytes());
        let node = if s.whole {
            let dev = md.dev();
            save_entry(ctx, &path, name.as_bytes(), md, prev_node, dev, Some(s))?
        } else {
            Some(mirror(ctx, &path, name.as_bytes(), &md, s, prev_node)?)
        };
        nodes.extend(node);
    }
    Ok(ctx.writer.save_tree(&Tree { nodes })?)
}

/// A directory (or a link) on the way to given paths: its own metadata and a
/// tree of only what leads to them.
fn mirror(
    ctx: &Ctx,
    path: &Path,
    name: &[u8],
    md: &std::fs::Metadata,
    sel: &Sel,
    prev: Option<&Node>,
) -> Result<Node> {
    let mut n = meta::node_from(path, name, md);
    n.subtree = Some(virtual_dir(ctx, path, sel, prev.and_then(|p| p.subtree))?);
    ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
    Ok(n)
}

/// An entry of a walked directory that is, or leads to, a given path: a given
/// path is stored whole (whatever the excludes and filesystem of the walk
/// around it); a directory leading to one is walked as usual when the walk
/// would enter it, else mirrored (only what leads to the given path).
fn save_selected(
    ctx: &Ctx,
    path: &Path,
    name: &[u8],
    md: std::fs::Metadata,
    prev: Option<&Node>,
    root_dev: u64,
    sel: &Sel,
) -> Result<Option<Node>> {
    if sel.whole {
        let dev = md.dev();
        return save_entry(ctx, path, name, md, prev, dev, Some(sel));
    }
    let excluded = ctx.excludes.matched(path, md.is_dir()).is_ignore();
    let other_fs = ctx.one_fs && md.dev() != root_dev;
    if md.is_dir() && !excluded && !other_fs {
        return save_entry(ctx, path, name, md, prev, root_dev, Some(sel));
    }
    Ok(Some(mirror(ctx, path, name, &md, sel, prev)?))
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The tree of a walked directory; `sel`: the given paths below it.
fn save_dir(
    ctx: &Ctx,
    dir: &Path,
    parent: Option<Id>,
    root_dev: u64,
    sel: Option<&Sel>,
) -> Result<Id> {
    let prev = ctx.parent_tree(parent);
    let mut names: Vec<OsString> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| match e {
                Ok(e) => Some(e.file_name()),
                Err(err) => {
                    ctx.warn(format!("{}: {err}", dir.display()));
                    None
                }
            })
            .collect(),
        Err(e) => {
            ctx.warn(format!(
                "cannot list {}: {e}; stored as empty",
                dir.display()
            ));
            Vec::new()
        }
    };
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let nodes: Vec<Result<Option<Node>>> = names
        .par_iter()
        .map(|name| {
            let path = dir.join(name);
            let md = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    ctx.warn(format!("cannot stat {}: {e}; skipped", path.display()));
                    return Ok(None);
                }
            };
            let prev = prev.get(name.as_bytes());
            if let Some(s) = sel.and_then(|s| s.children.get(name)) {
                return save_selected(ctx, &path, name.as_bytes(), md, prev, root_dev, s);
            }
            if ctx.excludes.matched(&path, md.is_dir()).is_ignore() {
                return Ok(None);
            }
            save_entry(ctx, &path, name.as_bytes(), md, prev, root_dev, None)
        })
        .collect();
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        out.extend(n?);
    }
    Ok(ctx.writer.save_tree(&Tree { nodes: out })?)
}

fn save_entry(
    ctx: &Ctx,
    path: &Path,
    name: &[u8],
    md: std::fs::Metadata,
    prev: Option<&Node>,
    root_dev: u64,
    sel: Option<&Sel>,
) -> Result<Option<Node>> {
    let mut node = meta::node_from(path, name, &md);
    match node.kind {
        NodeKind::Dir => {
            ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
            if ctx.one_fs && md.dev() != root_dev {
                node.subtree = Some(ctx.writer.save_tree(&Tree::default())?);
            } else {
                let prev = prev.and_then(|p| p.subtree);
                node.subtree = Some(save_dir(ctx, path, prev, root_dev, sel)?);
            }
        }
        NodeKind::File => {
            ctx.counters.files.fetch_add(1, Ordering::Relaxed);
            ctx.counters.size.fetch_add(node.size, Ordering::Relaxed);
            let unchanged = prev.filter(|p| {
                p.kind == NodeKind::File
                    && p.size == node.size
                    && p.mtime_ns == node.mtime_ns
                    && p.ctime_ns == node.ctime_ns
                    && p.inode == node.inode
                    && p.content.iter().all(|b| ctx.writer.has_blob(b))
            });
            if let Some(p) = unchanged {
                node.content = p.content.clone();
                node.extents = p.extents.clone();
            } else {
                match read::read_file(ctx, path, &md, &mut node) {
                    Ok(()) => {}
                    // The file could not be read: skip it, go on.
                    Err(FilesError::Io { source, .. }) => {
                        ctx.warn(format!("cannot read {}: {source}; skipped", path.display()));
                        return Ok(None);
                    }
                    Err(FilesError::Vault(lifeboat_vault::VaultError::Io { source, .. })) => {
                        ctx.warn(format!("cannot read {}: {source}; skipped", path.display()));
                        return Ok(None);
                    }
                    // The vault failed: the backup stops.
                    Err(e) => return Err(e),
                }
            }
        }
        NodeKind::Socket => {
            // A socket only exists while its server runs: nothing to restore.
            ctx.note(format!("{} is a socket; skipped", path.display()));
            return Ok(None);
        }
        NodeKind::Symlink | NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev => {
            ctx.counters.files.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(Some(node))
}
