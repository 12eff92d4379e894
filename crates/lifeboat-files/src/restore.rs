//! Restoring a recovery point (or a sub-path of it) into a directory.
//!
//! ```text
//! walk the point's trees from the selected sub-path → plan (path, node) in tree order
//! create directories, symlinks, fifos/devices; create each file at its size (holes stay holes)
//! fetch_blobs: every content blob read once, pack by pack, written at its offsets
//! hard links: later names of an inode are linked to the first
//! metadata: files, then directories deepest first (their mtimes last)
//! verify (optional): re-read every file, re-hash each chunk against its blob id
//! damaged blobs: the files they belong to are removed and named; all else is restored
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use lifeboat_vault::fetch::fetch_blobs;
use lifeboat_vault::tree::{Node, NodeKind};
use lifeboat_vault::{Id, Index, Vault};
use rayon::prelude::*;
use serde::Serialize;

use crate::meta;
use crate::{Counters, FilesError, Result};

/// Where and what to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Target directory; the point's absolute paths are recreated below it.
    pub to: PathBuf,
    /// Restore only this path of the point (absolute, as backed up).
    pub path: Option<PathBuf>,
    /// Re-read and re-hash what was written.
    pub verify: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// Files (non-directories) restored.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Files that could not be restored because their data is damaged or missing.
    pub damaged: Vec<String>,
    /// Other problems (metadata that could not be set, …).
    pub warnings: Vec<String>,
    /// Files verified after writing (with `verify`).
    pub verified: u64,
    /// Files whose verification failed.
    pub verify_failed: Vec<String>,
}

struct Item {
    path: PathBuf,
    node: Node,
    depth: usize,
}

fn walk(
    vault: &Vault,
    index: &Index,
    tree: &Id,
    dir: &Path,
    depth: usize,
    out: &mut Vec<Item>,
) -> Result<()> {
    let t = vault.read_tree(index, tree)?;
    for n in t.nodes {
        let path = dir.join(std::ffi::OsStr::from_bytes(&n.name_bytes()));
        let sub = n.subtree;
        out.push(Item {
            path: path.clone(),
            node: n,
            depth,
        });
        if let Some(s) = sub {
            walk(vault, index, &s, &path, depth + 1, out)?;
        }
    }
    Ok(())
}

/// Finds the node at absolute `path` below the root tree.
pub(crate) fn find(vault: &Vault, index: &Index, root: &Id, path: &Path) -> Result<Option<Node>> {
    let mut cur = *root;
    let comps: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            _ => None,
        })
        .collect();
    let mut node = None;
    for (i, c) in comps.iter().enumerate() {
        let t = vault.read_tree(index, &cur)?;
        let Some(n) = t.find(c).cloned() else {
            return Ok(None);
        };
        if i + 1 < comps.len() {
            match n.subtree {
                Some(s) => cur = s,
                None => return Ok(None),
            }
        }
        node = Some(n);
    }
    Ok(node)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Restores point `point_id` according to `opts`.
