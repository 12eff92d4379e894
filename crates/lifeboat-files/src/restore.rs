//! Restoring a recovery point (or a sub-path of it) into a directory.
//!
//! ```text
//! plan: walk the point's trees (one level at a time, trees read in parallel)
//!       → entries (parent, checked name, node); bad names, doubled names,
//!       unreadable trees and levels past MAX_DEPTH are named, not restored
//! target: absent or empty, or --overwrite always|if-changed|never (else refused)
//! directories, in plan order, each relative to its parent's handle:
//!       absent → mkdirat 0700; a directory → kept (stale temp names removed);
//!       a symlink or file where the point has a directory → replaced, never followed
//! decide per entry (parallel): create, replace, keep (never; if-changed and equal)
//! contents: fetch_blobs (every blob read once, pack by pack, in parallel) →
//!       write into a temporary name (O_EXCL|O_NOFOLLOW) at its offsets; after
//!       its last blob: [--verify re-read] → chown, chmod, xattrs, times through
//!       the file's handle → rename over the final name
//! empty files, fifos, devices: the same, created under a temporary name
//! hard links: linkat the first name of the inode to a temporary name → rename
//! symlinks: last of all, so nothing is written through one
//! --delete: names on disk the point does not have, in directories at or below
//!       a backed-up path, removed (never following a link); a directory whose
//!       tree cannot be read is unknown: nothing below it is removed
//! directories' metadata through their handles, deepest first
//! ```
//! A damaged blob or tree, or a local error (disk full, permission), costs
//! only what depends on it: the file on disk stays as it was, the temporary
//! name is removed, and it is named (damaged: exit 3; local error: exit 1).
//! A killed restore leaves each file complete under its name or absent (plus
//! temporary names, `.lifeboat-restore.*`, which the next restore removes).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use lifeboat_vault::tree::{Node, NodeKind};
use lifeboat_vault::{Id, Index, Vault};
use rayon::prelude::*;
use serde::Serialize;

use crate::{Counters, FilesError, Result};

mod directories;
mod existing;
mod fsops;
mod plan;
mod write;

use directories::{Structure, make_dirs};
use fsops::Dirs;
use plan::TARGET;
use write::{DONE, FAILED, KEPT, Run};

/// What to do with what is already in a non-empty target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Replace every entry of the point that exists.
    Always,
    /// Replace an entry unless it is equal to the point's: a file of the same
    /// size and modification time, a symlink with the same target, a fifo or
    /// device of the same type (resumes a killed restore cheaply).
    IfChanged,
    /// Keep what exists; add only what is missing.
    Never,
}

/// Where and what to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Target directory; the point's absolute paths are recreated below it.
    pub to: PathBuf,
    /// Restore only this path of the point (absolute, as backed up).
    pub path: Option<PathBuf>,
    /// Re-read and re-hash each file before it is renamed into place.
    pub verify: bool,
    /// Policy for existing content; `None` refuses a non-empty target.
    pub overwrite: Option<Overwrite>,
    /// Decide and report, write nothing.
    pub dry_run: bool,
    /// Remove what the point does not have, in directories at or below a
    /// backed-up path of the point (and below `path`).
    pub delete: bool,
    /// Absolute paths of the point (as backed up) that are not restored
    /// here (e.g. an instance volume written onto a block device instead).
    pub skip: Vec<PathBuf>,
    /// With `path` (a directory): restore it as `to` itself — its contents
    /// directly below `to`, not under its absolute path (a stack's files
    /// member, whose application is handed `to`).
    pub as_target: bool,
}

/// One thing a restore does (listed by a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// create, replace or delete.
    pub action: &'static str,
    /// The path below the target.
    pub path: String,
    /// What the point has there (for delete: what is on disk is removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<NodeKind>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// Regular files written (a hard-linked file counts once).
    pub files: u64,
    /// Further names of hard-linked files.
    pub hardlinks: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Fifos and devices.
    pub specials: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Entries on disk kept as they were (`--overwrite never`, or equal with `if-changed`).
    pub unchanged: u64,
    /// Names removed by `--delete`.
    pub deleted: u64,
    /// Directories `--delete` left alone because the point's tree of them
    /// cannot be read: what is below them on disk is kept (also in `damaged`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_deleted: Vec<String>,
    /// Content bytes written.
    pub bytes: u64,
    /// Content bytes the restore had to write.
    pub total_bytes: u64,
    /// What could not be restored because the point's data or trees are
    /// damaged or missing, or its names are invalid (exit 3).
    pub damaged: Vec<String>,
    /// Local errors (disk full, permission, …), each naming the path (exit 1).
    pub errors: Vec<String>,
    /// Other problems (metadata that could not be set, …).
    pub warnings: Vec<String>,
    /// Files verified before being renamed into place (with `verify`).
    pub verified: u64,
    /// Files whose verification failed (the old file, if any, is kept).
    pub verify_failed: Vec<String>,
    /// With `dry_run`: what would be done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
}

