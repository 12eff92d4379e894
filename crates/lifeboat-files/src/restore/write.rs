//! Writing what a restore plan decided: file contents fetched from the vault
//! into temporary names, then metadata through the file's own handle, then a
//! rename over the final name; empty files, fifos, devices, hard links and
//! symlinks the same way (create under a temporary name, rename into place).
//! A file is visible under its name only when it is complete and its every
//! blob verified; a damaged blob or a local error leaves what was there.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use lifeboat_vault::fetch::fetch_blobs;
use lifeboat_vault::tree::{Node, NodeKind};
use lifeboat_vault::{Id, Index, Vault};
use rayon::prelude::*;

use super::fsops::{self, Dirs, cname, temp_name};
use super::plan::Plan;
use crate::{Counters, meta};

/// Entry states.
pub(crate) const PENDING: u8 = 0;
pub(crate) const DONE: u8 = 1;
pub(crate) const KEPT: u8 = 2;
pub(crate) const DAMAGED: u8 = 3;
pub(crate) const FAILED: u8 = 4;

/// What every writer of one restore shares.
pub(crate) struct Run<'a> {
    pub plan: &'a Plan,
    pub dirs: &'a Dirs,
    pub to: &'a Path,
    pub run: u32,
    pub is_root: bool,
    pub verify: bool,
    pub counters: &'a Counters,
    pub state: Vec<AtomicU8>,
    pub damaged: Mutex<Vec<String>>,
    pub errors: Mutex<Vec<String>>,
    pub warnings: Mutex<Vec<String>>,
    pub verify_failed: Mutex<Vec<String>>,
    /// Set by a local error that will repeat (disk full, read-only): nothing more is written.
    pub abort: AtomicBool,
    /// Files not written because of `abort`.
    pub not_written: AtomicU64,
}

