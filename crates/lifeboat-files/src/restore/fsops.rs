//! Filesystem operations of a restore, all relative to directory handles and
//! none following a symlink: each name is one checked component, opened with
//! `O_NOFOLLOW`, created with `O_EXCL`, looked at with `AT_SYMLINK_NOFOLLOW`.
//! A directory of the restore is reached from the target's handle one
//! component at a time, so a symlink planted anywhere below the target is
//! never followed (the target itself may be a symlink: the user's choice).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::plan::{Plan, TARGET};

/// Names a restore writes to before renaming them into place; a later
/// restore removes the ones a killed run left behind.
pub(crate) const TEMP_PREFIX: &[u8] = b".lifeboat-restore.";

/// The temporary name of entry `i` of run `run`.
pub(crate) fn temp_name(run: u32, i: u32) -> CString {
    CString::new(format!(".lifeboat-restore.{run:08x}.{i:x}")).expect("no NUL in a temp name")
}

/// Whether `name` is a temporary name of some restore.
pub(crate) fn is_temp(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// A checked name as a C string (checked names have no NUL).
pub(crate) fn cname(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What `name` in `dir` is, without following a symlink; `None` when absent.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => Ok(Some(s)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The file type of a stat result.
pub(crate) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Opens directory `name` in `dir`; a symlink there is an error (`ELOOP`/`ENOTDIR`).
pub(crate) fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?)
}

/// Creates directory `name` in `dir` (owner-only until its metadata is set last).
pub(crate) fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?)
}

/// Creates a new file `name` in `dir` (never an existing one, never through a
/// link). A leftover of the same temporary name is removed and the create
/// tried once more.
pub(crate) fn create_file(dir: BorrowedFd<'_>, name: &CStr, read_too: bool) -> io::Result<File> {
    let rw = if read_too {
        OFlags::RDWR
    } else {
        OFlags::WRONLY
    };
    let flags = rw | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o600);
    let fd = match rustix::fs::openat(dir, name, flags, mode) {
        Err(Errno::EXIST) => {
            unlink_at(dir, name)?;
            rustix::fs::openat(dir, name, flags, mode)?
        }
        r => r?,
    };
    Ok(File::from(fd))
}

/// Opens an existing file `name` in `dir` for writing (and reading), not through a link.
pub(crate) fn open_file(dir: BorrowedFd<'_>, name: &CStr, read_too: bool) -> io::Result<File> {
    let rw = if read_too {
        OFlags::RDWR
    } else {
        OFlags::WRONLY
    };
    let fd = rustix::fs::openat(
        dir,
        name,
        rw | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Renames `from` over `to`, both in `dir`.
pub(crate) fn rename_at(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    Ok(rustix::fs::renameat(dir, from, dir, to)?)
}

/// Removes the non-directory `name` in `dir`; absent is fine.
pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The names in a directory (without `.` and `..`).
pub(crate) fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut d = Dir::read_from(dir)?;
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}

/// Removes `name` in `dir` and, for a directory, everything below it;
/// symlinks are removed, never followed.
pub(crate) fn remove_tree(dir: BorrowedFd<'_>, name: &CStr, depth: u32) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    if depth > super::plan::MAX_DEPTH {
        return Err(io::Error::other("too deep to remove"));
    }
    let sub = open_dir(dir, name)?;
    for n in list(sub.as_fd())? {
        remove_tree(sub.as_fd(), &cname(&n)?, depth + 1)?;
    }
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Removes the temporary names a killed restore left in `dir`.
pub(crate) fn remove_stale_temps(dir: BorrowedFd<'_>) -> io::Result<()> {
    for n in list(dir)? {
        if is_temp(&n) {
            unlink_at(dir, &cname(&n)?)?;
        }
    }
    Ok(())
}

/// A directory handle: kept open, or opened for one use.
pub(crate) enum Handle<'a> {
    Kept(BorrowedFd<'a>),
    Opened(OwnedFd),
}

impl AsFd for Handle<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Handle::Kept(b) => *b,
            Handle::Opened(o) => o.as_fd(),
        }
    }
}

/// The handles of the target and of the restored directories. Up to a budget
/// of open files they are kept; past it a directory is reopened from its
/// nearest kept ancestor, one component at a time, never through a link.
pub(crate) struct Dirs {
    /// The target (absent in a dry run into a directory that does not exist).
    pub target: Option<OwnedFd>,
    fds: Vec<Option<OwnedFd>>,
    budget: usize,
    kept: usize,
}

