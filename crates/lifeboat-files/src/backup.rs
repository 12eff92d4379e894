//! Backing up directory trees.
//!
//! ```text
//! resolve paths → find the parent point (newest of the same resource)
//! mirror the absolute structure from / down to each path
//! save_dir(path, parent subtree), entries in parallel:
//!     excluded?            skip
//!     directory            recurse (or an empty tree past a mount point with --one-file-system)
//!     file, unchanged      size, mtime, ctime, inode match the parent's node → reuse its content
//!     file, changed        read (data extents only, for sparse files) → chunk → vault
//!     symlink/fifo/device  record; socket → warning, skipped
//!     error on one entry   warning, skipped; the backup goes on
//! tree blob per directory → point
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use lifeboat_vault::tree::{Node, NodeKind, Tree};
use lifeboat_vault::{BackupWriter, Id, RecoveryPoint, Summary, Vault};
use rayon::prelude::*;

use crate::meta;
use crate::{Counters, FilesError, Result};

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
    point.paths = paths.iter().map(|p| p.display().to_string()).collect();
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
    };

    // The selection as a tree of path components below /.
    #[derive(Default)]
    struct Sel {
        whole: bool,
        built: Option<Node>,
        children: BTreeMap<OsString, Sel>,
    }
    let mut sel = Sel::default();
    for p in paths {
        let mut cur = &mut sel;
        for c in p.components().skip(1) {
            cur = cur
                .children
                .entry(c.as_os_str().to_os_string())
                .or_default();
        }
        cur.whole = true;
    }
    for (p, node) in extra {
        let mut cur = &mut sel;
        for c in p.components().skip(1) {
            if cur.whole {
                return Err(FilesError::Usage(format!(
                    "{} lies inside a backed-up path; give it only once",
                    p.display()
                )));
            }
            cur = cur
                .children
                .entry(c.as_os_str().to_os_string())
                .or_default();
        }
        if cur.whole || !cur.children.is_empty() || cur.built.is_some() {
            return Err(FilesError::Usage(format!(
                "{} is given twice, or contains a backed-up path",
                p.display()
            )));
        }
        cur.built = Some(node);
    }
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
            let md =
                std::fs::symlink_metadata(&path).map_err(|e| FilesError::io("stat", &path, e))?;
            let prev_node = prev.get(name.as_bytes());
            let node = if s.whole {
                let root_dev = md.dev();
                save_entry(ctx, &path, name.as_bytes(), md, prev_node, root_dev)?
            } else {
                let mut n = meta::node_from(&path, name.as_bytes(), &md);
                n.subtree = Some(virtual_dir(
                    ctx,
                    &path,
                    s,
                    prev_node.and_then(|p| p.subtree),
                )?);
                ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
                Some(n)
            };
            nodes.extend(node);
        }
        Ok(ctx.writer.save_tree(&Tree { nodes })?)
    }
    let root = virtual_dir(&ctx, Path::new("/"), &sel, parent_root)?;
    Ok(BuiltTree {
        root,
        warnings: ctx.warnings.into_inner().expect("lock"),
        notes: ctx.notes.into_inner().expect("lock"),
    })
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

