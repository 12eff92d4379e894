//! What is already in the target: whether an entry on disk equals the
//! point's (`--overwrite if-changed`), what to do with each entry, and
//! `--delete` of what the point does not have.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;

use lifeboat_vault::tree::{Node, NodeKind};
use rustix::fs::FileType;

use super::fsops::{self, Dirs, cname};
use super::plan::{Plan, TARGET};
use super::write::{DONE, Run};
use super::{Action, Decision, Overwrite, RestoreReport, Structure};

/// Whether what is on disk equals the point's entry (for `if-changed`).
fn equal(st: &rustix::fs::Stat, n: &Node, dir: std::os::fd::BorrowedFd<'_>, name: &[u8]) -> bool {
    let ft = fsops::file_type(st);
    match n.kind {
        NodeKind::File => {
            ft == FileType::RegularFile
                && st.st_size as u64 == n.size
                && st
                    .st_mtime
                    .saturating_mul(1_000_000_000)
                    .saturating_add(st.st_mtime_nsec as i64)
                    == n.mtime_ns
        }
        NodeKind::Symlink => {
            ft == FileType::Symlink
                && cname(name)
                    .ok()
                    .and_then(|c| rustix::fs::readlinkat(dir, &c, Vec::new()).ok())
                    .map(|t| Some(t.into_bytes()) == n.target_bytes())
                    .unwrap_or(false)
        }
        NodeKind::Fifo => ft == FileType::Fifo,
        NodeKind::Chardev => ft == FileType::CharacterDevice && st.st_rdev == n.rdev,
        NodeKind::Blockdev => ft == FileType::BlockDevice && st.st_rdev == n.rdev,
        NodeKind::Dir | NodeKind::Socket => false,
    }
}

/// Decides what to do with non-directory entry `i`.
pub(super) fn decide(
    plan: &Plan,
    dirs: &Dirs,
    s: &Structure,
    empty: bool,
    policy: Overwrite,
    i: u32,
) -> std::io::Result<Decision> {
    let e = &plan.entries[i as usize];
    let parent_fresh = if e.parent == TARGET {
        empty
    } else {
        s.fresh[e.parent as usize]
    };
    if parent_fresh {
        return Ok(Decision::Create);
    }
    let h = dirs.get(plan, e.parent)?;
    let name = cname(&e.name)?;
    let Some(st) = fsops::stat_at(h.as_fd(), &name)? else {
        return Ok(Decision::Create);
    };
    if fsops::file_type(&st) == FileType::Directory {
        return Err(std::io::Error::other(
            "a directory is there on disk; not replaced (move it away, then restore again)",
        ));
    }
    Ok(match policy {
        Overwrite::Never => Decision::Keep,
        Overwrite::Always => Decision::Replace,
        Overwrite::IfChanged if equal(&st, &e.node, h.as_fd(), &e.name) => Decision::Keep,
        Overwrite::IfChanged => Decision::Replace,
    })
}

/// `--delete`: removes (or, in a dry run, lists) what is on disk and not in
/// the point, in restored directories at or below a backed-up path. A
/// directory whose tree cannot be read is unknown, not empty: nothing below it
/// is removed, and it is named in `rep.not_deleted`.
#[allow(clippy::too_many_arguments)]
pub(super) fn delete(
    run: &Run,
    s: &Structure,
    roots: &[String],
    whole: bool,
    empty: bool,
    dry_run: bool,
    rep: &mut RestoreReport,
) {
    let plan = run.plan;
    let mut names: HashMap<u32, HashSet<&[u8]>> = HashMap::new();
    for e in &plan.entries {
        names.entry(e.parent).or_default().insert(&e.name);
    }
    for (parent, name, _) in &plan.problems {
        names.entry(*parent).or_default().insert(name);
    }
    for (parent, name) in &plan.spared {
        names.entry(*parent).or_default().insert(name);
    }
    let mut dirs: Vec<u32> = plan
        .entries
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            e.node.kind == NodeKind::Dir
                && e.deletable
                && !s.fresh[*i]
                && run.state(*i as u32) == DONE
        })
        .map(|(i, _)| i as u32)
        .collect();
    if whole && !empty && roots.iter().any(|r| r == "/") {
        dirs.insert(0, TARGET);
    }
    dirs.retain(|d| {
        let unknown = plan.unknown.contains(d);
        if unknown {
            let p = plan.problem_path(run.to, *d, b"").display().to_string();
            rep.not_deleted.push(p);
        }
        !unknown
    });
    let none = HashSet::new();
    for d in dirs {
        let keep = names.get(&d).unwrap_or(&none);
        let r = run.dirs.get(plan, d).and_then(|h| {
            for name in fsops::list(h.as_fd())? {
                if keep.contains(name.as_slice()) || fsops::is_temp(&name) {
                    continue;
                }
                let p = plan.problem_path(run.to, d, &name).display().to_string();
                if dry_run {
                    rep.actions.push(Action {
                        action: "delete",
                        path: p,
                        kind: None,
                    });
                    continue;
                }
                match fsops::remove_tree(h.as_fd(), &cname(&name)?, 0) {
                    Ok(()) => rep.deleted += 1,
                    Err(e) => run
                        .errors
                        .lock()
                        .expect("lock")
                        .push(format!("delete {p}: {e}")),
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            let p = plan.problem_path(run.to, d, b"").display().to_string();
            run.errors
                .lock()
                .expect("lock")
                .push(format!("list {p} for --delete: {e}"));
        }
    }
}
