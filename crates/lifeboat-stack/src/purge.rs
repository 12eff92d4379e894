//! What `stack down --purge` may remove: only what Lifeboat made itself
//! (recorded in the stack's state), never a replication destination.

use std::path::{Path, PathBuf};

use lifeboat_config::{Config, ResourceKind, Stack};

use crate::state::StackState;

/// The replication rule whose destination is `dir`, inside it, or holds it
/// (a live replica): never a restore's target, never purged.
pub fn replication_destination<'c>(cfg: &'c Config, dir: &Path) -> Option<&'c str> {
    cfg.replications
        .values()
        .find(|r| {
            let p = Path::new(r.to.strip_prefix("file://").unwrap_or(&r.to));
            p.is_absolute() && (p.starts_with(dir) || dir.starts_with(p))
        })
        .map(|r| r.to.as_str())
}

/// The directories `down --purge` removes: those the stack's members made
/// under the site's root (recorded in its state), and the usual directory
/// of a declared member that never got into the state (not a bucket's: it
/// may be someone's) — never a borrowed one, one it found there, or a
/// replication destination.
pub(crate) fn purgeable(cfg: &Config, s: &Stack, root: &Path, state: &StackState) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = state
        .members
        .iter()
        .filter(|(_, m)| !m.borrowed && m.provisioned != Some(false))
        .map(|(_, m)| m.dir.clone())
        .collect();
    for name in s.members.iter().filter(|n| state.member(n).is_none()) {
        if let Some(r) = cfg.resources.get(name)
            && !matches!(r.kind, ResourceKind::Bucket { .. })
        {
            dirs.push(crate::stack::member_dir(root, &r.kind, name));
        }
    }
    let kept: Vec<&PathBuf> = state
        .members
        .iter()
        .filter(|(_, m)| m.borrowed || m.provisioned == Some(false))
        .map(|(_, m)| &m.dir)
        .collect();
    dirs.retain(|d| {
        d.starts_with(root)
            && !kept.iter().any(|k| k.starts_with(d) || d.starts_with(k))
            && replication_destination(cfg, d).is_none()
    });
    dirs
}
