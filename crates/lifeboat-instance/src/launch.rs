//! Resolving a launch spec for a restore's target directory.
//!
//! Two steps on every string (command, arguments, cwd, env values, port,
//! health URL, timeout):
//! 1. **re-root**: a value that is an absolute path inside a backed-up path
//!    or volume — the whole value, or what follows the first `=` of an
//!    argument such as `--config=/opt/app/app.toml` — is moved under the
//!    target: `/opt/unishop/unishop` → `DIR/opt/unishop/unishop`;
//! 2. **fill**: `${NAME}` becomes the value given with `--env NAME=VALUE`.
//!    Every missing name is reported at once, with where it is used.
//!
//! The values filled in are never re-rooted (they describe the target site).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::{DEFAULT_HEALTH_TIMEOUT, LaunchSpec, parse_duration, placeholders};
use crate::{InstanceError, Result};

/// File name of the resolved launch spec in a restore's target.
pub const LAUNCH_JSON: &str = "launch.json";

/// A launch spec ready to run at a target (written to `DIR/launch.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedLaunch {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Environment added to the inherited one.
    pub env: BTreeMap<String, String>,
    /// Listen port, when the spec gives one.
    pub port: Option<String>,
    /// Health URL.
    pub health: Option<String>,
    /// Seconds a start may take to become healthy.
    pub health_timeout_s: f64,
    /// Database resources the application needs.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Bucket resources the application needs.
    #[serde(default)]
    pub buckets: Vec<String>,
    /// The restore's target directory.
    pub root: String,
    /// The point restored.
    pub point: String,
    /// Its resource.
    pub resource: String,
}

/// Moves `s` under `to` when it is an absolute path inside one of `roots`.
pub fn reroot(s: &str, roots: &[PathBuf], to: &Path) -> String {
    reroot_moved(s, roots, to, &[])
}

/// As [`reroot`], but a volume restored onto a device (`moved`: volume
/// path as backed up → device) becomes that device's path.
fn reroot_moved(s: &str, roots: &[PathBuf], to: &Path, moved: &[(PathBuf, PathBuf)]) -> String {
    let place = |v: &str| -> Option<String> {
        let p = Path::new(v);
        if let Some((_, dev)) = moved.iter().find(|(vol, _)| p == vol) {
            return Some(dev.display().to_string());
        }
        (p.is_absolute() && roots.iter().any(|r| p.starts_with(r)))
            .then(|| to.join(v.trim_start_matches('/')).display().to_string())
    };
    if let Some(x) = place(s) {
        return x;
    }
    if let Some((k, v)) = s.split_once('=')
        && let Some(x) = place(v)
    {
        return format!("{k}={x}");
    }
    s.to_string()
}

