//! Paths below a directory bucket's root, walked by directory handle:
//! every component is opened relative to the one above with `O_NOFOLLOW`
//! (`openat`, `mkdirat`, `renameat`), so no key — and no symbolic link
//! planted inside the bucket — leads outside the root. The root itself is
//! opened following links (it may be one: the user's choice). Also the
//! staging file under `.lifeboat-tmp/`, and removing that directory when it
//! is empty.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::dir::TMP_DIR;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

pub(super) const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the bucket's root directory (following a link: the root may be one).
pub(super) fn open_root(root: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Why a key's directories could not be opened.
pub(super) enum Walk {
    /// A component is a symbolic link (its key-relative path).
    Symlink(String),
    /// Anything else.
    Io(std::io::Error),
}

/// Opens the directory that holds `key`'s file, from the bucket's root one
/// component at a time, never following a symbolic link (the root itself
/// may be one: that is the user's choice). With `create`, missing
/// directories are made. `None`: a directory is missing (without `create`).
pub(super) fn open_parent(
    root: &Path,
    key: &str,
    create: bool,
) -> std::result::Result<Option<(OwnedFd, String)>, Walk> {
    let comps: Vec<&str> = key.split('/').collect();
    let (leaf, dirs) = comps.split_last().expect("split yields one part");
    let io = |e: Errno| Walk::Io(e.into());
    // The root is opened following links (with O_DIRECTORY only).
    let mut cur = open_root(root).map_err(io)?;
    for (i, d) in dirs.iter().enumerate() {
        let mut tries = 0;
        cur = loop {
            match rustix::fs::openat(&cur, *d, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => break fd,
                Err(Errno::NOENT) if create && tries < 3 => {
                    tries += 1;
                    match rustix::fs::mkdirat(&cur, *d, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                    let st = rustix::fs::statat(&cur, *d, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
                    if rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::Symlink
                    {
                        return Err(Walk::Symlink(comps[..=i].join("/")));
                    }
                    return Err(io(e));
                }
                Err(e) => return Err(io(e)),
            }
        };
    }
    Ok(Some((cur, leaf.to_string())))
}

/// Opens an object's file (never through a symbolic link, also not in its
/// directories); a key below a link is not found.
pub(super) fn open_below(root: &Path, key: &str, flags: OFlags) -> std::io::Result<File> {
    let not_found = || std::io::Error::from(std::io::ErrorKind::NotFound);
    let (dir, leaf) = match open_parent(root, key, false) {
        Ok(Some(p)) => p,
        Ok(None) | Err(Walk::Symlink(_)) => return Err(not_found()),
        Err(Walk::Io(e)) => return Err(e),
    };
    let fd = rustix::fs::openat(
        &dir,
        leaf.as_str(),
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// A temporary file in `.lifeboat-tmp/` at the root, held by directory handle.
pub(super) struct Staged {
    pub(super) dir: OwnedFd,
    pub(super) name: String,
    root: PathBuf,
}

impl Staged {
    /// Makes the staging directory (never through a symlink) and a new file in it.
    pub(super) fn create(root: &Path) -> std::io::Result<(Staged, File)> {
        let name = format!(
            "{}.{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let rootfd = open_root(root)?;
        let mut tries = 0;
        loop {
            tries += 1;
            match rustix::fs::mkdirat(&rootfd, TMP_DIR, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            // Another writer may remove the (empty) directory meanwhile: again.
            let dir = match rustix::fs::openat(&rootfd, TMP_DIR, DIR_FLAGS, Mode::empty()) {
                Ok(d) => d,
                Err(Errno::NOENT) if tries < 20 => continue,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(std::io::Error::other(format!(
                        "{TMP_DIR} at the root of the bucket is not a directory (a symbolic link?); remove it"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            match rustix::fs::openat(
                &dir,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o666),
            ) {
                Ok(fd) => {
                    let root = root.to_path_buf();
                    return Ok((Staged { dir, name, root }, File::from(fd)));
                }
                Err(Errno::NOENT) if tries < 20 => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes the temporary file (after a failure) and the staging directory when empty.
    pub(super) fn discard(&self) {
        let _ = rustix::fs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty());
        self.done();
    }

    /// After the rename: the staging directory goes when it is empty, so a
    /// restored or replicated bucket holds exactly the objects.
    pub(super) fn done(&self) {
        remove_tmp_dir_if_empty(&self.root);
    }
}

/// Removes `.lifeboat-tmp/` at the root when it is empty (another writer's
/// file in it keeps it).
pub(super) fn remove_tmp_dir_if_empty(root: &Path) {
    if let Ok(rootfd) = open_root(root) {
        let _ = rustix::fs::unlinkat(&rootfd, TMP_DIR, AtFlags::REMOVEDIR);
    }
}
