//! File metadata: read it into a [`Node`], put it back on a restored path.

use std::ffi::CStr;
use std::fs::Metadata;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use base64::Engine;
use lifeboat_vault::tree::{Node, NodeKind, Xattr};
use rustix::fs::{AtFlags, CWD, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};

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

fn times(n: &Node) -> Timestamps {
    Timestamps {
        last_access: ts(if n.atime_ns != 0 {
            n.atime_ns
        } else {
            n.mtime_ns
        }),
        last_modification: ts(n.mtime_ns),
    }
}

fn xattr_values(n: &Node) -> impl Iterator<Item = (&str, std::ffi::CString, Vec<u8>)> {
    n.xattrs.iter().filter_map(|x| {
        let v = b64().decode(&x.value).ok()?;
        let c = std::ffi::CString::new(x.name.as_bytes()).ok()?;
        Some((x.name.as_str(), c, v))
    })
}

/// Puts a node's owner (only when running as root), mode, xattrs and times on
/// an open file or directory: through the handle of what was created, never
/// through a path. `what` names it in the problems returned.
pub fn apply_fd(
    fd: BorrowedFd<'_>,
    n: &Node,
    is_root: bool,
    what: &dyn Fn() -> String,
) -> Vec<String> {
    let mut problems = Vec::new();
    if is_root
        && let Err(e) =
            rustix::fs::fchown(fd, Some(Uid::from_raw(n.uid)), Some(Gid::from_raw(n.gid)))
    {
        problems.push(format!("chown {}: {e}", what()));
    }
    if let Err(e) = rustix::fs::fchmod(fd, Mode::from_raw_mode(n.mode & 0o7777)) {
        problems.push(format!("chmod {}: {e}", what()));
    }
    for (name, c, v) in xattr_values(n) {
        if let Err(e) = rustix::fs::fsetxattr(fd, c.as_c_str(), &v, XattrFlags::empty()) {
            problems.push(format!("xattr {name} on {}: {e}", what()));
        }
    }
    if let Err(e) = rustix::fs::futimens(fd, &times(n)) {
        problems.push(format!("set times of {}: {e}", what()));
    }
    problems
}

/// Puts a node's metadata on `name` in directory `dir` without following a
/// symlink there: for symlinks, fifos and devices, which cannot be opened for
/// writing. The mode of a fifo or device is set through an `O_PATH` handle of
/// what is there (checked to be of the node's type).
pub fn apply_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    n: &Node,
    is_root: bool,
    what: &dyn Fn() -> String,
) -> Vec<String> {
    let mut problems = Vec::new();
    let no_follow = AtFlags::SYMLINK_NOFOLLOW;
    if is_root
        && let Err(e) = rustix::fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(n.uid)),
            Some(Gid::from_raw(n.gid)),
            no_follow,
        )
    {
        problems.push(format!("chown {}: {e}", what()));
    }
    if n.kind != NodeKind::Symlink {
        let r = rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|h| {
            let st = rustix::fs::fstat(&h)?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
                return Err(rustix::io::Errno::LOOP);
            }
            let proc = format!("/proc/self/fd/{}", h.as_raw_fd());
            match rustix::fs::chmodat(
                CWD,
                proc.as_str(),
                Mode::from_raw_mode(n.mode & 0o7777),
                AtFlags::empty(),
            ) {
                Err(rustix::io::Errno::NOENT) => {
                    // No /proc: the name was just checked not to be a symlink.
                    rustix::fs::chmodat(
                        dir,
                        name,
                        Mode::from_raw_mode(n.mode & 0o7777),
                        AtFlags::empty(),
                    )
                }
                r => r,
            }
        });
        if let Err(e) = r {
            problems.push(format!("chmod {}: {e}", what()));
        }
    }
    if !n.xattrs.is_empty() {
        let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        p.extend_from_slice(name.to_bytes());
        let p = std::ffi::OsStr::from_bytes(&p);
        for (xname, c, v) in xattr_values(n) {
            if let Err(e) = rustix::fs::lsetxattr(p, c.as_c_str(), &v, XattrFlags::empty()) {
                problems.push(format!("xattr {xname} on {}: {e}", what()));
            }
        }
    }
    if let Err(e) = rustix::fs::utimensat(dir, name, &times(n), no_follow) {
        problems.push(format!("set times of {}: {e}", what()));
    }
    problems
}

/// Creates a special file (fifo, device) for a node as `name` in `dir`.
pub fn make_special_at(dir: BorrowedFd<'_>, name: &CStr, n: &Node) -> std::io::Result<()> {
    let ft = match n.kind {
        NodeKind::Fifo => rustix::fs::FileType::Fifo,
        NodeKind::Chardev => rustix::fs::FileType::CharacterDevice,
        NodeKind::Blockdev => rustix::fs::FileType::BlockDevice,
        _ => return Ok(()),
    };
    rustix::fs::mknodat(dir, name, ft, Mode::from_raw_mode(0o600), n.rdev as _)
        .map_err(std::io::Error::from)
}