/// Replaces every `${NAME}` of `s` by its value (all names must have one).
fn fill(s: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').expect("checked");
        out.push_str(&values[&after[..end]]);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Resolves `spec` for target `to`; `roots` are the point's backed-up
/// paths and volumes, `moved` the volumes restored onto devices (volume →
/// device), `values` the `--env` values.
pub fn resolve(
    spec: &LaunchSpec,
    roots: &[PathBuf],
    moved: &[(PathBuf, PathBuf)],
    to: &Path,
    values: &BTreeMap<String, String>,
    point: &str,
    resource: &str,
) -> Result<ResolvedLaunch> {
    let mut missing: Vec<String> = Vec::new();
    for (at, s) in spec.strings() {
        let names = placeholders(s).map_err(|e| InstanceError::Usage(format!("{at}: {e}")))?;
        for n in names {
            if !values.contains_key(&n) {
                let m = format!("{n} (used in {at})");
                if !missing.iter().any(|x| x.starts_with(&format!("{n} "))) {
                    missing.push(m);
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(InstanceError::MissingValues(missing));
    }
    let r = |s: &str| fill(&reroot_moved(s, roots, to, moved), values);
    let timeout = match &spec.health_timeout {
        Some(t) => parse_duration(&fill(t, values))
            .map_err(|e| InstanceError::Usage(format!("launch.health_timeout: {e}")))?,
        None => DEFAULT_HEALTH_TIMEOUT,
    };
    Ok(ResolvedLaunch {
        command: spec.command.iter().map(|c| r(c)).collect(),
        cwd: spec.cwd.as_deref().map(r),
        env: spec.env.iter().map(|(k, v)| (k.clone(), r(v))).collect(),
        port: spec.port.as_deref().map(|p| fill(p, values)),
        health: spec.health.as_deref().map(|h| fill(h, values)),
        health_timeout_s: timeout.as_secs_f64(),
        databases: spec.databases.clone(),
        buckets: spec.buckets.clone(),
        root: to.display().to_string(),
        point: point.to_string(),
        resource: resource.to_string(),
    })
}

/// Writes `DIR/launch.json` (mode 0600: it may hold a DSN with a password),
/// through a temporary name, synced.
pub fn write(dir: &Path, l: &ResolvedLaunch) -> Result<PathBuf> {
    let path = dir.join(LAUNCH_JSON);
    let tmp = dir.join(format!(".{LAUNCH_JSON}.tmp"));
    let mut json = serde_json::to_vec_pretty(l).expect("launch serializes");
    json.push(b'\n');
    write_private(&path, &tmp, &json).map_err(|(op, at, e)| InstanceError::io(op, &at, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}

/// Writes `bytes` to `path` privately: into `tmp` (mode 0600, created new,
/// never through a link), synced, then renamed over `path`. A failure names
/// its step (`create`, `write`, `rename into place`) and the path it was at.
pub fn write_private(
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
) -> std::result::Result<(), (&'static str, PathBuf, std::io::Error)> {
    let _ = std::fs::remove_file(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(tmp)
        .map_err(|e| ("create", tmp.to_path_buf(), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| ("write", tmp.to_path_buf(), e))?;
    std::fs::rename(tmp, path).map_err(|e| ("rename into place", path.to_path_buf(), e))
}

/// Reads `DIR/launch.json`.
pub fn read(dir: &Path) -> Result<ResolvedLaunch> {
    let path = dir.join(LAUNCH_JSON);
    let text = std::fs::read(&path).map_err(|e| InstanceError::io("read", &path, e))?;
    serde_json::from_slice(&text).map_err(|e| {
        InstanceError::Usage(format!(
            "{} is not a launch spec written by `lifeboat restore instance`: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            command: vec![
                "/opt/shop/shop".into(),
                "serve".into(),
                "--config=/opt/shop/shop.toml".into(),
                "/usr/bin/env".into(),
            ],
            cwd: Some("/opt/shop".into()),
            env: [
                ("DB".to_string(), "${DATABASE_URL}".to_string()),
                ("LISTEN".to_string(), "127.0.0.1:${PORT}".to_string()),
            ]
            .into(),
            health: Some("http://127.0.0.1:${PORT}/health".into()),
            ..LaunchSpec::default()
        }
    }

    #[test]
    fn paths_inside_the_point_are_rerooted_and_placeholders_filled() {
        let roots = vec![PathBuf::from("/opt/shop")];
        let values: BTreeMap<String, String> = [
            ("DATABASE_URL".to_string(), "mysql://b/shop".to_string()),
            ("PORT".to_string(), "8081".to_string()),
        ]
        .into();
        let l = resolve(&spec(), &roots, &[], Path::new("/r"), &values, "p", "res").unwrap();
        assert_eq!(
            l.command,
            vec![
                "/r/opt/shop/shop",
                "serve",
                "--config=/r/opt/shop/shop.toml",
                "/usr/bin/env"
            ]
        );
        assert_eq!(l.cwd.as_deref(), Some("/r/opt/shop"));
        assert_eq!(l.env["DB"], "mysql://b/shop");
        assert_eq!(l.env["LISTEN"], "127.0.0.1:8081");
        assert_eq!(l.health.as_deref(), Some("http://127.0.0.1:8081/health"));
        assert_eq!(l.health_timeout_s, 30.0);
    }

    #[test]
    fn a_missing_value_is_named_with_where_it_is_used() {
        let values: BTreeMap<String, String> = [("PORT".to_string(), "1".to_string())].into();
        let e = resolve(&spec(), &[], &[], Path::new("/r"), &values, "p", "r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("DATABASE_URL (used in launch.env.DB)"), "{e}");
        assert!(!e.contains("PORT"), "{e}");
        assert!(e.contains("--env"), "{e}");
    }
}
