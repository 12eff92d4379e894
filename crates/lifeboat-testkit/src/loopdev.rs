//! Real block devices for tests: a loop device over a file (`losetup`, as
//! root). Detached when dropped. Without losetup or root the test fails and
//! says why: a block-device test never passes without a device.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop device attached to a backing file.
#[derive(Debug)]
pub struct LoopDevice {
    /// The device, e.g. `/dev/loop3`.
    pub path: PathBuf,
}

impl LoopDevice {
    /// Attaches a loop device to `file` (which must exist).
    pub fn attach(file: &Path) -> LoopDevice {
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run losetup ({e}): block-device tests need util-linux's losetup and root (CI runs as root on Debian)")
            });
        assert!(
            o.status.success(),
            "losetup -f --show {} failed ({}): block-device tests need root and a free loop device: {}",
            file.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        assert!(path.starts_with("/dev/"), "losetup printed {path:?}");
        LoopDevice { path }
    }

    /// A loop device over a new file of `size` bytes (sparse: it reads zeros).
    pub fn new_sparse(file: &Path, size: u64) -> LoopDevice {
        std::fs::File::create(file)
            .and_then(|f| f.set_len(size))
            .unwrap_or_else(|e| panic!("create {}: {e}", file.display()));
        LoopDevice::attach(file)
    }

    /// The device path as a string.
    pub fn as_str(&self) -> &str {
        self.path.to_str().expect("a UTF-8 device path")
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // A mount left by a failed test goes first, else the detach is deferred.
        let _ = Command::new("umount").arg(&self.path).output();
        let o = Command::new("losetup").arg("-d").arg(&self.path).output();
        if !matches!(&o, Ok(o) if o.status.success()) {
            eprintln!("warning: could not detach {}: {o:?}", self.path.display());
        }
    }
}