impl Run<'_> {
    pub fn path(&self, i: u32) -> String {
        self.plan.path(self.to, i).display().to_string()
    }

    pub fn state(&self, i: u32) -> u8 {
        self.state[i as usize].load(Ordering::Acquire)
    }

    fn settle(&self, i: u32, to: u8) -> bool {
        self.state[i as usize]
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks entry `i` damaged (its data cannot be read from the vault).
    pub fn damaged(&self, i: u32, why: impl std::fmt::Display) {
        if self.settle(i, DAMAGED) {
            let m = format!("{}: {why}", self.path(i));
            self.damaged.lock().expect("lock").push(m);
        }
    }

    /// Marks entry `i` failed by a local error of `op`.
    pub fn local(&self, i: u32, op: &str, e: io::Error) {
        let repeats = [
            rustix::io::Errno::NOSPC,
            rustix::io::Errno::DQUOT,
            rustix::io::Errno::ROFS,
        ]
        .iter()
        .any(|x| e.raw_os_error() == Some(x.raw_os_error()));
        if repeats {
            self.abort.store(true, Ordering::Release);
        }
        if self.settle(i, FAILED) {
            let m = format!("{op} {}: {e}", self.path(i));
            self.errors.lock().expect("lock").push(m);
        }
    }

    /// Whether to go on with entry `i`; after an abort it is counted as not written.
    fn go_on(&self, i: u32) -> bool {
        if self.abort.load(Ordering::Acquire) {
            if self.settle(i, FAILED) {
                self.not_written.fetch_add(1, Ordering::Relaxed);
            }
            return false;
        }
        self.state(i) == PENDING
    }

    fn warn(&self, w: Vec<String>) {
        if !w.is_empty() {
            self.warnings.lock().expect("lock").extend(w);
        }
    }

    /// Renames the finished temporary name of `i` into place.
    fn place(&self, dir: BorrowedFd<'_>, i: u32) -> bool {
        let e = &self.plan.entries[i as usize];
        let tmp = temp_name(self.run, i);
        let r = cname(&e.name).and_then(|n| fsops::rename_at(dir, &tmp, &n));
        match r {
            Ok(()) => {
                self.settle(i, DONE);
                self.counters.files.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(err) => {
                let _ = fsops::unlink_at(dir, &tmp);
                self.local(i, "rename into place", err);
                false
            }
        }
    }

    /// Creates entry `i` under its temporary name with `make`, puts its
    /// metadata on it and renames it into place (empty files, fifos,
    /// devices, symlinks, hard links).
    pub fn create(
        &self,
        i: u32,
        make: impl Fn(BorrowedFd<'_>, &std::ffi::CStr) -> io::Result<Option<File>>,
    ) {
        if !self.go_on(i) {
            return;
        }
        let e = &self.plan.entries[i as usize];
        let dir = match self.dirs.get(self.plan, e.parent) {
            Ok(d) => d,
            Err(err) => return self.local(i, "open the directory of", err),
        };
        let tmp = temp_name(self.run, i);
        let mut made = make(dir.as_fd(), &tmp);
        if matches!(&made, Err(e) if e.kind() == io::ErrorKind::AlreadyExists) {
            // A leftover of the same temporary name: remove it, try once more.
            made = fsops::unlink_at(dir.as_fd(), &tmp).and_then(|_| make(dir.as_fd(), &tmp));
        }
        match made {
            Ok(f) => {
                if e.link_to.is_none() {
                    let what = || self.path(i);
                    let w = match &f {
                        Some(f) => meta::apply_fd(f.as_fd(), &e.node, self.is_root, &what),
                        None => meta::apply_at(dir.as_fd(), &tmp, &e.node, self.is_root, &what),
                    };
                    self.warn(w);
                }
                self.place(dir.as_fd(), i);
            }
            Err(err) if !self.is_root && is_device(&e.node) && err.raw_os_error() == Some(1) => {
                // Like an owner, a device node is what only root may restore:
                // said, not an error of the target.
                if self.settle(i, FAILED) {
                    self.warn(vec![format!(
                        "{}: device node not created (only root may create device nodes; restore as root to get it)",
                        self.path(i)
                    )]);
                }
            }
            Err(err) => {
                let _ = fsops::unlink_at(dir.as_fd(), &tmp);
                self.local(i, "create", err)
            }
        }
    }
}

fn is_device(n: &Node) -> bool {
    matches!(n.kind, NodeKind::Chardev | NodeKind::Blockdev)
}

fn logical_len(index: &Index, b: &Id) -> u64 {
    index.get(b).map(|l| l.entry.raw_length as u64).unwrap_or(0)
}

/// Whether a file's content is written in one piece by its only blob.
fn single(n: &Node) -> bool {
    n.content.len() == 1 && n.extents.is_none()
}

/// Fetches and writes the content of `files` (entries with content blobs).
pub(crate) fn contents(run: &Run, vault: &Vault, index: &Index, files: &[u32]) {
    // Files written by several blobs (or with holes) get their temporary
    // name first; a one-blob file is created by its blob.
    files
        .par_iter()
        .filter(|&&i| !single(&run.plan.entries[i as usize].node))
        .for_each(|&i| {
            let e = &run.plan.entries[i as usize];
            let r = run.dirs.get(run.plan, e.parent).and_then(|d| {
                let tmp = temp_name(run.run, i);
                let f = fsops::create_file(d.as_fd(), &tmp, false)?;
                f.set_len(e.node.size)
            });
            if let Err(err) = r {
                run.local(i, "create", err);
            }
        });
    let remaining: Vec<AtomicU32> = (0..run.plan.entries.len())
        .map(|_| AtomicU32::new(0))
        .collect();
    let mut wanted: Vec<(Id, (u32, u64))> = Vec::new();
    for &i in files {
        let n = &run.plan.entries[i as usize].node;
        remaining[i as usize].store(n.content.len() as u32, Ordering::Relaxed);
        let mut off = 0u64;
        for b in &n.content {
            wanted.push((*b, (i, off)));
            off += logical_len(index, b);
        }
    }
    fetch_blobs(vault, index, wanted, |&(i, off), r| {
        let e = &run.plan.entries[i as usize];
        let mut file = None;
        match r {
            Err(err) => run.damaged(i, err),
            Ok(data) if run.go_on(i) => match write_blob(run, i, off, data) {
                Ok(f) => {
                    run.counters
                        .bytes_written
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    file = Some(f);
                }
                Err(err) => run.local(i, "write", err),
            },
            Ok(_) => {}
        }
        if remaining[i as usize].fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last blob of the file: finish it, or take the temporary name away.
        let dir = match run.dirs.get(run.plan, e.parent) {
            Ok(d) => d,
            Err(err) => return run.local(i, "open the directory of", err),
        };
        if run.state(i) != PENDING {
            let _ = fsops::unlink_at(dir.as_fd(), &temp_name(run.run, i));
            return;
        }
        let f = match file {
            Some(f) => f,
            None => match fsops::open_file(dir.as_fd(), &temp_name(run.run, i), run.verify) {
                Ok(f) => f,
                Err(err) => return run.local(i, "open", err),
            },
        };
        if run.verify
            && let Err(m) = verify_file(vault, index, &f, &e.node)
        {
            {
                let _ = fsops::unlink_at(dir.as_fd(), &temp_name(run.run, i));
                if run.settle(i, FAILED) {
                    run.verify_failed
                        .lock()
                        .expect("lock")
                        .push(format!("{}: {m}", run.path(i)));
                }
                return;
            }
        }
        let w = meta::apply_fd(f.as_fd(), &e.node, run.is_root, &|| run.path(i));
        run.warn(w);
        drop(f);
        run.place(dir.as_fd(), i);
    });
}

/// Writes one blob of entry `i` at logical offset `off`; returns the open file.
fn write_blob(run: &Run, i: u32, off: u64, data: &[u8]) -> io::Result<File> {
    let e = &run.plan.entries[i as usize];
    let dir = run.dirs.get(run.plan, e.parent)?;
    let tmp = temp_name(run.run, i);
    if single(&e.node) {
        let f = fsops::create_file(dir.as_fd(), &tmp, run.verify)?;
        f.write_all_at(data, 0)?;
        return Ok(f);
    }
    let f = fsops::open_file(dir.as_fd(), &tmp, run.verify)?;
    match e.node.extents.as_deref() {
        None => f.write_all_at(data, off)?,
        Some(ext) => {
            let mut logical = 0u64;
            let mut rest = data;
            let mut pos = off;
            for (eo, el) in ext {
                if rest.is_empty() {
                    break;
                }
                if pos >= logical + el {
                    logical += el;
                    continue;
                }
                let within = pos - logical;
                let n = ((el - within) as usize).min(rest.len());
                f.write_all_at(&rest[..n], eo + within)?;
                rest = &rest[n..];
                pos += n as u64;
                logical += el;
            }
        }
    }
    Ok(f)
}

/// Re-reads a written file through its handle and checks its size and every
/// chunk against its blob id.
fn verify_file(vault: &Vault, index: &Index, f: &File, node: &Node) -> Result<(), String> {
    let md = f.metadata().map_err(|e| e.to_string())?;
    if md.len() != node.size {
        return Err(format!("size {} instead of {}", md.len(), node.size));
    }
    let read_logical = |pos: u64, len: usize| -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        match &node.extents {
            None => f.read_exact_at(&mut buf, pos)?,
            Some(ext) => {
                let mut logical = 0u64;
                let mut filled = 0usize;
                let mut p = pos;
                for (eo, el) in ext {
                    if filled == len {
                        break;
                    }
                    if p >= logical + el {
                        logical += el;
                        continue;
                    }
                    let within = p - logical;
                    let n = ((el - within) as usize).min(len - filled);
                    f.read_exact_at(&mut buf[filled..filled + n], eo + within)?;
                    filled += n;
                    p += n as u64;
                    logical += el;
                }
            }
        }
        Ok(buf)
    };
    let mut pos = 0u64;
    for b in &node.content {
        let len = index
            .get(b)
            .map(|l| l.entry.raw_length as usize)
            .ok_or_else(|| format!("blob {b} unknown"))?;
        let data = read_logical(pos, len).map_err(|e| e.to_string())?;
        if vault.key().blob_id(&data) != *b {
            return Err(format!("bytes at {pos} differ from the point"));
        }
        pos += len as u64;
    }
    Ok(())
}

/// Creates the empty files, fifos and devices `small`.
pub(crate) fn specials(run: &Run, small: &[u32]) {
    small.par_iter().for_each(|&i| {
        let n = &run.plan.entries[i as usize].node;
        run.create(i, |dir, tmp| match n.kind {
            NodeKind::File => {
                let f = fsops::create_file(dir, tmp, false)?;
                f.set_len(n.size)?;
                Ok(Some(f))
            }
            _ => meta::make_special_at(dir, tmp, n).map(|_| None),
        })
    });
}

/// Links the further names `links` of hard-linked files to their first
/// name, once that is written.
pub(crate) fn hard_links(run: &Run, links: &[u32]) {
    let plan = run.plan;
    links.par_iter().for_each(|&i| {
        let first = plan.entries[i as usize].link_to.expect("a link");
        match run.state(first) {
            DONE | KEPT => {}
            DAMAGED => return run.damaged(i, "hard link to a damaged file"),
            _ => {
                return run.local(
                    i,
                    "link",
                    std::io::Error::other(format!(
                        "its first name {} was not written",
                        run.path(first)
                    )),
                );
            }
        }
        let fe = &plan.entries[first as usize];
        run.create(i, |dir, tmp| {
            let fh = run.dirs.get(plan, fe.parent)?;
            rustix::fs::linkat(
                fh.as_fd(),
                cname(&fe.name)?.as_c_str(),
                dir,
                tmp,
                rustix::fs::AtFlags::empty(),
            )?;
            Ok(None)
        })
    });
}

/// Creates the symlinks `symlinks` (last of all: nothing is written through
/// them).
pub(crate) fn symlinks(run: &Run, symlinks: &[u32]) {
    symlinks.par_iter().for_each(|&i| {
        let n = &run.plan.entries[i as usize].node;
        run.create(i, |dir, tmp| {
            let t = n.target_bytes().unwrap_or_default();
            rustix::fs::symlinkat(OsStr::from_bytes(&t), dir, tmp)?;
            Ok(None)
        })
    });
}
