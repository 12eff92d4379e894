//! Restoring a volume onto a block device (`--volume-to NAME=/dev/XXX`).
//!
//! ```text
//! the device: the path given (a /dev/disk/by-id link is followed) → a block
//!     device, not mounted (itself or a partition of it: /proc/self/mountinfo),
//!     not held (/sys/dev/block/M:m/holders: LVM, RAID, dm), opened O_EXCL
//!     (the kernel refuses it while anything else holds it exclusively),
//!     at least the volume's size (its end, found by seeking)
//! the volume's stored blocks: fetch_blobs (each blob read once, packs in
//!     parallel) → pwrite at the block's offset on the device
//! holes and zero blocks: left as they are on the device, or with
//!     --zero-holes written with zeros → fsync
//! ```
//! Without `--zero-holes` the device equals the volume only where the volume
//! has data: what the volume held as holes or zero blocks keeps the device's
//! old content. That is right for a new (or discarded) device and costs
//! nothing; for a used device, give `--zero-holes`.

use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use lifeboat_vault::fetch::fetch_blobs;
use lifeboat_vault::tree::Node;
use lifeboat_vault::{Id, Index, Vault};
use serde::Serialize;

use crate::{InstanceError, Result};

/// An opened, checked target device.
#[derive(Debug)]
pub struct Device {
    /// The path as given.
    pub given: PathBuf,
    /// The device node the path leads to.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    file: Option<File>,
}

/// What was written onto one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    /// The volume as backed up.
    pub volume: String,
    /// The device (as given).
    pub device: PathBuf,
    /// The device's size.
    pub device_size: u64,
    /// The volume's size (the device's bytes past it are not touched).
    pub volume_size: u64,
    /// Bytes of data blocks written (or to write, in a dry run).
    pub data_bytes: u64,
    /// Bytes of holes and zero blocks of the volume.
    pub hole_bytes: u64,
    /// Whether the holes were written with zeros.
    pub holes_zeroed: bool,
    /// Blocks that could not be read from the vault (their range on the device is not written).
    pub damaged: Vec<String>,
}

fn dev_err(path: &Path, msg: impl Into<String>) -> InstanceError {
    InstanceError::Usage(format!("device {}: {}", path.display(), msg.into()))
}

/// `major:minor` of a device number.
fn majmin(rdev: u64) -> String {
    format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev))
}

/// `major:minor` of `dev` and of its partitions.
fn with_partitions(dev: &str) -> Vec<String> {
    let mut out = vec![dev.to_string()];
    if let Ok(rd) = std::fs::read_dir(format!("/sys/dev/block/{dev}")) {
        for e in rd.flatten() {
            if e.path().join("partition").exists()
                && let Ok(d) = std::fs::read_to_string(e.path().join("dev"))
            {
                out.push(d.trim().to_string());
            }
        }
    }
    out
}

/// Where the device (or a partition of it) is mounted, from mountinfo text.
pub fn mounted_at(mountinfo: &str, devs: &[String]) -> Option<String> {
    mountinfo.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 4 && devs.iter().any(|d| d == f[2])).then(|| f[4].replace("\\040", " "))
    })
}

/// Opens `given` as the target of a volume of `need` bytes, after checking
/// that it is a block device of at least that size that nothing uses.
/// `dry_run` checks everything but keeps no handle.
pub fn open(given: &Path, need: u64, dry_run: bool) -> Result<Device> {
    let path =
        std::fs::canonicalize(given).map_err(|e| dev_err(given, format!("cannot find it: {e}")))?;
    let md =
        std::fs::metadata(&path).map_err(|e| dev_err(given, format!("cannot stat it: {e}")))?;
    if !md.file_type().is_block_device() {
        return Err(dev_err(
            given,
            "not a block device (--volume-to takes a device such as /dev/sdb or /dev/loop0; without it the volume is restored as a file under --to)",
        ));
    }
    let dev = majmin(md.rdev());
    let devs = with_partitions(&dev);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(at) = mounted_at(&mountinfo, &devs) {
        return Err(dev_err(
            given,
            format!(
                "it (or a partition of it) is mounted on {at}: unmount it first; a restore overwrites the whole volume"
            ),
        ));
    }
    for d in &devs {
        let holders: Vec<String> = std::fs::read_dir(format!("/sys/dev/block/{d}/holders"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if !holders.is_empty() {
            return Err(dev_err(
                given,
                format!(
                    "it is in use by {} (device mapper, LVM or RAID): release it first",
                    holders.join(", ")
                ),
            ));
        }
    }
    let flags = rustix::fs::OFlags::EXCL | rustix::fs::OFlags::NOFOLLOW;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(flags.bits() as i32)
        .open(&path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) {
                dev_err(
                    given,
                    "it is held open exclusively by something else (a mount, swap, a RAID or LVM, or another program): release it first",
                )
            } else {
                dev_err(given, format!("cannot open it for writing: {e}"))
            }
        })?;
    let fmd = file
        .metadata()
        .map_err(|e| dev_err(given, format!("cannot stat it: {e}")))?;
    if !fmd.file_type().is_block_device() || fmd.rdev() != md.rdev() {
        return Err(dev_err(given, "it changed while it was opened; try again"));
    }
    let size = rustix::fs::seek(&file, rustix::fs::SeekFrom::End(0))
        .map_err(|e| dev_err(given, format!("cannot find its size: {e}")))?;
    if size < need {
        return Err(dev_err(
            given,
            format!(
                "it holds {size} bytes but the volume needs {need} bytes: give a device of at least {need} bytes"
            ),
        ));
    }
    Ok(Device {
        given: given.to_path_buf(),
        path,
        size,
        file: (!dry_run).then_some(file),
    })
}

