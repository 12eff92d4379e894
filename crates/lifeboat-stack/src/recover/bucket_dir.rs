//! A bucket member in a site of directories: its replica (a replication
//! rule's destination directory under the site's root) used in place, or
//! copied into a drill's own bucket, else its newest point restored into a
//! directory the recovery makes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Utc};
use lifeboat_config::{Config, ResourceKind};

use super::sources::{BucketSources, BucketWay, SiteVaults, restore_bucket_point};
use super::{Recovery, Source};
use crate::state::MemberState;
use crate::{Result, StackError};

/// Recovers bucket member `name` in a site of directories: its replica in
/// place when it is at least as new as its newest point (a drill copies it
/// into a bucket of its own), else the newest point restored into a
/// directory of the recovery's own. A replica is as of now: never used for
/// a recovery to an earlier time.
pub(crate) fn recover(
    r: &Recovery,
    vaults: &SiteVaults,
    name: &str,
) -> Result<(MemberState, Source)> {
    let site_root = r.cfg.sites.get(r.site).and_then(|s| s.root.clone());
    let found = replica(r.cfg, name, site_root.as_deref().unwrap_or(&r.root));
    let t = Instant::now();
    // Freshness by the newest object in each (a replica's objects are
    // written as they change; a point holds what was there when taken).
    let found = found.map(|(loc, _, rt)| (loc, rt));
    let scratch = r.opts.scratch.is_some();
    let (b, way) =
        BucketSources::choose(vaults.list(), name, r.opts.at, found, false, "", scratch)?;
    match way {
        BucketWay::CopyReplica => copy_replica(r, &b, name, t),
        BucketWay::InPlace => Ok(use_replica(r, &b, name, t)),
        BucketWay::RestorePoint => restore_point(r, &b, name, t),
    }
}

/// A drill reads the replica into a bucket of its own, never serves
/// production's in place (as on an S3 endpoint). The replica is only read:
/// opened without `create`, which would tidy its temporary files.
fn copy_replica(
    r: &Recovery,
    b: &BucketSources,
    name: &str,
    t: Instant,
) -> Result<(MemberState, Source)> {
    let (loc, rt) = b.replica.clone().expect("checked");
    let (m, _) = point_target(r.cfg, &r.root, r.own, name)?;
    let open = |a: &str, create: bool| {
        lifeboat_bucket::Bucket::open_address(a, create)
            .map_err(|e| StackError::Process(e.to_string()))
    };
    let n = crate::bucket::copy_all(&open(&loc, false)?, &open(&m.outputs["location"], true)?)?;
    r.step(
        "copy the bucket replica into the drill's bucket",
        Some(name),
        t,
    );
    let why = format!(
        "{}; its {n} objects copied into the drill's bucket (the replica is only read)",
        b.why_replica()
    );
    Ok((m, Source::replica(name, rt, why)))
}

/// The replica used in place: borrowed, never the stack's to purge.
fn use_replica(r: &Recovery, b: &BucketSources, name: &str, t: Instant) -> (MemberState, Source) {
    let (loc, rt) = b.replica.clone().expect("checked");
    let path = PathBuf::from(loc.strip_prefix("file://").unwrap_or(&loc));
    let mut outputs = BTreeMap::new();
    outputs.insert("location".into(), loc);
    outputs.insert("path".into(), path.display().to_string());
    r.step("use the bucket replica in place", Some(name), t);
    let m = MemberState {
        kind: "bucket".into(),
        dir: path,
        outputs,
        borrowed: true,
        provisioned: Some(false),
        ..Default::default()
    };
    (m, Source::replica(name, rt, b.why_replica()))
}

/// The newest point restored into a directory of the recovery's own.
fn restore_point(
    r: &Recovery,
    b: &BucketSources,
    name: &str,
    t: Instant,
) -> Result<(MemberState, Source)> {
    let Some((vn, v, id, p)) = &b.point else {
        return Err(b.nothing(name, r.opts.at));
    };
    let (m, note) = point_target(r.cfg, &r.root, r.own, name)?;
    let to = lifeboat_bucket::Bucket::parse(&m.outputs["location"])
        .map_err(|e| StackError::Process(e.to_string()))?;
    restore_bucket_point(v, id, p, to, true)?;
    r.step("restore the bucket point", Some(name), t);
    let mut why = b.why_point("");
    if let Some(n) = note {
        why = format!("{why}; {n}");
    }
    Ok((m, Source::point(name, "bucket", vn, id, Some(p.time), why)))
}