/// Finds the node at absolute `path` below the root tree.
pub(crate) fn find(vault: &Vault, index: &Index, root: &Id, path: &Path) -> Result<Option<Node>> {
    let mut cur = *root;
    let comps: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            _ => None,
        })
        .collect();
    let mut node = None;
    for (i, c) in comps.iter().enumerate() {
        let t = vault.read_tree(index, &cur)?;
        let Some(n) = t.find(c).cloned() else {
            return Ok(None);
        };
        if i + 1 < comps.len() {
            match n.subtree {
                Some(s) => cur = s,
                None => return Ok(None),
            }
        }
        node = Some(n);
    }
    Ok(node)
}

/// What to do with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Create,
    Replace,
    Keep,
}

fn target_is_empty(to: &Path) -> Result<bool> {
    match std::fs::read_dir(to) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(FilesError::io("read the target", to, e)),
    }
}

/// Opens the target (made first unless a dry run; none in a dry run into a
/// directory that does not exist) and removes old temporary names in it.
fn open_target(to: &Path, empty: bool, dry_run: bool) -> Result<Option<OwnedFd>> {
    let target: Option<OwnedFd> = if dry_run && !to.exists() {
        None
    } else {
        if !dry_run {
            std::fs::create_dir_all(to).map_err(|e| FilesError::io("create directory", to, e))?;
        }
        Some(
            std::fs::File::open(to)
                .map_err(|e| FilesError::io("open the target", to, e))?
                .into(),
        )
    };
    if let Some(t) = &target
        && !empty
        && !dry_run
        && let Err(e) = fsops::remove_stale_temps(t.as_fd())
    {
        return Err(FilesError::io("remove old temporary files in", to, e));
    }
    Ok(target)
}

/// One action of a dry run.
fn action(what: &'static str, path: String, kind: NodeKind) -> Action {
    Action {
        action: what,
        path,
        kind: Some(kind),
    }
}

/// The non-directory entries to write, by how they are written.
#[derive(Default)]
struct Batches {
    /// Files with contents.
    files: Vec<u32>,
    /// Empty files, fifos, devices.
    small: Vec<u32>,
    /// Further names of hard-linked files.
    links: Vec<u32>,
    symlinks: Vec<u32>,
}

/// How this restore treats what is already in the target.
#[derive(Clone, Copy)]
struct Target {
    /// The target was empty (or absent).
    empty: bool,
    policy: Overwrite,
    dry_run: bool,
}

impl Batches {
    /// Decides what to do with each non-directory entry (in parallel), keeps
    /// what stays, lists what a dry run would do and sorts the rest into
    /// batches.
    fn decide(run: &Run, s: &mut Structure, t: Target, rep: &mut RestoreReport) -> Batches {
        let plan = run.plan;
        let n = plan.entries.len() as u32;
        let decisions: Vec<Option<Decision>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let e = &plan.entries[i as usize];
                if e.node.kind == NodeKind::Dir {
                    return None;
                }
                if e.parent != TARGET && s.state[e.parent as usize] != DONE {
                    run.state[i as usize].store(FAILED, Ordering::Release);
                    return None;
                }
                match existing::decide(plan, run.dirs, s, t.empty, t.policy, i) {
                    Ok(d) => Some(d),
                    Err(err) => {
                        run.local(i, "replace", err);
                        None
                    }
                }
            })
            .collect();
        let mut b = Batches::default();
        for (i, d) in decisions.iter().enumerate() {
            let i = i as u32;
            let e = &plan.entries[i as usize];
            match d {
                None => {}
                Some(Decision::Keep) => {
                    run.state[i as usize].store(KEPT, Ordering::Release);
                    rep.unchanged += 1;
                }
                Some(d) => {
                    if t.dry_run {
                        let what = if *d == Decision::Create {
                            "create"
                        } else {
                            "replace"
                        };
                        s.actions.push(action(what, run.path(i), e.node.kind));
                    }
                    match e.node.kind {
                        NodeKind::File if e.link_to.is_some() => b.links.push(i),
                        NodeKind::File if e.node.content.is_empty() => b.small.push(i),
                        NodeKind::File => {
                            rep.total_bytes += e.node.size;
                            b.files.push(i)
                        }
                        NodeKind::Symlink => b.symlinks.push(i),
                        _ => b.small.push(i),
                    }
                }
            }
        }
        b
    }
}

