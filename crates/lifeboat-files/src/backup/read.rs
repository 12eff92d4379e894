//! Reading one file into the vault, and telling whether it changed while it
//! was read.
//!
//! ```text
//! before = status when listed (later reads: the open file's)
//! read (data extents only, for sparse files) → chunk → vault
//! after  = fstat of the open file
//! identity, size, mtime or ctime moved        → read again (≤ REREADS), then a warning
//! held, but mtime/ctime within RECENT of now  → read a second time and compare the
//!     content (≤ SECOND_LOOK_BUDGET bytes per backup): a writer through a shared
//!     mapping moves the times only when it first writes a clean page, so the
//!     times can hold while it writes; different content → read again, as above
//! ```

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use lifeboat_vault::Id;
use lifeboat_vault::tree::Node;

use super::Ctx;
use crate::{FilesError, Result};

/// Opens a file to read it without touching its atime where allowed, and
/// never through a symlink: a file that became a link since it was listed
/// fails (ELOOP) instead of storing the link target's content under its name.
pub(super) fn open_noatime(path: &Path) -> std::io::Result<File> {
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let r = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOATIME.bits() as i32 | nofollow)
        .open(path);
    match r {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nofollow)
                .open(path)
        }
        Err(e) => Err(e),
    }
}

/// Data extents of a file that may be sparse (SEEK_DATA/SEEK_HOLE), as
/// `(offset, length)` below `size`. The instance protector's volumes use it too.
pub fn data_extents(f: &File, size: u64) -> std::io::Result<Vec<(u64, u64)>> {
    use rustix::fs::SeekFrom;
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match rustix::fs::seek(f, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if start >= size {
            break;
        }
        let end = rustix::fs::seek(f, SeekFrom::Hole(start))?.min(size);
        out.push((start, end - start));
        pos = end;
    }
    Ok(out)
}

/// Reads the data extents of a file in order, as one stream.
struct ExtentReader<'a> {
    f: &'a File,
    extents: &'a [(u64, u64)],
    i: usize,
    done_in_extent: u64,
}

impl Read for ExtentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.i < self.extents.len() {
            let (off, len) = self.extents[self.i];
            let left = len - self.done_in_extent;
            if left == 0 {
                self.i += 1;
                self.done_in_extent = 0;
                continue;
            }
            let want = (buf.len() as u64).min(left) as usize;
            let n = self
                .f
                .read_at(&mut buf[..want], off + self.done_in_extent)?;
            if n == 0 {
                // The file shrank while reading.
                self.i = self.extents.len();
                return Ok(0);
            }
            self.done_in_extent += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

/// Files at least this large are hashed, compressed and sealed on all cores.
pub const PARALLEL_FROM: u64 = 64 << 20;

/// Stores a file's stream: large files on all cores, others on this thread.
fn save(
    ctx: &Ctx,
    r: impl Read,
    size: u64,
    on_chunk: impl FnMut(u64),
) -> lifeboat_vault::Result<(Vec<Id>, u64)> {
    if size >= PARALLEL_FROM {
        ctx.writer.save_stream_parallel(r, on_chunk)
    } else {
        ctx.writer.save_stream(r, on_chunk)
    }
}

/// How many times a file that changed while it was read is read again
/// before it is stored as read, with a warning.
pub const REREADS: usize = 3;

/// What tells a file's content changed: identity, size, mtime and ctime (ns).
pub(super) fn stamp(md: &std::fs::Metadata) -> (u64, u64, u64, i64, i64) {
    (
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(md.mtime_nsec()),
        md.ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(md.ctime_nsec()),
    )
}

/// Bytes of second reads (see [`read_file`]) one backup spends at most; a
/// recent file past it is read once, and named in a note.
pub const SECOND_LOOK_BUDGET: u64 = 1 << 30;

/// How recent a file's mtime or ctime must be for a second look: the kernel's
/// writeback delay (`vm.dirty_expire_centisecs` + `vm.dirty_writeback_centisecs`,
/// after which a page dirtied through a mapping is clean again, so the next
/// write through the mapping moves the times) plus 30 s of slack.
pub fn recent_window() -> Duration {
    let centis = |name: &str, default: u64| {
        std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(default)
    };
    let c = centis("dirty_expire_centisecs", 3000) + centis("dirty_writeback_centisecs", 500);
    Duration::from_millis(c * 10) + Duration::from_secs(30)
}

fn ns(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
    }
}

/// Whether a file whose read held (`after`, read from `started`) gets a
/// second read to compare: its mtime or ctime is recent, and the budget
/// has `bytes` left (taken from it).
fn second_look(ctx: &Ctx, path: &Path, after: &std::fs::Metadata, started: SystemTime) -> bool {
    let (_, _, _, mtime, ctime) = stamp(after);
    let since = ns(started).saturating_sub(ctx.recent.as_nanos() as i64);
    if mtime.max(ctime) < since {
        return false;
    }
    let bytes = after.size();
    let took = ctx
        .second_looks
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
            left.checked_sub(bytes)
        })
        .is_ok();
    if !took {
        let mut u = ctx.unlooked.lock().expect("lock");
        u.0 += 1;
        u.1.get_or_insert_with(|| path.to_path_buf());
    }
    took
}