impl Dirs {
    pub fn new(target: Option<OwnedFd>, entries: usize) -> Dirs {
        let mut lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if lim.current < lim.maximum {
            lim.current = lim.maximum.map(|m| m.min(1 << 20));
            let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, lim);
            lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        }
        let soft = lim.current.unwrap_or(1 << 20) as usize;
        Dirs {
            target,
            fds: (0..entries).map(|_| None).collect(),
            budget: soft.saturating_sub(256).max(16) / 2,
            kept: 0,
        }
    }

    /// Keeps `fd` as the handle of entry `i` if the budget allows.
    pub fn keep(&mut self, i: u32, fd: OwnedFd) {
        if self.kept < self.budget {
            self.fds[i as usize] = Some(fd);
            self.kept += 1;
        }
    }

    /// The handle of directory entry `i` (or of the target for [`TARGET`]).
    pub fn get(&self, plan: &Plan, i: u32) -> io::Result<Handle<'_>> {
        let target = || {
            self.target
                .as_ref()
                .map(|t| t.as_fd())
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the target does not exist"))
        };
        if i == TARGET {
            return Ok(Handle::Kept(target()?));
        }
        if let Some(fd) = &self.fds[i as usize] {
            return Ok(Handle::Kept(fd.as_fd()));
        }
        let mut chain = vec![i];
        let mut cur = plan.entries[i as usize].parent;
        while cur != TARGET && self.fds[cur as usize].is_none() {
            chain.push(cur);
            cur = plan.entries[cur as usize].parent;
        }
        let base = if cur == TARGET {
            target()?
        } else {
            self.fds[cur as usize].as_ref().expect("kept").as_fd()
        };
        let mut h: Option<OwnedFd> = None;
        for j in chain.into_iter().rev() {
            let name = cname(&plan.entries[j as usize].name)?;
            let parent = h.as_ref().map(|o| o.as_fd()).unwrap_or(base);
            h = Some(open_dir(parent, &name)?);
        }
        Ok(Handle::Opened(h.expect("at least one")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_and_short() {
        let n = temp_name(0xdead_beef, 123_456);
        assert!(is_temp(n.to_bytes()));
        assert!(n.to_bytes().len() < 40);
        assert!(!is_temp(b".lifeboat-tmp"));
        assert!(!is_temp(b"notes.txt"));
    }

    #[test]
    fn nothing_follows_a_symlink_below_the_handle() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        let to = t.path().join("to");
        std::fs::create_dir(&to).unwrap();
        std::os::unix::fs::symlink(&victim, to.join("link")).unwrap();
        let root: OwnedFd = File::open(&to).unwrap().into();
        let link = cname(b"link").unwrap();
        assert!(open_dir(root.as_fd(), &link).is_err());
        assert!(open_file(root.as_fd(), &link, false).is_err());
        assert!(mkdir_at(root.as_fd(), &link).is_err());
        let st = stat_at(root.as_fd(), &link).unwrap().unwrap();
        assert_eq!(file_type(&st), FileType::Symlink);
        std::fs::write(victim.join("keep"), b"x").unwrap();
        remove_tree(root.as_fd(), &link, 0).unwrap();
        assert!(
            victim.join("keep").exists(),
            "removing a link removes only the link"
        );
        assert!(!to.join("link").exists());
        // Creating a file where a link stands replaces the link, never
        // writes through it.
        std::os::unix::fs::symlink(victim.join("keep"), to.join("link")).unwrap();
        let mut f = create_file(root.as_fd(), &link, false).unwrap();
        std::io::Write::write_all(&mut f, b"new").unwrap();
        assert_eq!(std::fs::read(victim.join("keep")).unwrap(), b"x");
        let m = std::fs::symlink_metadata(to.join("link")).unwrap();
        assert!(m.file_type().is_file());
    }

    #[test]
    fn stale_temps_are_removed_and_other_names_kept() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(".lifeboat-restore.0000abcd.1"), b"x").unwrap();
        std::fs::write(t.path().join("mine"), b"x").unwrap();
        let d: OwnedFd = File::open(t.path()).unwrap().into();
        remove_stale_temps(d.as_fd()).unwrap();
        assert_eq!(list(d.as_fd()).unwrap(), vec![b"mine".to_vec()]);
    }
}