/// Restores point `point_id` according to `opts`.
pub fn restore(
    vault: &Vault,
    point_id: &Id,
    opts: &RestoreOptions,
    counters: &Counters,
) -> Result<RestoreReport> {
    let index = vault.load_index()?;
    let point = vault.read_point(point_id)?;
    let select = opts
        .path
        .as_ref()
        .map(|p| std::path::absolute(Path::new("/").join(p)).unwrap_or_else(|_| p.clone()));
    let roots: Vec<PathBuf> = point.paths.iter().map(PathBuf::from).collect();
    let plan = plan::plan(
        vault,
        &index,
        &point.tree,
        select.as_deref(),
        &roots,
        &opts.skip,
        opts.as_target && select.is_some(),
    )?;
    let to = opts.to.as_path();
    let empty = target_is_empty(to)?;
    let policy = match (empty, opts.overwrite) {
        (_, Some(p)) => p,
        (true, None) => Overwrite::Always,
        (false, None) => return Err(FilesError::TargetNotEmpty(to.to_path_buf())),
    };
    let mut dirs = Dirs::new(open_target(to, empty, opts.dry_run)?, plan.entries.len());
    let mut rep = RestoreReport::default();
    for (parent, name, why) in &plan.problems {
        let p = plan.problem_path(to, *parent, name);
        rep.damaged.push(format!("{}: {why}", p.display()));
    }

    // 1. directories
    let mut s = make_dirs(&plan, &mut dirs, to, empty, policy, opts.dry_run);
    let dirs = dirs;
    let run = Run {
        plan: &plan,
        dirs: &dirs,
        to,
        run: rand_u32(),
        is_root: rustix::process::geteuid().is_root(),
        verify: opts.verify,
        counters,
        state: s.state.iter().map(|&x| AtomicU8::new(x)).collect(),
        damaged: Mutex::new(Vec::new()),
        errors: Mutex::new(std::mem::take(&mut s.errors)),
        warnings: Mutex::new(std::mem::take(&mut s.warnings)),
        verify_failed: Mutex::new(Vec::new()),
        abort: AtomicBool::new(false),
        not_written: AtomicU64::new(0),
    };

    // 2. decide
    let t = Target {
        empty,
        policy,
        dry_run: opts.dry_run,
    };
    let b = Batches::decide(&run, &mut s, t, &mut rep);
    counters.size.store(rep.total_bytes, Ordering::Relaxed);
    let whole = select.is_none();
    if opts.dry_run {
        let mut acts = std::mem::take(&mut s.actions);
        if opts.delete {
            existing::delete(&run, &s, &point.paths, whole, empty, true, &mut rep);
        }
        acts.append(&mut rep.actions);
        rep.actions = acts;
        return Ok(finish(run, rep));
    }

    // 3. empty files, fifos, devices
    write::specials(&run, &b.small);
    // 4. contents
    write::contents(&run, vault, &index, &b.files);
    // 5. hard links
    write::hard_links(&run, &b.links);
    // 6. symlinks, last: nothing is written through them
    write::symlinks(&run, &b.symlinks);
    // 7. --delete
    if opts.delete {
        existing::delete(&run, &s, &point.paths, whole, empty, false, &mut rep);
    }
    // 8. directories' metadata, deepest first
    directories::set_metadata(&run);
    Ok(finish(run, rep))
}

/// Counts what was done and fills the report.
fn finish(run: Run, mut rep: RestoreReport) -> RestoreReport {
    for (i, e) in run.plan.entries.iter().enumerate() {
        if run.state[i].load(Ordering::Acquire) != DONE {
            continue;
        }
        match e.node.kind {
            NodeKind::Dir => rep.dirs += 1,
            NodeKind::File if e.link_to.is_some() => rep.hardlinks += 1,
            NodeKind::File => {
                rep.files += 1;
                if run.verify && !e.node.content.is_empty() {
                    rep.verified += 1;
                }
            }
            NodeKind::Symlink => rep.symlinks += 1,
            _ => rep.specials += 1,
        }
    }
    rep.bytes = run.counters.bytes_written.load(Ordering::Relaxed);
    rep.damaged.extend(run.damaged.into_inner().expect("lock"));
    rep.damaged.sort();
    rep.errors = run.errors.into_inner().expect("lock");
    rep.errors.sort();
    let more = run.not_written.load(Ordering::Relaxed);
    if more > 0 {
        rep.errors.push(format!(
            "{more} more files were not written after the first local error"
        ));
    }
    rep.warnings = run.warnings.into_inner().expect("lock");
    rep.verify_failed = run.verify_failed.into_inner().expect("lock");
    rep
}

/// A random-enough run id for temporary names.
fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0);
    let x = t ^ ((std::process::id() as u64) << 32);
    (x ^ (x >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) as u32
}