/// The moment through which the replicator says replica `dir` holds every
/// change of its source (`.lifeboat-replicated`), else the epoch.
fn caught_up(dir: &Path) -> DateTime<Utc> {
    let mark = dir.join(lifeboat_bucket::replicate::caught_up::CAUGHT_UP_KEY);
    std::fs::read_to_string(mark)
        .ok()
        .and_then(|t| lifeboat_bucket::replicate::caught_up::parse(&t))
        .unwrap_or_default()
}

/// Newest modification time of the files under `dir` (a directory bucket).
fn newest_mtime(dir: &Path) -> Option<DateTime<Utc>> {
    let mut best: Option<SystemTime> = None;
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0u64;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            // The replicator's fence and mark are no objects of the bucket.
            let name = e.file_name();
            if d == dir
                && (name == lifeboat_bucket::replicate::fence::FENCE_KEY
                    || name == lifeboat_bucket::replicate::caught_up::CAUGHT_UP_KEY)
            {
                continue;
            }
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                files += 1;
                if let Ok(t) = m.modified()
                    && best.is_none_or(|b| t > b)
                {
                    best = Some(t);
                }
            }
        }
    }
    (files > 0).then_some(())?;
    best.map(DateTime::<Utc>::from)
}

/// The replica of bucket `member` in `root` (a replication rule's
/// destination directory under the site's root), if it holds objects.
fn replica(cfg: &Config, member: &str, root: &Path) -> Option<(String, PathBuf, DateTime<Utc>)> {
    cfg.replications
        .values()
        .filter(|r| r.from == member)
        .find_map(|r| {
            let path = PathBuf::from(r.to.strip_prefix("file://").unwrap_or(&r.to));
            (path.is_absolute() && path.starts_with(root))
                .then(|| newest_mtime(&path).map(|t| (r.to.clone(), t.max(caught_up(&path)), path)))
                .flatten()
                .map(|(to, t, path)| (to, path, t))
        })
}

/// Where a bucket point is restored in a directory: the member's usual
/// directory (in the resource's own site, the one it declares) when it is
/// not there yet and no replication writes there; else a directory of its
/// own made now, `NAME.recovered-TIME` — never into a replica, never into
/// what it finds there (so `down --purge` removes exactly what it made).
/// Returns the member and, when it moved, why.
fn point_target(
    cfg: &Config,
    root: &Path,
    site: Option<&str>,
    name: &str,
) -> Result<(MemberState, Option<String>)> {
    let r = cfg.resources.get(name).expect("a member");
    let mut dir = root.join("buckets").join(name);
    if site.is_some()
        && r.site.as_deref() == site
        && let ResourceKind::Bucket { location } = &r.kind
        && let Some(path) = location.strip_prefix("file://")
    {
        dir = PathBuf::from(path);
    }
    let holds = |d: &Path| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some());
    let taken = match crate::purge::replication_destination(cfg, &dir) {
        Some(rule) => Some(format!("it is a replication destination ({rule})")),
        None if holds(&dir) => Some("it holds objects".to_string()),
        None => dir
            .exists()
            .then(|| "it was there before (not the recovery's own)".to_string()),
    };
    let mut note = None;
    if let Some(why) = taken {
        let own = root.join("buckets").join(format!(
            "{name}.recovered-{}",
            Utc::now().format("%Y%m%dT%H%M%S%3fZ")
        ));
        note = Some(format!(
            "restored into {}, a directory of its own: not into {} ({why})",
            own.display(),
            dir.display()
        ));
        dir = own;
    }
    let parent = dir.parent().expect("under the root");
    std::fs::create_dir_all(parent).map_err(|e| StackError::io("create", parent, e))?;
    std::fs::create_dir(&dir).map_err(|e| StackError::io("create", &dir, e))?;
    let mut outputs = BTreeMap::new();
    outputs.insert("location".into(), format!("file://{}", dir.display()));
    outputs.insert("path".into(), dir.display().to_string());
    Ok((
        MemberState {
            kind: "bucket".into(),
            borrowed: !dir.starts_with(root),
            provisioned: Some(true),
            dir,
            outputs,
            ..Default::default()
        },
        note,
    ))
}
