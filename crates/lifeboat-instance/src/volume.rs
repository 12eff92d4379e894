//! Volumes: disk images and block devices as fixed-size blocks.
//!
//! ```text
//! open (read-only) → size (st_size, or the device's end)
//! unchanged since the parent point (regular file: size, mtime, ctime, inode)?
//!     → the parent's block list, nothing read
//! data extents: SEEK_DATA/SEEK_HOLE (a device: all of it)
//! blocks of BLOCK_SIZE on a fixed grid, in parallel (rayon):
//!     only the block's data parts are read (pread); an all-zero block is a hole
//!     else keyed id → dedup → zstd → seal (BackupWriter::save_blob)
//! node: a `file` with `extents` = runs of stored blocks, `content` = their ids
//! ```
//! Fixed blocks rather than content-defined chunks: a filesystem changes a
//! disk in place, so data never shifts and a fixed grid finds every unchanged
//! block again; `bench/RESULTS.md` has the measurement.

use lifeboat_files::backup::data_extents;
use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use lifeboat_vault::tree::{Node, NodeKind};
use lifeboat_vault::{BackupWriter, BlobType, Id};
use rayon::prelude::*;
use serde::Serialize;

use crate::{InstanceError, Result};

/// Block size of volumes.
pub const BLOCK_SIZE: u64 = 64 * 1024;

/// What was backed up of one volume (also recorded in the point's `meta`).
#[derive(Debug, Clone, Serialize)]
pub struct VolumeInfo {
    /// The volume as given.
    pub path: String,
    /// `raw` (an image file), `blockdev`, or `qcow2`.
    pub format: &'static str,
    /// Logical size.
    pub size: u64,
    /// Bytes in stored (non-zero) blocks.
    pub data_bytes: u64,
    /// Bytes read this time (0 when unchanged since the parent point).
    pub bytes_read: u64,
    /// Block size.
    pub block_size: u64,
    /// Whether it changed while it was read.
    pub changed_while_read: bool,
}

/// Opens a volume read-only (without touching its atime where allowed).
fn open(path: &Path) -> std::io::Result<File> {
    let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(noatime)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
            File::open(path)
        }
        r => r,
    }
}