/// The note for the files [`second_look`] had no budget left for, if any.
pub(super) fn unlooked_note(ctx: &Ctx) -> Option<String> {
    let (n, first) = &*ctx.unlooked.lock().expect("lock");
    let first = first.as_ref()?;
    Some(format!(
        "{n} file(s) changed in the last {} s were read once, not twice, because the second reads of this backup ({SECOND_LOOK_BUDGET} bytes) were spent (the first: {}); a writer through a shared mapping in them would not be seen",
        ctx.recent.as_secs(),
        first.display()
    ))
}

/// Reads a file into the vault. The file's status before a read (for the
/// first read, the one taken while listing its directory; for a read again,
/// the open file's) is compared with the open file's status after it
/// (fstat); when its identity, size, mtime or ctime moved, the copy may mix
/// old and new blocks, so it is read again, up to [`REREADS`] times.
///
/// A read whose status held is trusted, unless the file's mtime or ctime is
/// recent ([`recent_window`]): a writer through a shared mapping moves them
/// only when it first writes a page that is clean, so a file whose pages are
/// dirty can change under the read with its status still. Such a file is read
/// a second time (within [`SECOND_LOOK_BUDGET`]) and the two contents
/// compared; when they differ it is read again, until two reads in a row
/// agree (at most [`REREADS`] reads more).
///
/// A file that never holds still is stored as read, with a warning (the
/// point is then incomplete: exit 3), and with the times seen before its
/// last read (without its ctime when only its content moved), so that the
/// next backup reads it again.
///
/// A read stops at the size seen before it (a file that grew meanwhile is
/// caught by the status after it), which saves the read that finds the end.
pub(super) fn read_file(
    ctx: &Ctx,
    path: &Path,
    listed: &std::fs::Metadata,
    node: &mut Node,
) -> Result<()> {
    let f = open_noatime(path).map_err(|e| FilesError::io("open", path, e))?;
    let mut attempt = 0;
    // The content of the previous read whose status held, to compare with.
    let mut looked: Option<Vec<Id>> = None;
    let mut moved_unseen = false;
    loop {
        let started = SystemTime::now();
        let before = if attempt == 0 {
            listed.clone()
        } else {
            f.metadata().map_err(|e| FilesError::io("stat", path, e))?
        };
        // A read to compare is not counted in `bytes_read` (what the point took in).
        let count = looked.is_none();
        let (content, read) = read_once(ctx, &f, path, &before, attempt, count, node)?;
        let after = f.metadata().map_err(|e| FilesError::io("stat", path, e))?;
        let (_, _, sz, mtime_ns, ctime_ns) = stamp(&before);
        node.size = sz;
        node.mtime_ns = mtime_ns;
        node.ctime_ns = ctime_ns;
        let expected = node
            .extents
            .as_ref()
            .map(|e| e.iter().map(|x| x.1).sum())
            .unwrap_or(node.size);
        let held = stamp(&before) == stamp(&after) && read == expected;
        let why = if !held {
            looked = None;
            "changed while it was read"
        } else {
            match looked.take() {
                Some(prev) if prev == content => {
                    node.content = content;
                    return Ok(());
                }
                None if !second_look(ctx, path, &after, started) => {
                    node.content = content;
                    return Ok(());
                }
                Some(_) => {
                    moved_unseen = true;
                    looked = Some(content.clone());
                    "changed while it was read (its content differs from the read before, its times do not)"
                }
                None => {
                    looked = Some(content.clone());
                    "changed recently; reading it a second time to compare"
                }
            }
        };
        attempt += 1;
        if attempt <= REREADS {
            tracing::info!("{} {why} ({attempt}/{REREADS})", path.display());
            continue;
        }
        let how = if moved_unseen {
            "; its content differed between reads while its size and times held (a writer through a shared mapping?)"
        } else {
            ""
        };
        ctx.warn(format!(
            "{} changed while it was read ({} reads; {} bytes expected, {} read{how}); the point holds the last read, which may mix old and new content",
            path.display(),
            attempt,
            expected,
            read
        ));
        if node.extents.is_none() {
            node.size = read;
        }
        if moved_unseen {
            // Its status may never move again: the next backup must not take
            // it as unchanged.
            node.ctime_ns = 0;
        }
        node.content = content;
        return Ok(());
    }
}

/// One read of an open file into the vault from its start, up to the size in
/// `before`: (content, bytes read). Sets `node.extents` for a sparse file.
/// `count`: add what is read to the counters' `bytes_read`.
fn read_once(
    ctx: &Ctx,
    f: &File,
    path: &Path,
    before: &std::fs::Metadata,
    attempt: usize,
    count: bool,
    node: &mut Node,
) -> Result<(Vec<Id>, u64)> {
    use std::io::{Seek, SeekFrom};
    let on_chunk = |n: u64| {
        if count {
            ctx.counters.bytes_read.fetch_add(n, Ordering::Relaxed);
        }
    };
    let size = before.size();
    let sparse = before.blocks() * 512 < size && size > 0;
    node.extents = None;
    if sparse {
        let extents =
            data_extents(f, size).map_err(|e| FilesError::io("find holes in", path, e))?;
        let r = ExtentReader {
            f,
            extents: &extents,
            i: 0,
            done_in_extent: 0,
        };
        let out = save(ctx, r, size, on_chunk)?;
        node.extents = Some(extents);
        Ok(out)
    } else {
        if attempt > 0 {
            let mut h = f;
            h.seek(SeekFrom::Start(0))
                .map_err(|e| FilesError::io("seek", path, e))?;
        }
        Ok(save(ctx, f.take(size), size, on_chunk)?)
    }
}
