//! A drill's last step: the scratch stack stopped and removed; and the
//! scratch stacks of drills that never reached it (killed, crashed, the host
//! lost power) torn down by the next drill in their site.
//!
//! A running drill holds `SCRATCH/locks/drill.lock` (flock) from before its
//! scratch stack exists until it is torn down: a scratch directory whose
//! lock nobody holds belongs to a drill that is gone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::state::StackState;
use lifeboat_config::Config;

/// How old a scratch directory must be before a sweep may judge it by its
/// lock: a drill makes its directory and takes its lock one after the other.
const YOUNGEST_SWEPT: Duration = Duration::from_secs(60);

/// The lock a drill holds on its scratch stack for as long as it runs.
pub(super) fn hold(
    scratch: &Path,
    stack: &str,
    site: &str,
) -> crate::Result<lifeboat_control::locks::Held> {
    crate::stack::lock_file(&scratch.join("locks").join("drill.lock"), stack, site)
}

/// Stops and removes a scratch stack (whatever of it came up), its scratch
/// buckets on the site's endpoint included; says what could not be removed.
pub fn teardown(
    cfg: &Config,
    site: &str,
    scratch: &std::path::Path,
    stack: &str,
) -> (bool, Option<String>) {
    let mut failed = Vec::new();
    if let Ok(Some(mut state)) = StackState::read(scratch, stack) {
        for (_, m) in state.members.iter_mut().rev() {
            let _ = crate::stack::stop_member(m);
        }
        failed = crate::stack::purge_buckets(cfg, site, &state);
        crate::launch::unlink_sockets(&state);
    }
    if let Err(e) = std::fs::remove_dir_all(scratch) {
        failed.push(format!("{}: {e}", scratch.display()));
    } else {
        let _ = std::fs::remove_dir(scratch.parent().expect("drills/"));
    }
    match failed.is_empty() {
        true => (true, None),
        false => (false, Some(failed.join("; "))),
    }
}

/// Tears down the scratch stacks under `drills` (a site root's `drills/`)
/// whose drill is gone; says, for each, what was removed or what was not.
pub(super) fn sweep_abandoned(cfg: &Config, site: &str, drills: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(drills) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dir in entries.flatten().map(|e| e.path()) {
        let Some(stack) = abandoned(&dir) else {
            continue;
        };
        out.push(match teardown(cfg, site, &dir, &stack) {
            (true, _) => format!(
                "removed the scratch stack of an interrupted drill of `{stack}`: {}",
                dir.display()
            ),
            (false, e) => format!(
                "the scratch stack of an interrupted drill of `{stack}` was not removed whole: {}",
                e.unwrap_or_default()
            ),
        });
    }
    out
}

/// The stack of scratch directory `dir` (`STACK-TIME`) when its drill is
/// gone: old enough, and its lock free (taken here and let go at once).
fn abandoned(dir: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    let age = meta.modified().ok()?.elapsed().unwrap_or_default();
    if !meta.is_dir() || age < YOUNGEST_SWEPT {
        return None;
    }
    let name = dir.file_name()?.to_str()?;
    let (stack, time) = name.rsplit_once('-')?;
    if !time.ends_with('Z') || stack.is_empty() {
        return None;
    }
    let lock: PathBuf = dir.join("locks").join("drill.lock");
    match lifeboat_control::locks::try_lock(&lock) {
        Ok(Ok(_free)) => Some(stack.to_string()),
        _ => None,
    }
}
