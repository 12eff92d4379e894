//! Where the API (and so the console) may restore: under `[server]
//! restore_roots`, by default `restores/` in the state directory and every
//! site's root. A target is judged by its real path: its longest existing
//! ancestor resolved (links, `/proc/self/root`, …), the rest appended; the
//! kernel's file systems (`/proc`, `/sys`, `/dev`) and `/` itself are never
//! a target, whatever the roots say.

use std::path::{Component, Path, PathBuf};

use axum::http::StatusCode;
use lifeboat_config::Config;

use crate::ApiError;

/// Never a restore target, whatever `restore_roots` says.
const KERNEL: &[&str] = &["/proc", "/sys", "/dev"];

/// The real path of `target` (absolute, without `..`): its longest existing
/// ancestor resolved, the components below it appended. A link that leads
/// nowhere on the way is an error (a restore would create its target
/// wherever it points).
pub fn resolve(target: &Path) -> Result<PathBuf, String> {
    let mut rest = Vec::new();
    let mut at = target;
    loop {
        match std::fs::symlink_metadata(at) {
            Ok(_) => {
                let real = std::fs::canonicalize(at)
                    .map_err(|e| format!("cannot resolve {}: {e}", at.display()))?;
                return Ok(rest.iter().rev().fold(real, |p, c| p.join(c)));
            }
            Err(_) => {
                let name = at
                    .file_name()
                    .ok_or_else(|| format!("{} has no existing ancestor", target.display()))?;
                rest.push(name.to_owned());
                at = at
                    .parent()
                    .ok_or_else(|| format!("{} has no existing ancestor", target.display()))?;
            }
        }
    }
}

/// The directories restores may go to (each resolved), and whether they
/// are the defaults.
pub fn roots(cfg: &Config, state: &Path) -> (Vec<PathBuf>, bool) {
    let (list, default) = match &cfg.server.restore_roots {
        Some(r) => (r.clone(), false),
        None => {
            let mut r = vec![default_root(state)];
            r.extend(cfg.sites.values().filter_map(|s| s.root.clone()));
            (r, true)
        }
    };
    let resolved = list
        .iter()
        .filter_map(|r| resolve(r).ok())
        .filter(|r| r.parent().is_some())
        .collect();
    (resolved, default)
}

/// The default restore root: `restores/` in the state directory.
pub fn default_root(state: &Path) -> PathBuf {
    state.join("restores")
}

fn forbidden(m: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, m)
}

/// `target`'s real path when the API may restore there; 403 (naming
/// `[server] restore_roots`) when it may not; 400 when it is not an
/// absolute path without `..`.
pub fn check(cfg: &Config, state: &Path, target: &Path) -> Result<PathBuf, ApiError> {
    if !target.is_absolute()
        || target
            .components()
            .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(ApiError::bad_request(format!(
            "the target {} must be an absolute path without `..`",
            target.display()
        )));
    }
    let real = resolve(target).map_err(|e| forbidden(format!("{e}: not restored there")))?;
    let shown = if real == target {
        format!("{}", target.display())
    } else {
        format!("{} (really {})", target.display(), real.display())
    };
    if real.parent().is_none() {
        return Err(forbidden(format!(
            "{shown} is the root directory: a restore never writes over the whole system"
        )));
    }
    if let Some(k) = KERNEL.iter().find(|k| real.starts_with(k)) {
        return Err(forbidden(format!(
            "{shown} is in {k}, a kernel file system: a restore never writes there"
        )));
    }
    let (roots, default) = roots(cfg, state);
    if roots.iter().any(|r| real.starts_with(r)) {
        return Ok(real);
    }
    Err(forbidden(format!(
        "{shown} is outside the directories the API may restore into ({}{}): \
         restore below one of them, add the directory to `[server] restore_roots` in the file, \
         or restore from the command line (`lifeboat restore …`)",
        if roots.is_empty() {
            "none".to_string()
        } else {
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        if default {
            "; the default: restores/ in the state directory and the sites' roots"
        } else {
            ""
        }
    )))
}

/// The local directory of a bucket address (`file:///path` or `/path`);
/// `None` for a bucket elsewhere (S3).
pub fn bucket_dir(address: &str) -> Option<PathBuf> {
    if let Some(p) = address.strip_prefix("file://") {
        return Some(PathBuf::from(p));
    }
    address.starts_with('/').then(|| PathBuf::from(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_judged_by_its_real_path() {
        let d = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(d.path()).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        assert_eq!(
            resolve(&d.path().join("link/a/b")).unwrap(),
            real.join("a/b")
        );
        assert_eq!(
            resolve(Path::new("/proc/self/root")).unwrap(),
            Path::new("/")
        );
        std::os::unix::fs::symlink("/nowhere/at/all", d.path().join("dangling")).unwrap();
        assert!(resolve(&d.path().join("dangling/x")).is_err());
    }
}
