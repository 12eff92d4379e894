//! The directories of a restore plan: made or kept parents first, each
//! relative to its parent's handle, and their metadata set deepest first.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use lifeboat_vault::tree::NodeKind;
use rustix::fs::FileType;

use super::fsops::{self, Dirs, cname};
use super::plan::{Plan, TARGET};
use super::write::{DONE, FAILED, KEPT, PENDING, Run};
use super::{Action, Overwrite, action};
use crate::meta;

/// The directories of the plan, parents first, each relative to its
/// parent's handle. Returns per entry whether this restore made it (`fresh`).
pub(super) struct Structure {
    pub fresh: Vec<bool>,
    pub state: Vec<u8>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub actions: Vec<Action>,
}

/// How this restore makes its directories.
struct DirMaking<'a> {
    plan: &'a Plan,
    to: &'a Path,
    policy: Overwrite,
    dry_run: bool,
}

/// Makes (or keeps) the plan's directories, parents first.
pub(super) fn make_dirs(
    plan: &Plan,
    dirs: &mut Dirs,
    to: &Path,
    empty: bool,
    policy: Overwrite,
    dry_run: bool,
) -> Structure {
    let n = plan.entries.len();
    let mut s = Structure {
        fresh: vec![false; n],
        state: vec![PENDING; n],
        errors: Vec::new(),
        warnings: Vec::new(),
        actions: Vec::new(),
    };
    let how = DirMaking {
        plan,
        to,
        policy,
        dry_run,
    };
    for i in 0..n as u32 {
        let e = &plan.entries[i as usize];
        if e.node.kind != NodeKind::Dir {
            continue;
        }
        if e.parent != TARGET && s.state[e.parent as usize] != DONE {
            s.state[i as usize] = FAILED; // named with its parent
            continue;
        }
        let parent_fresh = if e.parent == TARGET {
            empty
        } else {
            s.fresh[e.parent as usize]
        };
        match how.make_dir(dirs, &mut s, i, parent_fresh) {
            Ok(fd) => {
                let kept = fd.is_none() && !s.fresh[i as usize];
                s.state[i as usize] = if kept { KEPT } else { DONE };
                if let Some(fd) = fd {
                    dirs.keep(i, fd);
                }
            }
            Err(err) => {
                s.state[i as usize] = FAILED;
                let path = plan.path(to, i).display().to_string();
                s.errors.push(format!("create directory {path}: {err}"));
            }
        }
    }
    s
}

impl DirMaking<'_> {
    /// Makes directory entry `i` (or keeps the one on disk, or replaces what
    /// is not a directory) and opens it; `None` when there is nothing to open
    /// (a dry run, or a non-directory left as it is).
    fn make_dir(
        &self,
        dirs: &Dirs,
        s: &mut Structure,
        i: u32,
        parent_fresh: bool,
    ) -> std::io::Result<Option<OwnedFd>> {
        let (plan, dry_run) = (self.plan, self.dry_run);
        let e = &plan.entries[i as usize];
        let path = || plan.path(self.to, i).display().to_string();
        let name = cname(&e.name)?;
        let h = match dirs.get(plan, e.parent) {
            Ok(h) => Some(h),
            Err(_) if dry_run && parent_fresh => None,
            Err(err) => return Err(err),
        };
        let mut existing = false;
        if parent_fresh {
            if dry_run {
                s.fresh[i as usize] = true;
                s.actions.push(action("create", path(), e.node.kind));
                return Ok(None);
            }
        } else {
            let h = h.as_ref().expect("a parent that exists has a handle");
            match fsops::stat_at(h.as_fd(), &name)? {
                None if dry_run => {
                    s.fresh[i as usize] = true;
                    s.actions.push(action("create", path(), e.node.kind));
                    return Ok(None);
                }
                None => {}
                Some(st) if fsops::file_type(&st) == FileType::Directory => existing = true,
                Some(_) if self.policy == Overwrite::Never => {
                    s.warnings.push(format!(
                        "{} is not a directory on disk; left as it is (--overwrite never), nothing below it restored",
                        path()
                    ));
                    return Ok(None);
                }
                Some(_) if dry_run => {
                    s.fresh[i as usize] = true;
                    s.actions.push(action("replace", path(), e.node.kind));
                    return Ok(None);
                }
                // A symlink (or file) where the point has a directory is
                // replaced, never followed.
                Some(_) => fsops::unlink_at(h.as_fd(), &name)?,
            }
        }
        let h = h.expect("not a dry run");
        if !existing {
            fsops::mkdir_at(h.as_fd(), &name)?;
            s.fresh[i as usize] = true;
        }
        let fd = fsops::open_dir(h.as_fd(), &name)?;
        if existing
            && !dry_run
            && let Err(err) = fsops::remove_stale_temps(fd.as_fd())
        {
            s.warnings.push(format!(
                "cannot remove old temporary files in {}: {err}",
                path()
            ));
        }
        Ok(Some(fd))
    }
}

/// Sets the metadata of the directories this restore made, deepest first
/// (the plan is breadth first).
pub(super) fn set_metadata(run: &Run) {
    let (plan, dirs) = (run.plan, run.dirs);
    for i in (0..plan.entries.len() as u32).rev() {
        let e = &plan.entries[i as usize];
        if e.node.kind != NodeKind::Dir || !e.meta || run.state(i) != DONE {
            continue;
        }
        let w = match dirs.get(plan, i) {
            Ok(h) => meta::apply_fd(h.as_fd(), &e.node, run.is_root, &|| run.path(i)),
            Err(err) => vec![format!("set metadata of {}: {err}", run.path(i))],
        };
        run.warnings.lock().expect("lock").extend(w);
    }
}