fn save_dir(ctx: &Ctx, dir: &Path, parent: Option<Id>, root_dev: u64) -> Result<Id> {
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
            if ctx.excludes.matched(&path, md.is_dir()).is_ignore() {
                return Ok(None);
            }
            save_entry(
                ctx,
                &path,
                name.as_bytes(),
                md,
                prev.get(name.as_bytes()),
                root_dev,
            )
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
) -> Result<Option<Node>> {
    let mut node = meta::node_from(path, name, &md);
    match node.kind {
        NodeKind::Dir => {
            ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
            if ctx.one_fs && md.dev() != root_dev {
                node.subtree = Some(ctx.writer.save_tree(&Tree::default())?);
            } else {
                node.subtree = Some(save_dir(ctx, path, prev.and_then(|p| p.subtree), root_dev)?);
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
                match read_file(ctx, path, &md, &mut node) {
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

/// Opens a file to read it without touching its atime where allowed, and
/// never through a symlink: a file that became a link since it was listed
/// fails (ELOOP) instead of storing the link target's content under its name.
fn open_noatime(path: &Path) -> std::io::Result<File> {
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let r = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOATIME.bits() as i32 | nofollow)
        .open(path);
    match r {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nofollow)
                .open(path)
        }
        Err(e) => Err(e),
    }
}

/// Data extents of a file that may be sparse (SEEK_DATA/SEEK_HOLE), as
/// `(offset, length)` below `size`. The instance protector's volumes use it too.
pub fn data_extents(f: &File, size: u64) -> std::io::Result<Vec<(u64, u64)>> {
    use rustix::fs::SeekFrom;
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match rustix::fs::seek(f, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if start >= size {
            break;
        }
        let end = rustix::fs::seek(f, SeekFrom::Hole(start))?.min(size);
        out.push((start, end - start));
        pos = end;
    }
    Ok(out)
}

/// Reads the data extents of a file in order, as one stream.
struct ExtentReader<'a> {
    f: &'a File,
    extents: &'a [(u64, u64)],
    i: usize,
    done_in_extent: u64,
}

impl Read for ExtentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.i < self.extents.len() {
            let (off, len) = self.extents[self.i];
            let left = len - self.done_in_extent;
            if left == 0 {
                self.i += 1;
                self.done_in_extent = 0;
                continue;
            }
            let want = (buf.len() as u64).min(left) as usize;
            let n = self
                .f
                .read_at(&mut buf[..want], off + self.done_in_extent)?;
            if n == 0 {
                // The file shrank while reading.
                self.i = self.extents.len();
                return Ok(0);
            }
            self.done_in_extent += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

/// Files at least this large are hashed, compressed and sealed on all cores.
pub const PARALLEL_FROM: u64 = 64 << 20;

/// Stores a file's stream: large files on all cores, others on this thread.
fn save(
    ctx: &Ctx,
    r: impl Read,
    size: u64,
    on_chunk: impl FnMut(u64),
) -> lifeboat_vault::Result<(Vec<Id>, u64)> {
    if size >= PARALLEL_FROM {
        ctx.writer.save_stream_parallel(r, on_chunk)
    } else {
        ctx.writer.save_stream(r, on_chunk)
    }
}

/// How many times a file that changed while it was read is read again
/// before it is stored as read, with a warning.
pub const REREADS: usize = 3;

/// What tells a file's content changed: identity, size, mtime and ctime (ns).
fn stamp(md: &std::fs::Metadata) -> (u64, u64, u64, i64, i64) {
    (
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(md.mtime_nsec()),
        md.ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(md.ctime_nsec()),
    )
}

/// Reads a file into the vault. The file's status before a read (for the
/// first read, the one taken while listing its directory; for a read again,
/// the open file's) is compared with the open file's status after it
/// (fstat); when its identity, size, mtime or ctime moved, the copy may mix
/// old and new blocks, so it is read again, up to [`REREADS`] times. A file
/// that never holds still is stored as read, with a warning (the point is
/// then incomplete: exit 3), and with the times seen before its last read,
/// so that the next backup reads it again.
///
/// A read stops at the size seen before it (a file that grew meanwhile is
/// caught by the status after it), which saves the read that finds the end.
fn read_file(ctx: &Ctx, path: &Path, listed: &std::fs::Metadata, node: &mut Node) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let f = open_noatime(path).map_err(|e| FilesError::io("open", path, e))?;
    let on_chunk = |n: u64| {
        ctx.counters.bytes_read.fetch_add(n, Ordering::Relaxed);
    };
    let mut attempt = 0;
    loop {
        let before = if attempt == 0 {
            listed.clone()
        } else {
            f.metadata().map_err(|e| FilesError::io("stat", path, e))?
        };
        let size = before.size();
        let sparse = before.blocks() * 512 < size && size > 0;
        node.extents = None;
        let (content, read) = if sparse {
            let extents =
                data_extents(&f, size).map_err(|e| FilesError::io("find holes in", path, e))?;
            let r = ExtentReader {
                f: &f,
                extents: &extents,
                i: 0,
                done_in_extent: 0,
            };
            let out = save(ctx, r, size, on_chunk)?;
            node.extents = Some(extents);
            out
        } else {
            if attempt > 0 {
                (&f).seek(SeekFrom::Start(0))
                    .map_err(|e| FilesError::io("seek", path, e))?;
            }
            save(ctx, (&f).take(size), size, on_chunk)?
        };
        let after = f.metadata().map_err(|e| FilesError::io("stat", path, e))?;
        let (_, _, sz, mtime_ns, ctime_ns) = stamp(&before);
        node.size = sz;
        node.mtime_ns = mtime_ns;
        node.ctime_ns = ctime_ns;
        let expected = node
            .extents
            .as_ref()
            .map(|e| e.iter().map(|x| x.1).sum())
            .unwrap_or(node.size);
        let still = stamp(&before) == stamp(&after) && read == expected;
        if still {
            node.content = content;
            return Ok(());
        }
        attempt += 1;
        if attempt <= REREADS {
            tracing::info!(
                "{} changed while it was read; reading it again ({attempt}/{REREADS})",
                path.display()
            );
            continue;
        }
        ctx.warn(format!(
            "{} changed while it was read ({} reads; {} bytes expected, {} read); the point holds the last read, which may mix old and new content",
            path.display(),
            attempt,
            expected,
            read
        ));
        if node.extents.is_none() {
            node.size = read;
        }
        node.content = content;
        return Ok(());
    }
}