pub fn restore(
    vault: &Vault,
    point_id: &Id,
    opts: &RestoreOptions,
    counters: &Counters,
) -> Result<RestoreReport> {
    let index = vault.load_index()?;
    let point = vault.read_point(point_id)?;
    // Into a directory that did not exist, nothing needs replacing.
    let fresh = !opts.to.exists();
    let mut items = Vec::new();
    match &opts.path {
        None => walk(vault, &index, &point.tree, &opts.to, 0, &mut items)?,
        Some(p) => {
            let p = std::path::absolute(Path::new("/").join(p)).unwrap_or_else(|_| p.clone());
            let node = find(vault, &index, &point.tree, &p)?
                .ok_or_else(|| FilesError::NotInPoint(p.clone()))?;
            let rel: PathBuf = p
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            let target = opts.to.join(&rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| FilesError::io("create directory", parent, e))?;
            }
            let sub = node.subtree;
            items.push(Item {
                path: target.clone(),
                node,
                depth: 0,
            });
            if let Some(s) = sub {
                walk(vault, &index, &s, &target, 1, &mut items)?;
            }
        }
    }
    std::fs::create_dir_all(&opts.to)
        .map_err(|e| FilesError::io("create directory", &opts.to, e))?;
    let root = is_root();
    let mut rep = RestoreReport::default();
    let warnings = Mutex::new(Vec::new());

    // 1. structure
    let mut first_of_inode: HashMap<(u64, u64), usize> = HashMap::new();
    let mut links: Vec<(usize, usize)> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let n = &it.node;
        let r = match n.kind {
            NodeKind::Dir => {
                rep.dirs += 1;
                std::fs::create_dir_all(&it.path)
            }
            NodeKind::File => {
                rep.files += 1;
                if n.links > 1 && n.inode != 0 {
                    if let Some(&first) = first_of_inode.get(&(n.dev, n.inode)) {
                        links.push((first, i));
                        continue;
                    }
                    first_of_inode.insert((n.dev, n.inode), i);
                }
                if !fresh {
                    let _ = std::fs::remove_file(&it.path);
                }
                if n.content.is_empty() {
                    File::create(&it.path).and_then(|f| f.set_len(n.size))
                } else {
                    Ok(()) // created by its first blob
                }
            }
            NodeKind::Symlink => {
                rep.files += 1;
                let _ = std::fs::remove_file(&it.path);
                let t = n.target_bytes().unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&t), &it.path)
            }
            NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev => {
                rep.files += 1;
                let _ = std::fs::remove_file(&it.path);
                meta::make_special(&it.path, n)
            }
            NodeKind::Socket => continue,
        };
        if let Err(e) = r {
            warnings
                .lock()
                .expect("lock")
                .push(format!("cannot create {}: {e}", it.path.display()));
        }
    }

    // 2. content
    let mut wanted: Vec<(Id, (usize, u64))> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if it.node.kind != NodeKind::File || links.iter().any(|(_, l)| *l == i) {
            continue;
        }
        let mut off = 0u64;
        for b in &it.node.content {
            wanted.push((*b, (i, off)));
            off += index.get(b).map(|l| l.entry.raw_length as u64).unwrap_or(0);
        }
    }
    let damaged: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::new());
    fetch_blobs(vault, &index, wanted, |&(i, off), r| {
        let it = &items[i];
        let res = r.map_err(|e| e.to_string()).and_then(|data| {
            write_logical(
                &it.path,
                it.node.size,
                it.node.extents.as_deref(),
                off,
                data,
            )
            .map_err(|e| e.to_string())
        });
        match res {
            Ok(n) => {
                counters.bytes_written.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                damaged.lock().expect("lock").entry(i).or_insert(e);
            }
        }
    });
    let damaged = damaged.into_inner().expect("lock");
    for (i, why) in &damaged {
        let p = &items[*i].path;
        let _ = std::fs::remove_file(p);
        rep.damaged.push(format!("{}: {why}", p.display()));
    }
    rep.damaged.sort();
    rep.bytes = counters.bytes_written.load(Ordering::Relaxed);

    // 3. hard links
    for (first, other) in &links {
        if damaged.contains_key(first) {
            rep.damaged.push(format!(
                "{}: hard link to a damaged file",
                items[*other].path.display()
            ));
            continue;
        }
        let _ = std::fs::remove_file(&items[*other].path);
        if let Err(e) = std::fs::hard_link(&items[*first].path, &items[*other].path) {
            warnings.lock().expect("lock").push(format!(
                "cannot link {} to {}: {e}",
                items[*other].path.display(),
                items[*first].path.display()
            ));
        }
    }

    // 4. metadata: non-directories in parallel, then directories deepest first
    items
        .par_iter()
        .enumerate()
        .filter(|(i, it)| {
            it.node.kind != NodeKind::Dir
                && it.node.kind != NodeKind::Socket
                && !damaged.contains_key(i)
        })
        .for_each(|(_, it)| {
            let p = meta::apply(&it.path, &it.node, root);
            if !p.is_empty() {
                warnings.lock().expect("lock").extend(p);
            }
            counters.files.fetch_add(1, Ordering::Relaxed);
        });
    let mut dirs: Vec<&Item> = items
        .iter()
        .filter(|it| it.node.kind == NodeKind::Dir)
        .collect();
    dirs.sort_by_key(|it| std::cmp::Reverse(it.depth));
    for it in dirs {
        warnings
            .lock()
            .expect("lock")
            .extend(meta::apply(&it.path, &it.node, root));
    }
    rep.warnings = warnings.into_inner().expect("lock");

    // 5. verify
    if opts.verify {
        let failed: Vec<String> = items
            .par_iter()
            .enumerate()
            .filter(|(i, it)| it.node.kind == NodeKind::File && !damaged.contains_key(i))
            .filter_map(|(_, it)| verify_file(vault, &index, &it.path, &it.node).err())
            .collect();
        rep.verified = items
            .iter()
            .enumerate()
            .filter(|(i, it)| it.node.kind == NodeKind::File && !damaged.contains_key(i))
            .count() as u64
            - failed.len() as u64;
        rep.verify_failed = failed;
    }
    Ok(rep)
}

