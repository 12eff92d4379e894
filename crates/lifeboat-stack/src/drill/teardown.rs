//! A drill's last step: the scratch stack stopped and removed; and the
//! scratch stacks of drills that never reached it (killed, crashed, the host
//! lost power) torn down by the next drill in their site.
//!
//! A running drill holds `SCRATCH/locks/drill.lock` (flock) from before its
//! scratch stack exists until it is torn down: a scratch directory whose
//! lock nobody holds belongs to a drill that is gone.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::state::StackState;
use lifeboat_config::Config;

/// How old a scratch directory must be before a sweep may judge it by its
/// lock: a drill makes its directory and takes its lock one after the other
/// (microseconds apart; seconds leave room for a machine under load).
const YOUNGEST_SWEPT: Duration = Duration::from_secs(10);

/// The lock a drill holds on its scratch stack for as long as it runs; its
/// `drills/` made private first, and refused when someone else may write
/// it (what is found there is torn down, its processes stopped).
pub(super) fn hold(
    scratch: &Path,
    stack: &str,
    site: &str,
) -> crate::Result<lifeboat_control::locks::Held> {
    let drills = scratch.parent().expect("SITE_ROOT/drills/STACK-TIME");
    let root = drills.parent().expect("SITE_ROOT/drills");
    std::fs::create_dir_all(root).map_err(|e| crate::StackError::io("create", root, e))?;
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(drills)
        && e.kind() != std::io::ErrorKind::AlreadyExists
    {
        return Err(crate::StackError::io("create", drills, e));
    }
    if let Some(why) = not_ours(drills) {
        return Err(crate::StackError::Refused(format!(
            "{} {why}: a drill's scratch stacks must be private (they are torn down, their processes stopped); make it yours with mode 0700, or remove it",
            drills.display()
        )));
    }
    crate::stack::lock_file(&scratch.join("locks").join("drill.lock"), stack, site)
}

/// Why `path` is not this user's own private entry (a link, another
/// owner, others may write it); `None` when it is.
fn not_ours(path: &Path) -> Option<String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot be read ({e})")),
    };
    if meta.file_type().is_symlink() {
        return Some("is a symbolic link".into());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Some(format!("belongs to uid {}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "may be written by others (mode {:o})",
            meta.mode() & 0o777
        ));
    }
    None
}

/// Stops this user's processes that name scratch directory `scratch` on
/// their command line (a server the drill started but had not recorded
/// yet): SIGTERM, SIGKILL after 5 s. Says how many.
pub(crate) fn stop_strays(scratch: &Path) -> usize {
    let strays = processes_in(scratch);
    for p in &strays {
        stop(p);
    }
    strays.len()
}

/// SIGTERM to `p` (and its group, when it leads one), SIGKILL after 5 s.
fn stop(p: &crate::process::Proc) {
    use rustix::process::{Pid, Signal, kill_process};
    let Some(pid) = Pid::from_raw(p.pid) else {
        return;
    };
    if rustix::process::getpgid(Some(pid)).is_ok_and(|g| g == pid) {
        p.stop(Duration::from_secs(5));
    } else {
        // Not a group leader: the process alone.
        let _ = kill_process(pid, Signal::TERM);
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while p.alive() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        if p.alive() {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}

/// This user's processes whose command line names a path under `dir` (a
/// server's `--datadir`), known by pid and start time. (Never by working
/// directory alone: an operator's shell may stand there.)
fn processes_in(dir: &Path) -> Vec<crate::process::Proc> {
    let me = rustix::process::geteuid().as_raw();
    let needle = dir.as_os_str().as_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id() as i32;
    let mut out = Vec::new();
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let base = e.path();
        if pid == own || std::fs::metadata(&base).map(|m| m.uid()).ok() != Some(me) {
            continue;
        }
        let named = std::fs::read(base.join("cmdline"))
            .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle));
        if named && let Some(start_time) = lifeboat_instance::supervise::start_time(pid) {
            out.push(crate::process::Proc { pid, start_time });
        }
    }
    out
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
    // What came up before the stack's state recorded it.
    stop_strays(scratch);
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
    if not_ours(drills).is_some() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(drills) else {
        return Vec::new();
    };
    let mut out = stop_orphans(drills);
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
    if !meta.is_dir() || age < YOUNGEST_SWEPT || not_ours(dir).is_some() {
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

/// Stops this user's processes that name a scratch directory under
/// `drills` that is gone (a drill interrupted while it tore down, before
/// its stack's state recorded them); says so.
fn stop_orphans(drills: &Path) -> Vec<String> {
    let gone: Vec<_> = processes_in(drills)
        .into_iter()
        .filter(|p| {
            scratch_named_by(p.pid, drills).is_some_and(|d| std::fs::symlink_metadata(d).is_err())
        })
        .collect();
    for p in &gone {
        stop(p);
    }
    match gone.len() {
        0 => Vec::new(),
        n => vec![format!(
            "stopped {n} process(es) of an interrupted drill whose scratch stack under {} was already removed",
            drills.display()
        )],
    }
}

/// The scratch directory under `drills` that process `pid` names.
fn scratch_named_by(pid: i32, drills: &Path) -> Option<PathBuf> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let prefix = drills.as_os_str().as_bytes();
    let entry = |text: &[u8]| -> Option<PathBuf> {
        let at = text.windows(prefix.len()).position(|w| w == prefix)?;
        let rest = text[at + prefix.len()..].strip_prefix(b"/")?;
        let name = rest.split(|b| matches!(*b, b'/' | 0 | b' ')).next()?;
        (!name.is_empty()).then(|| drills.join(std::ffi::OsStr::from_bytes(name)))
    };
    entry(&std::fs::read(base.join("cmdline")).ok()?)
}
