//! A database's binlog archive in tests: `lifeboat archive mysql` started in
//! the background, and what the vault then says through `points list
//! --json`: how far it can restore a resource (its newest restorable
//! second), and waiting until the archive or a copy has brought it that far.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::Cli;
use crate::procs::Bg;
use crate::wait::wait_until;

/// `lifeboat archive mysql --dsn DSN EXTRA --spool DIR/spool` of `c`'s
/// vault, running in the background (its errors in `DIR/archive.err`).
pub fn start_archive(c: &Cli, dsn: &str, dir: &Path, extra: &[&str]) -> Bg {
    Bg(c.command(&["archive", "mysql", "--dsn", dsn])
        .args(extra)
        .arg("--spool")
        .arg(dir.join("spool"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("archive.err")).unwrap())
        .spawn()
        .unwrap())
}

/// The newest time the points in `list` (the JSON of `points list`) can
/// restore `resource` to (any resource's when `None`).
pub fn reach(list: &Value, resource: Option<&str>) -> Option<DateTime<Utc>> {
    list.as_array()?
        .iter()
        .filter(|p| resource.is_none_or(|r| p["resource"] == r))
        .filter_map(|p| p["resource_windows"].as_array())
        .flatten()
        .filter_map(|w| w["to"].as_str()?.parse().ok())
        .max()
}

/// The newest time the vault (`c`'s) can restore `resource` to (any
/// resource's when `None`).
pub fn restorable_to(c: &Cli, resource: Option<&str>) -> Option<DateTime<Utc>> {
    reach(&c.json(&["points", "list"]), resource)
}

/// Waits (polling every 200 ms, for at most `within`) until the vault
/// (`c`'s) can restore `resource` (any, when `None`) to `want`: its archive
/// or copy holds the commits up to then. Past `within`, panics with
/// `what()`, the reach and the vault's points.
pub fn wait_restorable(
    c: &Cli,
    resource: Option<&str>,
    want: impl Into<DateTime<Utc>>,
    within: Duration,
    what: impl Fn() -> String,
) {
    let want = want.into();
    wait_until(within, Duration::from_millis(200), || {
        let list = c.json(&["points", "list"]);
        match reach(&list, resource) {
            Some(t) if t >= want => Ok(()),
            t => Err(format!(
                "{}: never restorable to {want} (reach {t:?}); points: {list:#}",
                what()
            )),
        }
    })
}
