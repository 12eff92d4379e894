//! qcow2 volumes, through Debian's `qemu-img` (package `qemu-utils`).
//!
//! Backup: `qemu-img convert -f qcow2 -O raw` into a sparse temporary file
//! (zero clusters stay holes), which is then read as a raw volume; the node
//! keeps the qcow2 file's identity and times (an unchanged qcow2 file is not
//! converted again) and attr `volume = qcow2`. Restore: the raw image written
//! by the files restore is converted back (`-O qcow2`) under a temporary name
//! and renamed over it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{InstanceError, Result};

/// The first bytes of a qcow2 image.
const MAGIC: &[u8; 4] = b"QFI\xfb";

/// Whether the file starts like a qcow2 image.
pub fn is_qcow2(f: &std::fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut m = [0u8; 4];
    f.read_exact_at(&mut m, 0).is_ok() && &m == MAGIC
}

fn qemu_img(args: &[&str], volume: &Path) -> Result<()> {
    let o = Command::new("qemu-img")
        .args(args)
        .output()
        .map_err(|e| InstanceError::Volume {
            path: volume.to_path_buf(),
            op: "run qemu-img for it",
            source: std::io::Error::new(
                e.kind(),
                format!("{e} (install Debian's qemu-utils for qcow2 volumes)"),
            ),
        })?;
    if !o.status.success() {
        let mut err = String::new();
        let _ = (&o.stderr[..]).read_to_string(&mut err);
        return Err(InstanceError::Volume {
            path: volume.to_path_buf(),
            op: "convert it with qemu-img",
            source: std::io::Error::other(format!("{}: {}", o.status, err.trim())),
        });
    }
    Ok(())
}

/// A raw, sparse copy of a qcow2 image in a temporary directory (removed on drop).
pub fn to_raw(path: &Path) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("lifeboat-qcow2-")
        .tempdir()
        .map_err(|e| InstanceError::io("create a temporary directory for", path, e))?;
    let raw = dir.path().join("volume.raw");
    let (p, r) = (path.to_string_lossy(), raw.to_string_lossy());
    qemu_img(&["convert", "-q", "-f", "qcow2", "-O", "raw", &p, &r], path)?;
    Ok((dir, raw))
}

/// Converts the raw image restored at `path` into qcow2, in place.
pub fn restore_as_qcow2(path: &Path) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.lifeboat-qcow2",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&tmp);
    let (p, t) = (path.to_string_lossy(), tmp.to_string_lossy());
    qemu_img(&["convert", "-q", "-f", "raw", "-O", "qcow2", &p, &t], path)?;
    let mode = std::fs::metadata(path)
        .map_err(|e| InstanceError::io("stat", path, e))?
        .permissions();
    std::fs::set_permissions(&tmp, mode).map_err(|e| InstanceError::io("chmod", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| InstanceError::io("rename into place", path, e))?;
    Ok(())
}
