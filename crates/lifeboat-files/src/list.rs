//! Listing what a recovery point holds, without restoring it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use lifeboat_vault::tree::NodeKind;
use lifeboat_vault::{Id, Vault};
use serde::Serialize;

use crate::{FilesError, Result};

/// One listed entry.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Absolute path as backed up (bytes that are not UTF-8 shown as U+FFFD).
    pub path: String,
    /// file, dir, symlink, fifo, chardev, blockdev.
    pub kind: NodeKind,
    /// Size in bytes (files).
    pub size: u64,
    /// Mode bits.
    pub mode: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Symlink target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Lists the entries of `path` (default: the root) in a point; all levels
/// below it when `recursive`.
pub fn list(vault: &Vault, point: &Id, path: Option<&Path>, recursive: bool) -> Result<Vec<Entry>> {
    let index = vault.load_index()?;
    let p = vault.read_point(point)?;
    // `/` (or `.`, or nothing) is the root itself.
    let path = path.filter(|p| {
        p.components()
            .any(|c| !matches!(c, Component::RootDir | Component::CurDir))
    });
    let (tree, base) = match path {
        None => (p.tree, PathBuf::from("/")),
        Some(path) => {
            let abs = Path::new("/").join(path);
            let node = crate::restore::find(vault, &index, &p.tree, &abs)?
                .ok_or_else(|| FilesError::NotInPoint(abs.clone()))?;
            match node.subtree {
                Some(t) => (t, abs),
                None => {
                    return Ok(vec![entry(abs, &node)]);
                }
            }
        }
    };
    let mut out = Vec::new();
    let mut stack = vec![(tree, base)];
    while let Some((t, dir)) = stack.pop() {
        for n in vault.read_tree(&index, &t)?.nodes {
            let path = dir.join(std::ffi::OsStr::from_bytes(&n.name_bytes()));
            if recursive && let Some(s) = n.subtree {
                stack.push((s, path.clone()));
            }
            out.push(entry(path, &n));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn entry(path: PathBuf, n: &lifeboat_vault::Node) -> Entry {
    Entry {
        path: path.to_string_lossy().into_owned(),
        kind: n.kind,
        size: n.size,
        mode: n.mode,
        mtime_ns: n.mtime_ns,
        target: n
            .target_bytes()
            .map(|t| String::from_utf8_lossy(&t).into_owned()),
    }
}
