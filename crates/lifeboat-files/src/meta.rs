//! File metadata: read it into a [`Node`], put it back on a restored path.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use lifeboat_vault::tree::{Node, NodeKind, Xattr};
use rustix::fs::{AtFlags, CWD, Mode, Timespec, Timestamps, XattrFlags};

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The kind of node a file type maps to.
pub fn kind_of(md: &Metadata) -> NodeKind {
    use std::os::unix::fs::FileTypeExt;
    let ft = md.file_type();
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::Chardev
    } else if ft.is_block_device() {
        NodeKind::Blockdev
    } else if ft.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// Builds a node (without content) from an lstat result and the path.
pub fn node_from(path: &Path, name: &[u8], md: &Metadata) -> Node {
    let mut n = Node {
        kind: kind_of(md),
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        size: if md.is_file() { md.size() } else { 0 },
        mtime_ns: ns(md.mtime(), md.mtime_nsec()),
        atime_ns: ns(md.atime(), md.atime_nsec()),
        ctime_ns: ns(md.ctime(), md.ctime_nsec()),
        inode: md.ino(),
        dev: md.dev(),
        links: md.nlink(),
        rdev: if matches!(kind_of(md), NodeKind::Chardev | NodeKind::Blockdev) {
            md.rdev()
        } else {
            0
        },
        ..Node::default()
    };
    n.set_name_bytes(name);
    if n.kind == NodeKind::Symlink
        && let Ok(t) = std::fs::read_link(path)
    {
        n.set_target_bytes(t.as_os_str().as_bytes());
    }
    n.xattrs = read_xattrs(path);
    n
}

/// Reads the extended attributes of a path (not following symlinks). A
/// filesystem without xattrs gives none.
pub fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let mut names = vec![0u8; 4096];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) if names.len() < 1 << 20 => {
                names.resize(names.len() * 4, 0)
            }
            Err(_) => return Vec::new(),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(cname) = std::ffi::CString::new(name) else {
            continue;
        };
        let mut val = vec![0u8; 1024];
        let got = loop {
            match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut val[..]) {
                Ok(n) => break Some(n),
                Err(rustix::io::Errno::RANGE) if val.len() < 1 << 24 => {
                    val.resize(val.len() * 8, 0)
                }
                Err(_) => break None,
            }
        };
        if let Some(n) = got {
            out.push(Xattr {
                name: String::from_utf8_lossy(name).into_owned(),
                value: b64().encode(&val[..n]),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn ts(ns_total: i64) -> Timespec {
    Timespec {
        tv_sec: ns_total.div_euclid(1_000_000_000),
        tv_nsec: ns_total.rem_euclid(1_000_000_000) as _,
    }
}

/// Puts a node's owner, mode, xattrs and times on `path` (owner only when
/// running as root). Returns the problems met, as text.
pub fn apply(path: &Path, n: &Node, is_root: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if is_root && let Err(e) = std::os::unix::fs::lchown(path, Some(n.uid), Some(n.gid)) {
        problems.push(format!("chown {}: {e}", path.display()));
    }
    if n.kind != NodeKind::Symlink {
        let perm = std::fs::Permissions::from_mode(n.mode & 0o7777);
        if let Err(e) = std::fs::set_permissions(path, perm) {
            problems.push(format!("chmod {}: {e}", path.display()));
        }
    }
    for x in &n.xattrs {
        let Ok(v) = b64().decode(&x.value) else {
            continue;
        };
        let Ok(cname) = std::ffi::CString::new(x.name.as_bytes()) else {
            continue;
        };
        if let Err(e) = rustix::fs::lsetxattr(path, cname.as_c_str(), &v, XattrFlags::empty()) {
            problems.push(format!("xattr {} on {}: {e}", x.name, path.display()));
        }
    }
    let times = Timestamps {
        last_access: ts(if n.atime_ns != 0 {
            n.atime_ns
        } else {
            n.mtime_ns
        }),
        last_modification: ts(n.mtime_ns),
    };
    if let Err(e) = rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW) {
        problems.push(format!("set times of {}: {e}", path.display()));
    }
    problems
}

/// Creates a special file (fifo, device) for a node.
pub fn make_special(path: &Path, n: &Node) -> std::io::Result<()> {
    let ft = match n.kind {
        NodeKind::Fifo => rustix::fs::FileType::Fifo,
        NodeKind::Chardev => rustix::fs::FileType::CharacterDevice,
        NodeKind::Blockdev => rustix::fs::FileType::BlockDevice,
        _ => return Ok(()),
    };
    rustix::fs::mknodat(
        CWD,
        path,
        ft,
        Mode::from_raw_mode(n.mode & 0o7777),
        n.rdev as _,
    )
    .map_err(std::io::Error::from)
}