fn vol_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> InstanceError + 'a {
    move |source| InstanceError::Volume {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// The parts of block `[b, b+len)` that hold data, as (offset, length).
fn pieces(extents: &[(u64, u64)], from: &mut usize, b: u64, len: u64) -> Vec<(u64, u64)> {
    let end = b + len;
    while *from < extents.len() && extents[*from].0 + extents[*from].1 <= b {
        *from += 1;
    }
    let mut out = Vec::new();
    let mut i = *from;
    while i < extents.len() && extents[i].0 < end {
        let s = extents[i].0.max(b);
        let e = (extents[i].0 + extents[i].1).min(end);
        if e > s {
            out.push((s, e - s));
        }
        i += 1;
    }
    out
}

fn stamp(md: &std::fs::Metadata) -> (u64, u64, i64, i64, i64, i64) {
    (
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec(),
    )
}

/// A volume's format (`blockdev`, `qcow2` or `raw`) and logical size.
fn kind_and_size(f: &File, md: &std::fs::Metadata, path: &Path) -> Result<(&'static str, u64)> {
    let ft = md.file_type();
    if ft.is_block_device() {
        let end = rustix::fs::seek(f, rustix::fs::SeekFrom::End(0))
            .map_err(|e| vol_err(path, "find its size")(e.into()))?;
        Ok(("blockdev", end))
    } else if ft.is_file() && crate::qcow2::is_qcow2(f) {
        Ok(("qcow2", md.size()))
    } else if ft.is_file() {
        Ok(("raw", md.size()))
    } else {
        Err(InstanceError::Volume {
            path: path.to_path_buf(),
            op: "use it",
            source: std::io::Error::other(
                "not a regular file or a block device (give an image file or a device)",
            ),
        })
    }
}

/// The node of a volume, without its blocks: a `file` named after the last
/// component of `path` with the volume's format and block size.
fn volume_node(path: &Path, md: &std::fs::Metadata, format: &'static str, size: u64) -> Node {
    let name = path
        .file_name()
        .map(|n| n.as_encoded_bytes())
        .unwrap_or(b"volume");
    let mut node = lifeboat_files::meta::node_from(path, name, md);
    node.kind = NodeKind::File;
    node.mode = 0o100000 | (md.mode() & 0o7777);
    node.rdev = 0;
    node.links = 1;
    node.size = size;
    node.attrs.insert("volume".into(), format.into());
    node.attrs
        .insert("block_size".into(), BLOCK_SIZE.to_string());
    if format == "qcow2" {
        // `size` is the virtual disk's; the file's own size tells a change.
        node.attrs.insert("file_size".into(), md.size().to_string());
    }
    node
}

/// The blocks of `[0, size)` that hold data, each as (block number, length,
/// its data parts).
type Work = Vec<(u64, u64, Vec<(u64, u64)>)>;

/// Cuts the data `extents` of a volume of `size` bytes on the block grid.
fn blocks_with_data(extents: &[(u64, u64)], size: u64) -> Work {
    let nblocks = size.div_ceil(BLOCK_SIZE);
    let mut work = Vec::new();
    let mut from = 0;
    for k in 0..nblocks {
        let b = k * BLOCK_SIZE;
        let len = BLOCK_SIZE.min(size - b);
        let p = pieces(extents, &mut from, b, len);
        if !p.is_empty() {
            work.push((k, len, p));
        }
    }
    work
}

/// Reads the blocks of `work` in parallel (only their data parts) and
/// stores each that is not all zeros; returns (block number, blob) per block
/// stored, in order.
fn store_blocks(
    writer: &BackupWriter,
    f: &File,
    path: &Path,
    work: &Work,
    read: &AtomicU64,
) -> Vec<Result<Option<(u64, Id)>>> {
    work.par_iter()
        .map_init(
            || vec![0u8; BLOCK_SIZE as usize],
            |buf, (k, len, parts)| {
                let b = k * BLOCK_SIZE;
                let block = &mut buf[..*len as usize];
                block.fill(0);
                for &(off, l) in parts {
                    let at = (off - b) as usize;
                    f.read_exact_at(&mut block[at..at + l as usize], off)
                        .map_err(vol_err(path, "read it"))?;
                    read.fetch_add(l, Ordering::Relaxed);
                }
                if block.iter().all(|&x| x == 0) {
                    return Ok(None);
                }
                Ok(Some((*k, writer.save_blob(BlobType::Data, block)?)))
            },
        )
        .collect()
}

/// Backs up one volume; returns its node (named after the last component
/// of `path`) and what was done. `prev` is its node in the parent point.
/// Bytes read are added to `read` as they are read (for progress).
pub fn save_volume(
    writer: &BackupWriter,
    path: &Path,
    prev: Option<&Node>,
    read: &AtomicU64,
) -> Result<(Node, VolumeInfo)> {
    let f = open(path).map_err(vol_err(path, "open it"))?;
    let md = f.metadata().map_err(vol_err(path, "stat it"))?;
    let (format, size) = kind_and_size(&f, &md, path)?;
    let mut node = volume_node(path, &md, format, size);
    let mut info = VolumeInfo {
        path: path.display().to_string(),
        format,
        size,
        data_bytes: 0,
        bytes_read: 0,
        block_size: BLOCK_SIZE,
        changed_while_read: false,
    };
    // A regular file whose size, times and inode are the parent's holds the
    // parent's blocks: nothing is read (a device's times say nothing).
    if format != "blockdev"
        && let Some(p) = prev.filter(|p| {
            (p.size == node.size || format == "qcow2")
                && p.mtime_ns == node.mtime_ns
                && p.ctime_ns == node.ctime_ns
                && p.inode == node.inode
                && p.attrs == node.attrs
                && p.content.iter().all(|b| writer.has_blob(b))
        })
    {
        node.content = p.content.clone();
        node.extents = p.extents.clone();
        node.size = p.size;
        info.size = p.size;
        info.data_bytes = node.extents.iter().flatten().map(|e| e.1).sum();
        return Ok((node, info));
    }
    // A qcow2 image is read as the raw image it holds.
    let mut _raw_dir = None;
    let (f, size) = if format == "qcow2" {
        let (dir, raw) = crate::qcow2::to_raw(path)?;
        let rf = File::open(&raw).map_err(vol_err(path, "open its raw copy"))?;
        let size = rf
            .metadata()
            .map_err(vol_err(path, "stat its raw copy"))?
            .size();
        _raw_dir = Some(dir);
        node.size = size;
        info.size = size;
        (rf, size)
    } else {
        (f, size)
    };
    let extents = if format != "blockdev" {
        data_extents(&f, size).map_err(vol_err(path, "find its holes"))?
    } else if size > 0 {
        vec![(0, size)]
    } else {
        Vec::new()
    };
    let work = blocks_with_data(&extents, size);
    let stored = store_blocks(writer, &f, path, &work, read);
    lifeboat_vault::testhook::pause("volume-read");
    let after = if format == "qcow2" {
        std::fs::metadata(path)
    } else {
        f.metadata()
    }
    .map_err(vol_err(path, "stat it"))?;
    info.changed_while_read = format != "blockdev" && stamp(&md) != stamp(&after);
    info.bytes_read = work.iter().flat_map(|w| w.2.iter().map(|p| p.1)).sum();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut content = Vec::new();
    for s in stored {
        let Some((k, id)) = s? else { continue };
        let b = k * BLOCK_SIZE;
        let len = BLOCK_SIZE.min(size - b);
        match runs.last_mut() {
            Some(r) if r.0 + r.1 == b => r.1 += len,
            _ => runs.push((b, len)),
        }
        content.push(id);
        info.data_bytes += len;
    }
    node.content = content;
    node.extents = Some(runs);
    Ok((node, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cut_extents_at_block_edges() {
        let ext = [(0, 10), (20, 5), (100, 50)];
        let mut from = 0;
        assert_eq!(pieces(&ext, &mut from, 0, 16), vec![(0, 10)]);
        assert_eq!(pieces(&ext, &mut from, 16, 16), vec![(20, 5)]);
        assert_eq!(pieces(&ext, &mut from, 32, 16), vec![]);
        assert_eq!(pieces(&ext, &mut from, 96, 16), vec![(100, 12)]);
        assert_eq!(pieces(&ext, &mut from, 112, 16), vec![(112, 16)]);
        assert_eq!(pieces(&ext, &mut from, 144, 16), vec![(144, 6)]);
    }
}