/// Writes `data` at logical offset `off` of the content stream of a file,
/// mapping it onto the data extents of a sparse file.
fn write_logical(
    path: &Path,
    size: u64,
    extents: Option<&[(u64, u64)]>,
    off: u64,
    data: &[u8],
) -> std::io::Result<u64> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false) // several blobs of one file arrive in any order
        .mode(0o600)
        .open(path)?;
    if extents.is_some() {
        f.set_len(size)?; // the holes, including a trailing one
    }
    match extents {
        None => f.write_all_at(data, off)?,
        Some(ext) => {
            let mut logical = 0u64;
            let mut rest = data;
            let mut pos = off;
            for (eo, el) in ext {
                if rest.is_empty() {
                    break;
                }
                if pos >= logical + el {
                    logical += el;
                    continue;
                }
                let within = pos - logical;
                let n = ((el - within) as usize).min(rest.len());
                f.write_all_at(&rest[..n], eo + within)?;
                rest = &rest[n..];
                pos += n as u64;
                logical += el;
            }
        }
    }
    Ok(data.len() as u64)
}

/// Re-reads a restored file and checks size and every chunk against its blob id.
fn verify_file(
    vault: &Vault,
    index: &Index,
    path: &Path,
    node: &Node,
) -> std::result::Result<(), String> {
    let fail = |m: String| format!("{}: {m}", path.display());
    let md = std::fs::symlink_metadata(path).map_err(|e| fail(e.to_string()))?;
    if md.len() != node.size {
        return Err(fail(format!("size {} instead of {}", md.len(), node.size)));
    }
    let f = File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut logical_pos = 0u64;
    let read_logical = |pos: u64, len: usize| -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        match &node.extents {
            None => f.read_exact_at(&mut buf, pos)?,
            Some(ext) => {
                let mut logical = 0u64;
                let mut filled = 0usize;
                let mut p = pos;
                for (eo, el) in ext {
                    if filled == len {
                        break;
                    }
                    if p >= logical + el {
                        logical += el;
                        continue;
                    }
                    let within = p - logical;
                    let n = ((el - within) as usize).min(len - filled);
                    f.read_exact_at(&mut buf[filled..filled + n], eo + within)?;
                    filled += n;
                    p += n as u64;
                    logical += el;
                }
            }
        }
        Ok(buf)
    };
    for b in &node.content {
        let len = index
            .get(b)
            .map(|l| l.entry.raw_length as usize)
            .ok_or_else(|| fail(format!("blob {b} unknown")))?;
        let data = read_logical(logical_pos, len).map_err(|e| fail(e.to_string()))?;
        if vault.key().blob_id(&data) != *b {
            return Err(fail(format!(
                "bytes at {logical_pos} differ from the point"
            )));
        }
        logical_pos += len as u64;
    }
    Ok(())
}
