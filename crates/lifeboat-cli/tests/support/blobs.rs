//! Damage aimed at one blob: where the blob of a path of the newest point
//! lies in its vault (the restore-safety and files-edges tests).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use lifeboat_testkit::Cli;
use lifeboat_vault::{Id, Location, Vault};

/// The pack holding the tree blob of directory `path` (or the content blob
/// of a file) in the newest point of `c`'s vault, and the blob's offset and
/// length in it.
pub fn blob_of(c: &Cli, path: &Path) -> (PathBuf, u32, u32) {
    let v = Vault::open(&Location::parse(&c.vault).unwrap(), c.password.as_bytes()).unwrap();
    let index = v.load_index().unwrap();
    let (_, p) = v.find_point("latest", None).unwrap();
    let mut tree = p.tree;
    let comps: Vec<_> = path.components().skip(1).collect();
    let mut node = None;
    for (i, comp) in comps.iter().enumerate() {
        let t = v.read_tree(&index, &tree).unwrap();
        let n = t.find(comp.as_os_str().as_bytes()).unwrap().clone();
        if i + 1 < comps.len() {
            tree = n.subtree.unwrap();
        }
        node = Some(n);
    }
    let n = node.unwrap();
    let id: Id = n.subtree.unwrap_or_else(|| n.content[0]);
    let loc = index.get(&id).unwrap();
    let pack = PathBuf::from(&c.vault).join(lifeboat_vault::pack::pack_path(&loc.pack));
    (pack, loc.entry.offset, loc.entry.length)
}

/// Flips a byte in the middle of the blob of `path` (see [`blob_of`]).
pub fn damage_blob_of(c: &Cli, path: &Path) {
    let (pack, offset, len) = blob_of(c, path);
    lifeboat_testkit::flip_byte(&pack, (offset + len / 2) as i64);
}
