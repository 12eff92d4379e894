//! Restoring a physical point: the files of its chain — the full point's
//! into an empty data directory, each incremental's into a private
//! directory beside it (blobs fetched pack by pack, in parallel, written in
//! place) — then `mariadb-backup --prepare` there and `--prepare
//! --incremental-dir` for each incremental in order. A failure removes what
//! was written; the incrementals' directories go in any case.

use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_vault::fetch::fetch_blobs;
use lifeboat_vault::tree::{Node, NodeKind};
use lifeboat_vault::{Id, Index, RecoveryPoint, Vault};
use serde::Serialize;

use super::{BACKUP_DIR, Lsn, tool};
use crate::error::{MysqlError, Result};
use crate::snapshot::{Coordinates, Counters};

/// Where and how to restore a physical point.
#[derive(Debug, Clone)]
pub struct PhysicalRestoreOptions {
    /// The data directory to make: empty or missing.
    pub datadir: PathBuf,
    /// The `mariadb-backup` program (for `--prepare`).
    pub tool: PathBuf,
}

/// What a physical restore did.
#[derive(Debug, Clone, Serialize)]
pub struct PhysicalRestoreReport {
    /// The point (full id).
    pub point: String,
    /// The chain restored, full ids: its full point first, `point` last (a
    /// full point alone for a full point).
    pub chain: Vec<String>,
    /// The data directory made.
    pub datadir: PathBuf,
    /// Files written (every link's).
    pub files: u64,
    /// Bytes written (every link's).
    pub bytes: u64,
    /// Seconds spent writing the files.
    pub extract_s: f64,
    /// Seconds `mariadb-backup --prepare` took (with each incremental's).
    pub prepare_s: f64,
    /// The server version the point was taken from.
    pub server_version: String,
    /// Binlog coordinates the data directory is consistent at.
    pub binlog: Option<Coordinates>,
    /// When the point's copy ended (server clock).
    pub consistent_at: DateTime<Utc>,
    /// The point's LSN range.
    pub lsn: Lsn,
}

/// The file a restore keeps in the data directory while it writes,
/// prepares or rolls it forward: a directory that still holds it was left
/// by a restore that was killed (neither the point nor the moment asked
/// for), though a server would start on it.
pub const INCOMPLETE: &str = "LIFEBOAT-RESTORE-INCOMPLETE";

/// Marks `datadir` as being restored (see [`INCOMPLETE`]).
pub fn mark_incomplete(datadir: &Path) -> Result<()> {
    let p = datadir.join(INCOMPLETE);
    std::fs::write(
        &p,
        "lifeboat is restoring this data directory, or a restore of it was interrupted: \
         it holds neither the point nor the moment asked for. Do not start a server on it: \
         remove the directory and restore again.\n",
    )
    .map_err(|e| MysqlError::io("write", &p, e))
}

/// Removes the mark of [`mark_incomplete`]: the directory is whole.
pub fn mark_complete(datadir: &Path) -> Result<()> {
    let p = datadir.join(INCOMPLETE);
    std::fs::remove_file(&p).map_err(|e| MysqlError::io("remove", &p, e))
}

/// Removes what the restore wrote unless disarmed: the directory when the
/// restore made it, else everything in it.
struct Cleanup<'a> {
    dir: &'a Path,
    made: bool,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        remove_written(self.dir, self.made);
    }
}

/// Removes what a restore wrote into data directory `dir`: the directory
/// when the restore `made` it, else everything in it (it was empty).
pub fn remove_written(dir: &Path, made: bool) {
    if made {
        let _ = std::fs::remove_dir_all(dir);
    } else if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                _ => std::fs::remove_file(&p),
            };
        }
    }
}