/// Where the logical range `[pos, pos+len)` of a node lies on disk.
fn physical(extents: Option<&[(u64, u64)]>, pos: u64, len: u64) -> Vec<(u64, u64)> {
    let Some(ext) = extents else {
        return vec![(pos, len)];
    };
    let mut out = Vec::new();
    let (mut logical, mut p, mut rest) = (0u64, pos, len);
    for &(eo, el) in ext {
        if rest == 0 {
            break;
        }
        if p >= logical + el {
            logical += el;
            continue;
        }
        let within = p - logical;
        let n = (el - within).min(rest);
        out.push((eo + within, n));
        p += n;
        rest -= n;
        logical += el;
    }
    out
}

/// The ranges of `[0, size)` that `extents` (sorted) do not cover.
fn holes(extents: &[(u64, u64)], size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    for &(o, l) in extents {
        if o > at {
            out.push((at, o - at));
        }
        at = at.max(o + l);
    }
    if size > at {
        out.push((at, size - at));
    }
    out
}

/// Writes volume `node` (`volume` as backed up) onto `dev`. `written` grows
/// as bytes are written (for progress).
pub fn write(
    vault: &Vault,
    index: &Index,
    volume: &str,
    node: &Node,
    dev: &Device,
    zero_holes: bool,
    written: &AtomicU64,
) -> Result<DeviceReport> {
    let extents: Vec<(u64, u64)> = node.extents.clone().unwrap_or_else(|| vec![(0, node.size)]);
    let data_bytes: u64 = extents.iter().map(|e| e.1).sum();
    let hole_list = holes(&extents, node.size);
    let mut rep = DeviceReport {
        volume: volume.to_string(),
        device: dev.given.clone(),
        device_size: dev.size,
        volume_size: node.size,
        data_bytes,
        hole_bytes: hole_list.iter().map(|h| h.1).sum(),
        holes_zeroed: zero_holes,
        damaged: Vec::new(),
    };
    let Some(f) = &dev.file else {
        return Ok(rep); // a dry run
    };
    let mut wanted: Vec<(Id, Vec<(u64, u64)>)> = Vec::with_capacity(node.content.len());
    let mut pos = 0u64;
    for b in &node.content {
        let len = index
            .get(b)
            .map(|l| l.entry.raw_length as u64)
            .ok_or_else(|| {
                InstanceError::Usage(format!(
                    "volume {volume}: blob {b} is not in the vault's index (run `lifeboat vault check`)"
                ))
            })?;
        wanted.push((*b, physical(node.extents.as_deref(), pos, len)));
        pos += len;
    }
    let failed: Mutex<Option<std::io::Error>> = Mutex::new(None);
    let damaged = Mutex::new(Vec::new());
    fetch_blobs(vault, index, wanted, |parts, r| match r {
        Err(e) => damaged.lock().expect("lock").push(format!(
            "{volume}: bytes at {} on {}: {e}",
            parts.first().map(|p| p.0).unwrap_or(0),
            dev.given.display()
        )),
        Ok(data) => {
            let mut at = 0usize;
            for &(off, n) in parts {
                let n = n as usize;
                if let Err(e) = f.write_all_at(&data[at..at + n], off) {
                    failed.lock().expect("lock").get_or_insert(e);
                    return;
                }
                at += n;
                written.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    });
    let io = |e: std::io::Error| InstanceError::io("write to the device", &dev.given, e);
    if let Some(e) = failed.into_inner().expect("lock") {
        return Err(io(e));
    }
    if zero_holes {
        let zeros = vec![0u8; 1 << 20];
        for (mut o, mut l) in hole_list {
            while l > 0 {
                let n = l.min(zeros.len() as u64);
                f.write_all_at(&zeros[..n as usize], o).map_err(io)?;
                written.fetch_add(n, Ordering::Relaxed);
                o += n;
                l -= n;
            }
        }
    }
    f.sync_all().map_err(io)?;
    rep.damaged = damaged.into_inner().expect("lock");
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_what_extents_leave_out() {
        assert_eq!(holes(&[], 10), vec![(0, 10)]);
        assert_eq!(holes(&[(0, 10)], 10), vec![]);
        assert_eq!(holes(&[(2, 3), (8, 1)], 12), vec![(0, 2), (5, 3), (9, 3)]);
    }

    #[test]
    fn logical_ranges_map_onto_extents() {
        let ext = [(100, 10), (200, 10)];
        assert_eq!(physical(Some(&ext), 0, 10), vec![(100, 10)]);
        assert_eq!(physical(Some(&ext), 5, 10), vec![(105, 5), (200, 5)]);
        assert_eq!(physical(None, 7, 3), vec![(7, 3)]);
    }

    #[test]
    fn a_mount_of_the_device_or_a_partition_is_found() {
        let mi = "42 27 7:0 / /tmp/my\\040mnt rw,relatime - ext4 /dev/loop0 rw\n\
                  43 27 8:1 / /boot rw - ext4 /dev/sda1 rw\n";
        let devs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            mounted_at(mi, &devs(&["7:0"])).as_deref(),
            Some("/tmp/my mnt")
        );
        assert_eq!(
            mounted_at(mi, &devs(&["8:0", "8:1"])).as_deref(),
            Some("/boot")
        );
        assert_eq!(mounted_at(mi, &devs(&["7:1"])), None);
    }
}
