//! A directory bucket's object metadata in extended attributes of its
//! files (the table in the module docs of `dir`).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::ns;
use crate::store::{ObjectMeta, decode_tags, encode_tags};

const XA_TYPE: &str = "user.lifeboat.content-type";
const XA_TAGS: &str = "user.lifeboat.tags";
const XA_META: &str = "user.lifeboat.meta.";

/// One extended attribute of `f`, if it has it.
fn get_xattr(f: &File, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    loop {
        match rustix::fs::fgetxattr(f, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Some(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 8, 0),
            Err(_) => return None,
        }
    }
}

/// Reads content type, user metadata and tags from a file's xattrs.
pub(super) fn read_meta(f: &File, md: &std::fs::Metadata) -> ObjectMeta {
    let mut meta = ObjectMeta {
        modified_ns: Some(ns(md.mtime(), md.mtime_nsec())),
        ..ObjectMeta::default()
    };
    let mut names = vec![0u8; 16 * 1024];
    let Ok(n) = rustix::fs::flistxattr(f, &mut names[..]) else {
        return meta;
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if !name.starts_with("user.lifeboat.") {
            continue;
        }
        let Some(v) = get_xattr(f, name) else {
            continue;
        };
        let v = String::from_utf8_lossy(&v).into_owned();
        if name == XA_TYPE {
            meta.content_type = Some(v);
        } else if name == XA_TAGS {
            meta.tags = decode_tags(&v);
        } else if let Some(k) = name.strip_prefix(XA_META) {
            meta.user.insert(k.to_string(), v);
        }
    }
    meta
}

/// Writes content type, user metadata and tags into a file's xattrs and
/// its mtime from `modified_ns`.
pub(super) fn write_meta(f: &File, meta: &ObjectMeta) -> std::io::Result<()> {
    let set = |name: &str, v: &[u8]| {
        rustix::fs::fsetxattr(f, name, v, rustix::fs::XattrFlags::empty()).map_err(|e| {
            let e = std::io::Error::from(e);
            if e.raw_os_error() == Some(95) {
                std::io::Error::other(
                    "this filesystem keeps no extended attributes, so content type, metadata and tags cannot be kept (use ext4, xfs, btrfs or tmpfs)",
                )
            } else {
                e
            }
        })
    };
    if let Some(ct) = &meta.content_type {
        set(XA_TYPE, ct.as_bytes())?;
    }
    for (k, v) in &meta.user {
        set(&format!("{XA_META}{k}"), v.as_bytes())?;
    }
    if !meta.tags.is_empty() {
        set(XA_TAGS, encode_tags(&meta.tags).as_bytes())?;
    }
    if let Some(m) = meta.modified_ns {
        let t = rustix::fs::Timespec {
            tv_sec: m.div_euclid(1_000_000_000),
            tv_nsec: m.rem_euclid(1_000_000_000) as _,
        };
        rustix::fs::futimens(
            f,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
        )?;
    }
    Ok(())
}

/// Reads a directory-bucket object's metadata by path (for tests and tools).
pub fn meta_of_file(path: &Path) -> std::io::Result<ObjectMeta> {
    let f = File::open(path)?;
    let md = f.metadata()?;
    Ok(read_meta(&f, &md))
}