/// Restores physical point `id` — with its chain, when it is incremental —
/// into `opts.datadir` and prepares it, so that `mariadbd --datadir DIR`
/// starts on it. `counters.bytes` counts the bytes written,
/// `chunks_total`/`chunks_done` the files. A broken chain is refused before
/// anything is written.
pub fn restore_physical(
    vault: &Vault,
    id: &Id,
    point: &RecoveryPoint,
    opts: &PhysicalRestoreOptions,
    counters: &Counters,
) -> Result<PhysicalRestoreReport> {
    let chain = super::chain::chain_of(vault, id, point)?;
    let dir = opts.datadir.as_path();
    let made = claim_dir(dir)?;
    let mut cleanup = Cleanup {
        dir,
        made,
        armed: true,
    };
    let fail = |cause: MysqlError| MysqlError::RestoreRemoved {
        datadir: dir.to_path_buf(),
        cause: Box::new(cause),
    };
    mark_incomplete(dir).map_err(fail)?;
    let started = Instant::now();
    let index = vault.load_index()?;
    let incs = incremental_dirs(dir, chain.len() - 1).map_err(fail)?;
    let mut files = Vec::new();
    for (i, (pid, p, _)) in chain.iter().enumerate() {
        let at = if i == 0 { dir } else { &incs.1[i - 1] };
        files.extend(lay_out(vault, &index, pid, p, at).map_err(fail)?);
    }
    counters
        .chunks_total
        .store(files.len() as u64, Ordering::Relaxed);
    let bytes = write_contents(vault, &index, &files, counters).map_err(fail)?;
    let extract_s = started.elapsed().as_secs_f64();
    let logs = super::private_tempdir("lifeboat-prepare-", None).map_err(fail)?;
    let prepared = Instant::now();
    tool::prepare(&opts.tool, dir, None, &logs.path().join("prepare.log")).map_err(fail)?;
    for (i, inc) in incs.1.iter().enumerate() {
        let log = logs
            .path()
            .join(format!("prepare-incremental-{}.log", i + 1));
        tool::prepare(&opts.tool, dir, Some(inc), &log).map_err(fail)?;
    }
    drop(incs);
    mark_complete(dir).map_err(fail)?;
    cleanup.armed = false;
    let (_, _, meta) = chain.last().expect("a chain has a tip").clone();
    Ok(PhysicalRestoreReport {
        point: id.to_hex(),
        chain: chain.iter().map(|(i, _, _)| i.to_hex()).collect(),
        datadir: dir.to_path_buf(),
        files: files.len() as u64,
        bytes,
        extract_s,
        prepare_s: prepared.elapsed().as_secs_f64(),
        server_version: meta.server.version,
        binlog: meta.binlog,
        consistent_at: meta.consistent_at,
        lsn: meta.lsn,
    })
}

/// `n` empty private (0700) directories for the incrementals of a chain,
/// in one temporary directory beside `datadir` (on its file system, which
/// has room for the data) — or in the system's temporary directory when
/// that cannot be made; removed when dropped.
fn incremental_dirs(datadir: &Path, n: usize) -> Result<(Option<tempfile::TempDir>, Vec<PathBuf>)> {
    if n == 0 {
        return Ok((None, Vec::new()));
    }
    let prefix = ".lifeboat-incremental-";
    let beside = datadir.parent().filter(|p| !p.as_os_str().is_empty());
    let top = match beside.map(|p| super::private_tempdir(prefix, Some(p))) {
        Some(Ok(t)) => t,
        _ => super::private_tempdir(prefix, None)?,
    };
    let mut dirs = Vec::new();
    for i in 1..=n {
        let d = top.path().join(format!("incremental-{i}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&d)
            .map_err(|e| MysqlError::io("create", &d, e))?;
        dirs.push(d);
    }
    Ok((Some(top), dirs))
}

/// Makes sure `dir` is an empty directory (making it when missing, with its
/// parents); returns whether it was made.
fn claim_dir(dir: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
                .map_err(|e| MysqlError::io("create", dir, e))?;
            Ok(true)
        }
        Err(e) => Err(MysqlError::io("read", dir, e)),
        Ok(m) if !m.is_dir() => Err(MysqlError::Usage(format!(
            "{} is not a directory: a physical restore makes a data directory there; give an empty or new directory",
            dir.display()
        ))),
        Ok(_) => {
            let n = std::fs::read_dir(dir)
                .map_err(|e| MysqlError::io("read", dir, e))?
                .count();
            if dir.join(INCOMPLETE).exists() {
                return Err(MysqlError::Usage(format!(
                    "{} holds a restore that was interrupted ({INCOMPLETE} is in it): neither the point nor the moment asked for; remove the directory (rm -rf {}) and restore again",
                    dir.display(),
                    dir.display()
                )));
            }
            if n > 0 {
                return Err(MysqlError::Usage(format!(
                    "{} is not empty ({n} entries): a physical restore writes a whole data directory and never into one in use; give an empty or new directory",
                    dir.display()
                )));
            }
            Ok(false)
        }
    }
}

/// One file to write.
struct ToWrite {
    /// The point it is of.
    point: Id,
    path: PathBuf,
    node: Node,
}

/// Makes the directories and the (empty, sized) files of the point; returns the files.
fn lay_out(
    vault: &Vault,
    index: &Index,
    id: &Id,
    point: &RecoveryPoint,
    dir: &Path,
) -> Result<Vec<ToWrite>> {
    let root = vault.read_tree(index, &point.tree)?;
    let top = root
        .find(BACKUP_DIR.as_bytes())
        .and_then(|n| n.subtree)
        .ok_or_else(|| MysqlError::BadPoint {
            point: id.short(),
            reason: format!("its tree has no `{BACKUP_DIR}`: not a physical point"),
        })?;
    let mut files = Vec::new();
    let mut todo = vec![(top, dir.to_path_buf())];
    while let Some((tree_id, at)) = todo.pop() {
        for n in vault.read_tree(index, &tree_id)?.nodes {
            let name = n.name_bytes();
            let name = std::str::from_utf8(&name)
                .ok()
                .filter(|s| super::mbstream::components(s).is_some_and(|c| c.len() == 1))
                .ok_or_else(|| MysqlError::BadPoint {
                    point: id.short(),
                    reason: format!("a file name it holds is not usable: {:?}", n.name),
                })?;
            let path = at.join(name);
            match (n.kind, n.subtree) {
                (NodeKind::Dir, Some(sub)) => {
                    std::fs::DirBuilder::new()
                        .mode(0o750)
                        .create(&path)
                        .map_err(|e| MysqlError::io("create", &path, e))?;
                    todo.push((sub, path));
                }
                (NodeKind::File, _) => {
                    let stored: u64 = n
                        .content
                        .iter()
                        .map(|b| index.get(b).map(|l| l.entry.raw_length as u64).unwrap_or(0))
                        .sum();
                    if stored != n.size {
                        return Err(MysqlError::BadPoint {
                            point: id.short(),
                            reason: format!(
                                "{}: the vault's index holds {stored} of its {} bytes (missing blobs: run `lifeboat vault check`)",
                                path.display(),
                                n.size
                            ),
                        });
                    }
                    let f = create(&path)?;
                    f.set_len(n.size)
                        .map_err(|e| MysqlError::io("size", &path, e))?;
                    files.push(ToWrite {
                        point: *id,
                        path,
                        node: n,
                    });
                }
                _ => {
                    return Err(MysqlError::BadPoint {
                        point: id.short(),
                        reason: format!("{} is neither a file nor a directory", path.display()),
                    });
                }
            }
        }
    }
    Ok(files)
}

fn create(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| MysqlError::io("create", path, e))
}

/// Fetches every blob once and writes it where it belongs; the first
/// failure (a damaged blob, a full disk) is returned once all reads ended.
fn write_contents(
    vault: &Vault,
    index: &Index,
    files: &[ToWrite],
    counters: &Counters,
) -> Result<u64> {
    let mut wanted: Vec<(Id, (usize, u64))> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let mut off = 0;
        for b in &f.node.content {
            wanted.push((*b, (i, off)));
            off += index.get(b).map(|l| l.entry.raw_length as u64).unwrap_or(0);
        }
    }
    let failure: Mutex<Option<MysqlError>> = Mutex::new(None);
    let failed = || failure.lock().expect("lock").is_some();
    fetch_blobs(vault, index, wanted, |&(i, off), r| {
        if failed() {
            return;
        }
        let f = &files[i];
        let res = match r {
            Err(e) => Err(MysqlError::BadPoint {
                point: f.point.short(),
                reason: format!(
                    "cannot read {} from the vault: {e} (run `lifeboat vault check --read-data`)",
                    f.path.display()
                ),
            }),
            Ok(data) => std::fs::OpenOptions::new()
                .write(true)
                .open(&f.path)
                .and_then(|h| h.write_all_at(data, off))
                .map(|()| {
                    counters
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                })
                .map_err(|e| MysqlError::io("write", &f.path, e)),
        };
        if let Err(e) = res {
            failure.lock().expect("lock").get_or_insert(e);
        }
    });
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e);
    }
    counters
        .chunks_done
        .store(files.len() as u64, Ordering::Relaxed);
    Ok(files.iter().map(|f| f.node.size).sum())
}
