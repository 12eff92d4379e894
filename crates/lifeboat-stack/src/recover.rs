//! `lifeboat recover`: the stack provisioned in a site from what that site
//! holds — the points copied into its vaults, the binlog archive copied
//! there, the replicated bucket — started, health-checked, and reported with
//! the RPO and RTO achieved.
//!
//! (Over 600 lines: one recovery's steps, kept together until the recovery
//! is cut into a pipeline of its own steps.)
//!
//! Per member the freshest source the site holds is used: a database's
//! newest restorable second (or `--at`), a bucket's replica when it is newer
//! than the newest bucket point (else the point), the newest files and
//! instance points. Databases, buckets and files are restored in parallel;
//! instances then start with the recovered members' outputs. Every vault
//! read holds a reader lock for the whole recovery, so no prune removes what
//! the recovery reads (Velero's runbook sets the storage read-only by hand).
//! A replica used in place is fenced (`.lifeboat-fence`) before the
//! instances start, so the old primary's replicator stops writing into it;
//! once healthy, every member is protected at once (`protect`,
//! `protect_data`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use lifeboat_config::{Config, ResourceKind};
use lifeboat_vault::{Id, RecoveryPoint, Vault};
use serde::{Deserialize, Serialize};

use crate::state::{MemberState, StackState};
use crate::{Result, StackError};

/// What to recover to.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// A moment (RFC 3339) for the databases; `None`: the newest restorable.
    pub at: Option<DateTime<Utc>>,
    /// When the primary failed (for the RPO); `None`: the recovery's start.
    pub failed_at: Option<DateTime<Utc>>,
    /// Provision under this directory instead of the site's root, never on
    /// the endpoints the file declares (a drill's scratch stack).
    pub scratch: Option<PathBuf>,
    /// A planned switchover: stop the primary's writes and drain its archive
    /// and replication first, then recover with nothing lost.
    pub planned: bool,
    /// Once healthy, protect each recovered member at once: a first point
    /// into the vault it was recovered from (a database: a first snapshot
    /// and its binlog archive, run by this `lifeboat` binary; the others:
    /// `protect_data`). Never for a scratch stack.
    pub protect: bool,
    /// Hears each step as it ends (a command prints it at once, also when
    /// its output is a pipe, instead of all of them at the end).
    pub on_step: Option<StepSink>,
}

/// A listener for steps as they end (called from the members' threads).
#[derive(Clone)]
pub struct StepSink(pub std::sync::Arc<dyn Fn(&Step) + Send + Sync>);

impl std::fmt::Debug for StepSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepSink")
    }
}

impl StepSink {
    /// A sink calling `f`.
    pub fn new(f: impl Fn(&Step) + Send + Sync + 'static) -> StepSink {
        StepSink(std::sync::Arc::new(f))
    }
}

/// One step of the recovery, timed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// What was done.
    pub step: String,
    /// The member, if the step is one's.
    pub member: Option<String>,
    /// Seconds from the recovery's start to the step's start.
    pub at_s: f64,
    /// How long it took.
    pub duration_s: f64,
}

impl Step {
    /// `  1.35 s    0.03 s shop-db: load the snapshot`: when it started, how
    /// long it took, whose and what (a report's and a job log's line).
    pub fn line(&self) -> String {
        format!(
            "{:>7.2} s {:>7.2} s {}{}",
            self.at_s,
            self.duration_s,
            self.member
                .as_deref()
                .map(|m| format!("{m}: "))
                .unwrap_or_default(),
            self.step
        )
    }
}

/// Where a member's data came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    /// The member.
    pub member: String,
    /// Its kind.
    pub kind: String,
    /// `point` (a vault's point), `point+binlog`, `replica` or `none`.
    pub from: String,
    /// The vault, when from a point.
    pub vault: Option<String>,
    /// The point used.
    pub point: Option<String>,
    /// The time its data is from (a database: its last recovered commit).
    pub data_time: Option<DateTime<Utc>>,
    /// Why this source.
    pub why: String,
    /// This member's RPO: the failure time (a recovery to an earlier time:
    /// the moment asked for) − `data_time` (what of it may be lost).
    #[serde(default)]
    pub rpo_s: Option<f64>,
    /// Declared `stateless` (its content changes only by deploy): its RPO
    /// is reported, never counted in the stack's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stateless: bool,
    /// An instance: where its launch spec came from, `lifeboat.toml` (the
    /// file the recovery ran with) or `the point` (the file has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_spec: Option<String>,
    /// An instance: the file's launch spec differs from the one in the
    /// point (changed since the point was taken; the file's was used).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub launch_spec_differs: bool,
}

impl Source {
    /// A member recovered from point `id` of vault `vault`.
    pub(crate) fn point(
        member: &str,
        kind: &str,
        vault: &str,
        id: &Id,
        data_time: Option<DateTime<Utc>>,
        why: String,
    ) -> Source {
        Source {
            member: member.into(),
            kind: kind.into(),
            from: "point".into(),
            vault: Some(vault.into()),
            point: Some(id.to_hex()),
            data_time,
            why,
            rpo_s: None,
            stateless: false,
            launch_spec: None,
            launch_spec_differs: false,
        }
    }

    /// A bucket member recovered from its replica, whose newest object is of `data_time`.
    pub(crate) fn replica(member: &str, data_time: DateTime<Utc>, why: String) -> Source {
        Source {
            member: member.into(),
            kind: "bucket".into(),
            from: "replica".into(),
            vault: None,
            point: None,
            data_time: Some(data_time),
            why,
            rpo_s: None,
            stateless: false,
            launch_spec: None,
            launch_spec_differs: false,
        }
    }
}

/// Which source of a bucket member is the fresher: its newest point (and
/// the time of the newest object in it) and its replica (address, newest
/// object), where `place` says where the replica is (`""`, ` on ENDPOINT`).
pub(crate) struct BucketSources<'v> {
    /// The newest point at or before `--at`.
    pub point: Option<(&'v str, &'v Vault, Id, RecoveryPoint)>,
    /// The newest object in that point (else the point's time).
    pub point_data: Option<DateTime<Utc>>,
    /// The replica, when there is one and it may be used.
    pub replica: Option<(String, DateTime<Utc>)>,
    /// The replica is at least as new as the point.
    pub use_replica: bool,
    /// A replica that exists but may not be used, with why (`--at`, a drill).
    pub unused: Option<String>,
    /// A recovery to an earlier time (`--at`).
    at: bool,
    place: String,
}

impl<'v> BucketSources<'v> {
    /// Compares the two; `to_the_second` when the replica keeps times to the
    /// second (S3).
    pub(crate) fn compare(
        vaults: &'v [(String, Vault)],
        member: &str,
        at: Option<DateTime<Utc>>,
        replica: Option<(String, DateTime<Utc>)>,
        to_the_second: bool,
        place: &str,
    ) -> Self {
        let point = newest(vaults, member, "bucket", at);
        let point_data = point
            .as_ref()
            .map(|p| point_newest_object(p.1, &p.3).unwrap_or(p.3.time));
        let use_replica = match (&replica, point_data) {
            (Some((_, rt)), Some(pt)) if to_the_second => rt.timestamp() >= pt.timestamp(),
            (Some((_, rt)), Some(pt)) => *rt >= pt,
            (Some(_), None) => true,
            _ => false,
        };
        BucketSources {
            point,
            point_data,
            replica,
            use_replica,
            unused: None,
            at: at.is_some(),
            place: place.to_string(),
        }
    }

    /// Why the replica is used.
    pub(crate) fn why_replica(&self) -> String {
        let (loc, rt) = self.replica.clone().unwrap_or_default();
        match &self.point {
            Some(p) => format!(
                "the replica {loc}{} (newest object {}) is at least as new as the newest bucket point {} (newest object {})",
                self.place,
                rt.to_rfc3339(),
                p.2.short(),
                self.point_data.unwrap_or(p.3.time).to_rfc3339()
            ),
            None => format!(
                "the replica {loc}{}; the site holds no bucket point",
                self.place
            ),
        }
    }

    /// Why the point is used (`into`: where it is restored, for the words).
    pub(crate) fn why_point(&self, into: &str) -> String {
        if let Some(u) = &self.unused {
            let at = if self.at { " at or before --at" } else { "" };
            format!("the newest bucket point{into}{at}; {u}")
        } else if let Some((loc, rt)) = &self.replica {
            format!(
                "the newest bucket point{into} holds newer objects than the replica {loc} (newest object {}): the replica is not used",
                rt.to_rfc3339()
            )
        } else {
            format!(
                "the newest bucket point{into}; the site holds no replica{}",
                self.place
            )
        }
    }

    /// The refusal when neither can be used.
    pub(crate) fn nothing(&self, member: &str, at: Option<DateTime<Utc>>) -> StackError {
        StackError::Refused(match at {
            Some(at) => format!(
                "the site holds no point of bucket `{member}` taken at or before {} (a replica is as of now: not used with --at)",
                at.to_rfc3339()
            ),
            None => format!(
                "the site holds neither a replica{} nor a point of bucket `{member}`",
                self.place
            ),
        })
    }
}

/// Why a replica that exists is not used for a recovery to an earlier time.
pub(crate) fn replica_as_of_now(location: &str, newest: DateTime<Utc>) -> String {
    format!(
        "the replica {location} (newest object {}) is as of now, not of --at: not used, and left as it is",
        newest.to_rfc3339()
    )
}

/// Restores bucket point `id` of `v` into `to`: every object must arrive.
pub(crate) fn restore_bucket_point(v: &Vault, id: &Id, to: &lifeboat_bucket::Bucket) -> Result<()> {
    let r = lifeboat_bucket::restore::restore(v, id, to, &Default::default(), &AtomicU64::new(0))
        .map_err(|e| {
        StackError::Process(format!("restoring bucket point {}: {e}", id.short()))
    })?;
    match r.failed.first() {
        None => Ok(()),
        Some(f) => Err(StackError::Process(format!(
            "restoring bucket point {}: {} objects failed, e.g. {f}",
            id.short(),
            r.failed.len()
        ))),
    }
}

/// The recovery report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// The stack.
    pub stack: String,
    /// The site it was recovered into.
    pub site: String,
    /// When the recovery started.
    pub started_at: DateTime<Utc>,
    /// When every required member was healthy.
    pub healthy_at: DateTime<Utc>,
    /// When the primary failed (given, else the start).
    pub failed_at: DateTime<Utc>,
    /// The time the stack's data is from: the oldest `data_time` of its
    /// members that are not stateless (each member's is in `sources`).
    pub newest_data: Option<DateTime<Utc>>,
    /// Achieved RPO: the worst of the members' RPOs (stateless ones apart),
    /// measured from the failure, or from the moment `--at` asked for.
    pub rpo_s: Option<f64>,
    /// Achieved RTO, judged against the objective: the downtime when the
    /// failure time is known (`--failed-at`, a planned switchover's stop of
    /// writes), else the recovery's own time.
    pub rto_s: f64,
    /// Downtime the users saw: the failure (`--failed-at`, or the planned
    /// switchover's stop of writes) → every required member healthy.
    #[serde(default)]
    pub downtime_s: Option<f64>,
    /// The recovery's own time: `recover`'s start → every required member healthy.
    #[serde(default)]
    pub recovery_s: f64,
    /// The stack's objectives, and whether they were met.
    pub objectives: Objectives,
    /// Per member, its source.
    pub sources: Vec<Source>,
    /// Each step, timed.
    pub steps: Vec<Step>,
    /// What the recovered members provide (the shop's URL, the DSN, …).
    pub outputs: BTreeMap<String, String>,
    /// Optional members that failed.
    pub warnings: Vec<String>,
    /// A planned switchover: how the primary was quiesced and drained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switchover: Option<crate::planned::Quiesced>,
    /// What protects the recovered databases now (their first snapshot, their archive).
    pub protection: Vec<crate::protect::Protected>,
}

/// Objectives against what was achieved.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Objectives {
    /// Declared RPO, seconds.
    pub rpo_s: Option<u64>,
    /// Declared RTO, seconds.
    pub rto_s: Option<u64>,
    /// RPO met (None: nothing declared or nothing measured).
    pub rpo_met: Option<bool>,
    /// RTO met.
    pub rto_met: Option<bool>,
}

pub(crate) struct Clock(Instant, Option<StepSink>);

impl Clock {
    pub(crate) fn step(
        &self,
        steps: &std::sync::Mutex<Vec<Step>>,
        step: &str,
        member: Option<&str>,
        began: Instant,
    ) {
        let s = Step {
            step: step.into(),
            member: member.map(str::to_string),
            at_s: began.duration_since(self.0).as_secs_f64(),
            duration_s: began.elapsed().as_secs_f64(),
        };
        if let Some(sink) = &self.1 {
            (sink.0)(&s);
        }
        steps.lock().expect("steps").push(s);
    }
}

/// The site's vaults (`[vault.X] site = SITE`), opened.
fn site_vaults(cfg: &Config, site: &str) -> Result<Vec<(String, Vault)>> {
    let names: Vec<&String> = cfg
        .vaults
        .iter()
        .filter(|(_, v)| v.site.as_deref() == Some(site))
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        return Err(StackError::Refused(format!(
            "site `{site}` has no vault: a recovery restores from the vaults in the site it recovers into (declare `site = \"{site}\"` on the vault the points are copied to)"
        )));
    }
    names
        .into_iter()
        .map(|n| {
            lifeboat_control::secret::open_vault(cfg, n)
                .map(|v| (n.clone(), v))
                .map_err(|e| StackError::Refused(format!("vault `{n}` of site `{site}`: {e}")))
        })
        .collect()
}

/// The newest point of `resource` and `kind` over the site's vaults (at or
/// before `at`, when given).
pub(crate) fn newest<'v>(
    vaults: &'v [(String, Vault)],
    resource: &str,
    kind: &str,
    at: Option<DateTime<Utc>>,
) -> Option<(&'v str, &'v Vault, Id, RecoveryPoint)> {
    let mut best: Option<(&str, &Vault, Id, RecoveryPoint)> = None;
    for (n, v) in vaults {
        // Judged by the storage's times where a point's own is later.
        let Ok(points) = v.list_points_trusted() else {
            continue;
        };
        for (id, p) in points {
            if p.kind == kind
                && p.resource == resource
                && at.is_none_or(|at| p.time <= at)
                && best.as_ref().is_none_or(|b| p.time > b.3.time)
            {
                best = Some((n.as_str(), v, id, p));
            }
        }
    }
    best
}

/// Newest modification time of the files under `dir` (a directory bucket).
fn newest_mtime(dir: &Path) -> Option<DateTime<Utc>> {
    let mut best: Option<SystemTime> = None;
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0u64;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            // The replicator fence is no object of the bucket (`fence.rs`).
            if d == dir && e.file_name() == lifeboat_bucket::replicate::fence::FENCE_KEY {
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

/// The newest object modification time in a bucket point (its data time;
/// the point's own time is when it was taken, after that).
pub(crate) fn point_newest_object(v: &Vault, p: &RecoveryPoint) -> Option<DateTime<Utc>> {
    let index = v.load_index().ok()?;
    let mut newest: i64 = 0;
    lifeboat_bucket::restore::walk(v, &index, &p.tree, "", &mut |_, n| {
        newest = newest.max(n.mtime_ns);
        Ok(())
    })
    .ok()?;
    (newest > 0).then(|| DateTime::from_timestamp_nanos(newest))
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
                .then(|| newest_mtime(&path).map(|t| (r.to.clone(), path, t)))
                .flatten()
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

/// Recovers `stack` into `site`.
pub fn recover(
    cfg: &Config,
    stack: &str,
    site: &str,
    opts: &RecoverOptions,
) -> Result<RecoveryReport> {
    let clock = Clock(Instant::now(), opts.on_step.clone());
    let started_at = Utc::now();
    let (s, site_root) = crate::stack::resolve(cfg, stack, site)?;
    let root = opts.scratch.clone().unwrap_or(site_root);
    let _lock = crate::stack::lock(&root, stack, site)?;
    // A pinned address that is taken is refused before anything is restored
    // (a switchover frees the primary's on its way: judged when it starts).
    if !opts.planned {
        crate::launch::pinned_addresses_free(cfg, s, site)?;
    }
    // Declared endpoints only for a real recovery into the resources' own site.
    let own = if opts.scratch.is_some() {
        None
    } else {
        Some(site)
    };
    if let Some(st) = StackState::read(&root, stack)?
        && st
            .members
            .iter()
            .any(|(_, m)| m.process.as_ref().is_some_and(|p| p.alive()))
    {
        return Err(StackError::Refused(format!(
            "stack `{stack}` is already up in site `{site}`: a recovery provisions it afresh; stop it first (`lifeboat stack down --stack {stack} --site {site} --purge`, which removes its data there)"
        )));
    }
    // A stopped stack's database data is still there: a new server would
    // start on it (with its old root password) — refused before anything
    // starts, with what to do.
    if let Some(st) = StackState::read(&root, stack)?
        && let Some((n, m)) = st
            .members
            .iter()
            .find(|(_, m)| m.kind == "mysql" && !m.borrowed && m.dir.join("data").exists())
    {
        return Err(StackError::Refused(format!(
            "stack `{stack}` was stopped in site `{site}` but its data is still there (database `{n}` in {}): a recovery provisions it afresh; remove it first with `lifeboat stack down --stack {stack} --site {site} --purge` (copy out what you still need), or bring it back as it is with `lifeboat stack up --stack {stack} --site {site}`",
            m.dir.display()
        )));
    }
    let steps = std::sync::Mutex::new(Vec::new());
    let switchover = if opts.planned {
        let t = Instant::now();
        let q = crate::planned::quiesce(cfg, stack, site, std::time::Duration::from_secs(120))?;
        clock.step(
            &steps,
            "stop the primary's writes, drain its archive and replication",
            None,
            t,
        );
        Some(q)
    } else {
        None
    };
    match recover_after(
        cfg,
        (stack, site, s),
        opts,
        (&root, own, started_at),
        steps,
        &clock,
        switchover.clone(),
    ) {
        Ok(r) => {
            // The old primary's site stays marked switched over (with its
            // fences); this site, the stack's primary now, is not (a mark of
            // an earlier switchover away from it would hold its archive).
            if let Some(q) = &switchover {
                crate::planned::mark_switched_over(cfg, stack, site, q)?;
            }
            if opts.scratch.is_none() {
                let mark = crate::planned::switched_over_mark(&root, stack);
                if let Err(e) = std::fs::remove_file(&mark)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(StackError::io("remove", &mark, e));
                }
            }
            Ok(r)
        }
        Err(e) => match &switchover {
            None => Err(e),
            Some(q) => {
                crate::planned::unmark_switched_over(cfg, stack);
                Err(StackError::Process(format!(
                    "{e}. The switchover had stopped the primary: {}",
                    crate::planned::how_to_resume(cfg, stack, site, q)
                )))
            }
        },
    }
}

/// The recovery's work after a switchover's quiescing (if any): the data
/// members, the instances, protection and the report.
#[allow(clippy::too_many_arguments)]
fn recover_after(
    cfg: &Config,
    (stack, site, s): (&str, &str, &lifeboat_config::Stack),
    opts: &RecoverOptions,
    (root, own, started_at): (&Path, Option<&str>, DateTime<Utc>),
    steps: std::sync::Mutex<Vec<Step>>,
    clock: &Clock,
    switchover: Option<crate::planned::Quiesced>,
) -> Result<RecoveryReport> {
    let root = root.to_path_buf();
    let t = Instant::now();
    let vaults = site_vaults(cfg, site)?;
    // Read-only for the recovery's duration: no prune while it reads.
    let _readers = vaults
        .iter()
        .map(|(_, v)| lifeboat_vault::lock::reader_lock(v.storage(), "recover"))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            StackError::Process(format!("cannot lock the site's vaults for reading: {e}"))
        })?;
    clock.step(&steps, "open the site's vaults (reader locks)", None, t);

    let order = crate::stack::order(cfg, s);
    let kind_of = |n: &str| cfg.resources.get(n).map(|r| &r.kind);
    let data_members: Vec<&String> = order
        .iter()
        .filter(|n| !matches!(kind_of(n), Some(ResourceKind::Instance { .. })))
        .collect();
    let results: Vec<(String, Result<(MemberState, Source)>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = data_members
            .iter()
            .map(|name| {
                let (vaults, root, steps, clock) = (&vaults, &root, &steps, clock);
                let name = name.to_string();
                scope.spawn(move || {
                    let r = recover_data_member(
                        cfg,
                        (site, own),
                        &name,
                        root,
                        vaults,
                        opts,
                        steps,
                        clock,
                    );
                    (name, r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("member thread"))
            .collect()
    });
    let mut state = StackState {
        stack: stack.into(),
        site: site.into(),
        root: root.clone(),
        up_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        members: Vec::new(),
    };
    let mut sources = Vec::new();
    let mut warnings = Vec::new();
    let mut failure = None;
    for (name, r) in results {
        match r {
            Ok((m, src)) => {
                state.members.push((name, m));
                sources.push(src);
            }
            Err(e) if s.optional.contains(&name) => {
                warnings.push(format!("optional member `{name}` was not recovered: {e}"))
            }
            Err(e) => {
                failure.get_or_insert(format!("member `{name}`: {e}"));
            }
        }
    }
    state.write()?;
    if let Some(f) = failure {
        return Err(StackError::Process(format!(
            "recovery of stack `{stack}` into site `{site}` failed: {f} (what was recovered stays: `lifeboat stack status` shows it, `stack down --purge` removes it)"
        )));
    }
    // Before anything starts on a replica used in place: fenced.
    if opts.scratch.is_none() {
        fence_replicas(
            cfg,
            (stack, site),
            started_at,
            &state,
            &sources,
            &mut warnings,
        );
    }
    for name in order
        .iter()
        .filter(|n| matches!(kind_of(n), Some(ResourceKind::Instance { .. })))
    {
        let outputs = crate::stack::launch_values(cfg, &state)?;
        match recover_instance(cfg, name, opts.at, &root, &vaults, &outputs, &steps, clock) {
            Ok((m, src)) => {
                state.members.push((name.clone(), m));
                sources.push(src);
                state.write()?;
            }
            Err(e) if s.optional.contains(name) => {
                warnings.push(format!("optional member `{name}` was not recovered: {e}"))
            }
            Err(e) => {
                state.write()?;
                return Err(StackError::Process(format!(
                    "recovery of stack `{stack}` into site `{site}` failed: member `{name}`: {e}"
                )));
            }
        }
    }
    let healthy_at = Utc::now();
    let recovery_s = clock.0.elapsed().as_secs_f64();
    // Protected at once (after the RTO: the stack already serves).
    let mut protection = Vec::new();
    if opts.protect && opts.scratch.is_none() {
        let exe = std::env::current_exe()
            .map_err(|e| StackError::Process(format!("cannot find the lifeboat binary: {e}")))?;
        for (name, m) in state
            .members
            .iter_mut()
            .filter(|(_, m)| m.kind == "mysql" && !m.borrowed)
        {
            let Some(vn) = sources
                .iter()
                .find(|x| &x.member == name)
                .and_then(|x| x.vault.clone())
            else {
                continue;
            };
            let Some((_, v)) = vaults.iter().find(|(n, _)| *n == vn) else {
                continue;
            };
            let t = Instant::now();
            match crate::protect::protect(cfg, &vn, v, name, m, &exe) {
                Ok(p) => {
                    clock.step(&steps, "protect at once: first snapshot, binlog archive started", Some(name), t);
                    protection.push(p);
                }
                Err(e) => warnings.push(format!(
                    "the recovered `{name}` is NOT protected yet: {e} (take a snapshot and start `lifeboat archive mysql` by hand)"
                )),
            }
        }
        let (others, failed) = crate::protect_data::protect_others(
            cfg,
            site,
            &state.members,
            &sources,
            &vaults,
            |name, t| clock.step(&steps, "protect at once: first point", Some(name), t),
        );
        protection.extend(others);
        warnings.extend(failed);
        state.write()?;
    }
    let failed_at = switchover
        .as_ref()
        .map(|q| q.writes_stopped_at)
        .or(opts.failed_at)
        .unwrap_or(started_at);
    // A database recovered to the position it stopped at (under the fence)
    // lost nothing: complete up to the fence. Measured, not assumed: the
    // vault it came from holds the archive to that position.
    if let Some(q) = &switchover {
        for x in sources.iter_mut().filter(|x| x.kind == "mysql") {
            let Some((_, file, pos)) = q.positions.iter().find(|p| p.0 == x.member) else {
                continue;
            };
            let want = (lifeboat_mysql::binlog::file_number(file).unwrap_or(0), *pos);
            let reached = vaults
                .iter()
                .find(|(n, _)| Some(n) == x.vault.as_ref())
                .and_then(|(_, v)| crate::planned::archived_to(v, &x.member));
            if reached.is_some_and(|r| r >= want) {
                x.data_time = Some(q.writes_stopped_at);
                x.why = format!(
                    "recovered to {file}:{pos}, where the fenced primary stopped (planned switchover)"
                );
            } else {
                warnings.push(format!(
                    "`{}` was recovered short of {file}:{pos}, where the fenced primary stopped: commits after its newest restorable second are lost",
                    x.member
                ));
            }
        }
        // A replica replicated once more after the writes stopped: complete then.
        for x in sources
            .iter_mut()
            .filter(|x| x.from == "replica" && q.replicated.iter().any(|(m, _)| *m == x.member))
        {
            x.data_time = Some(q.writes_stopped_at);
        }
    }
    let failed_known = switchover.is_some() || opts.failed_at.is_some();
    let downtime_s = failed_known
        .then(|| ((healthy_at - failed_at).num_milliseconds() as f64 / 1000.0).max(0.0));
    let rto_s = downtime_s.unwrap_or(recovery_s);
    // A recovery to a chosen moment (--at, a drill's random pick) is
    // measured from that moment: what it lost of the moment asked for, as a
    // failure then would have lost; else from the failure.
    let (newest_data, rpo_s) = member_rpos(cfg, &mut sources, opts.at.unwrap_or(failed_at));
    let objectives = Objectives {
        rpo_s: s.objectives.rpo.map(|d| d.0),
        rto_s: s.objectives.rto.map(|d| d.0),
        rpo_met: s.objectives.rpo.zip(rpo_s).map(|(o, a)| a <= o.0 as f64),
        rto_met: s.objectives.rto.map(|o| rto_s <= o.0 as f64),
    };
    let mut outputs = BTreeMap::new();
    for (k, v) in crate::stack::outputs_of(&state) {
        if !k.ends_with(".socket") {
            outputs.insert(k, v);
        }
    }
    let mut steps = steps.into_inner().expect("steps");
    steps.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Ok(RecoveryReport {
        stack: stack.into(),
        site: site.into(),
        started_at,
        healthy_at,
        failed_at,
        newest_data,
        rpo_s,
        rto_s,
        downtime_s,
        recovery_s,
        objectives,
        sources,
        steps,
        outputs,
        warnings,
        switchover,
        protection,
    })
}

/// Fences every replica the recovery uses in place (the old primary's
/// replicator must not write into it); a fence that cannot be written is a
/// warning saying to stop that replicator by hand.
fn fence_replicas(
    cfg: &Config,
    (stack, site): (&str, &str),
    started_at: DateTime<Utc>,
    state: &StackState,
    sources: &[Source],
    warnings: &mut Vec<String>,
) {
    let now = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for x in sources.iter().filter(|x| x.from == "replica") {
        let Some((_, m)) = state.members.iter().find(|(n, _)| *n == x.member) else {
            continue;
        };
        let f = lifeboat_bucket::replicate::fence::Fence {
            stack: stack.into(),
            site: site.into(),
            member: x.member.clone(),
            recovery: now(started_at),
            fenced_at: now(Utc::now()),
        };
        if let Err(e) = crate::protect_data::fence_replica(cfg, site, m, &f) {
            warnings.push(format!(
                "the replica of `{}` is NOT fenced: {e} (stop the old primary's replicator into it by hand)",
                x.member
            ));
        }
    }
}

/// Each member's RPO (`from`: the failure, or the moment a recovery to an
/// earlier time asked for − the time its data is from); the
/// stack's: the worst of those not declared stateless, with the time its
/// data is from (the oldest of theirs).
fn member_rpos(
    cfg: &Config,
    sources: &mut [Source],
    from: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<f64>) {
    for x in sources.iter_mut() {
        x.stateless = cfg.resources.get(&x.member).is_some_and(|r| r.stateless);
        x.rpo_s = x
            .data_time
            .map(|t| ((from - t).num_milliseconds() as f64 / 1000.0).max(0.0));
    }
    let counted = sources.iter().filter(|x| !x.stateless);
    let oldest = counted.clone().filter_map(|x| x.data_time).min();
    let worst = counted.filter_map(|x| x.rpo_s).reduce(f64::max);
    (oldest, worst)
}

#[allow(clippy::too_many_arguments)]
fn recover_data_member(
    cfg: &Config,
    (into, site): (&str, Option<&str>),
    name: &str,
    root: &Path,
    vaults: &[(String, Vault)],
    opts: &RecoverOptions,
    steps: &std::sync::Mutex<Vec<Step>>,
    clock: &Clock,
) -> Result<(MemberState, Source)> {
    let kind = cfg.resources.get(name).map(|r| &r.kind).expect("a member");
    match kind {
        ResourceKind::Mysql { .. } => {
            // The vault whose archive reaches furthest.
            let mut best: Option<(
                &str,
                &Vault,
                lifeboat_mysql::Catalog,
                lifeboat_mysql::pitr::Plan,
                DateTime<Utc>,
            )> = None;
            let target = match opts.at {
                Some(t) => lifeboat_mysql::Target::Time(t),
                None => lifeboat_mysql::Target::Latest,
            };
            let mut why_not = Vec::new();
            for (vn, v) in vaults {
                let c = match lifeboat_mysql::Catalog::load(v, name) {
                    Ok(c) => c,
                    Err(e) => {
                        why_not.push(format!("vault `{vn}`: {e}"));
                        continue;
                    }
                };
                let reach = c.windows().iter().map(|w| w.to).max();
                match (lifeboat_mysql::pitr::plan(&c, &target), reach) {
                    (Ok(p), Some(reach)) => {
                        let to = opts.at.unwrap_or(reach);
                        if best.as_ref().is_none_or(|b| to > b.4) {
                            best = Some((vn, v, c, p, to));
                        }
                    }
                    (Err(e), _) => why_not.push(format!("vault `{vn}`: {e}")),
                    (Ok(_), None) => why_not.push(format!("vault `{vn}`: no restorable window")),
                }
            }
            let Some((vn, v, catalog, plan, data_time)) = best else {
                return Err(StackError::Refused(format!(
                    "no vault of the site can restore database `{name}`: {}",
                    why_not.join("; ")
                )));
            };
            // The application's account is read before anything starts: a
            // password file that is not there fails here, not after the load.
            let app = crate::mariadb::app_account(cfg, name)?;
            let t = Instant::now();
            let m = crate::stack::provision(cfg, root, site, name, None)?;
            clock.step(steps, "start an empty database server", Some(name), t);
            let loaded = load_database(
                &m,
                name,
                (v, &catalog, &plan),
                app.as_ref(),
                root,
                steps,
                clock,
            );
            if let Err(e) = loaded {
                // Never left running unrecorded: a half-loaded server is
                // stopped (its directory stays for `stack down --purge`).
                if let Some(p) = &m.process {
                    p.stop(Duration::from_secs(30));
                }
                return Err(e);
            }
            let id = plan.snapshot.0;
            Ok((
                m,
                Source {
                    member: name.into(),
                    kind: "mysql".into(),
                    from: "point+binlog".into(),
                    vault: Some(vn.into()),
                    point: Some(id.to_hex()),
                    data_time: Some(data_time),
                    rpo_s: None,
                    stateless: false,
                    why: match opts.at {
                        Some(_) => "the snapshot before --at, rolled forward to it".into(),
                        None => "the newest restorable second of the site's archive".into(),
                    },
                    launch_spec: None,
                    launch_spec_differs: false,
                },
            ))
        }
        ResourceKind::Bucket { .. } => {
            // On the S3 endpoint the site names (crate::bucket).
            if let Some(store) = crate::bucket::SiteStore::of(cfg, into)?
                && let Some(r) = crate::bucket::recover_member(
                    cfg, &store, name, root, vaults, opts, steps, clock,
                )?
            {
                return Ok(r);
            }
            // A replica is as of now: not for a recovery to an earlier time;
            // and a scratch stack (a drill) never uses production's in place.
            let site_root = cfg.sites.get(into).and_then(|s| s.root.clone());
            let found = replica(cfg, name, site_root.as_deref().unwrap_or(root));
            let rep = found.clone().filter(|_| opts.at.is_none());
            let t = Instant::now();
            // Freshness by the newest object in each (a replica's objects are
            // written as they change; a point holds what was there when taken).
            let mut b = BucketSources::compare(
                vaults,
                name,
                opts.at,
                rep.map(|(loc, _, rt)| (loc, rt)),
                false,
                "",
            );
            if opts.at.is_some() {
                b.unused = found.map(|(loc, _, rt)| replica_as_of_now(&loc, rt));
            }
            // A drill reads the replica into a bucket of its own, never
            // serves production's in place (as on an S3 endpoint).
            if b.use_replica && opts.scratch.is_some() {
                let (loc, rt) = b.replica.clone().expect("checked");
                let (m, _) = point_target(cfg, root, site, name)?;
                // The replica only read: opened without `create`, which
                // would tidy its temporary files.
                let open = |a: &str, create: bool| {
                    lifeboat_bucket::Bucket::open_address(a, create)
                        .map_err(|e| StackError::Process(e.to_string()))
                };
                let n = crate::bucket::copy_all(
                    &open(&loc, false)?,
                    &open(&m.outputs["location"], true)?,
                )?;
                clock.step(
                    steps,
                    "copy the bucket replica into the drill's bucket",
                    Some(name),
                    t,
                );
                let why = format!(
                    "{}; its {n} objects copied into the drill's bucket (the replica is only read)",
                    b.why_replica()
                );
                return Ok((m, Source::replica(name, rt, why)));
            }
            if b.use_replica {
                let (loc, rt) = b.replica.clone().expect("checked");
                let path = PathBuf::from(loc.strip_prefix("file://").unwrap_or(&loc));
                let mut outputs = BTreeMap::new();
                outputs.insert("location".into(), loc);
                outputs.insert("path".into(), path.display().to_string());
                clock.step(steps, "use the bucket replica in place", Some(name), t);
                return Ok((
                    MemberState {
                        kind: "bucket".into(),
                        dir: path,
                        outputs,
                        borrowed: true,
                        provisioned: Some(false),
                        ..Default::default()
                    },
                    Source::replica(name, rt, b.why_replica()),
                ));
            }
            let Some((vn, v, id, p)) = &b.point else {
                return Err(b.nothing(name, opts.at));
            };
            let (m, note) = point_target(cfg, root, site, name)?;
            let to = lifeboat_bucket::Bucket::open_address(&m.outputs["location"], true)
                .map_err(|e| StackError::Process(e.to_string()))?;
            restore_bucket_point(v, id, &to)?;
            clock.step(steps, "restore the bucket point", Some(name), t);
            let mut why = b.why_point("");
            if let Some(n) = note {
                why = format!("{why}; {n}");
            }
            Ok((m, Source::point(name, "bucket", vn, id, Some(p.time), why)))
        }
        ResourceKind::Files { .. } => {
            let Some((vn, v, id, p)) = newest(vaults, name, "files", opts.at) else {
                return Err(StackError::Refused(format!(
                    "the site holds no point of `{name}`"
                )));
            };
            let t = Instant::now();
            let m = crate::stack::provision(cfg, root, site, name, None)?;
            let ropts = lifeboat_files::RestoreOptions {
                to: m.dir.clone(),
                ..Default::default()
            };
            lifeboat_files::restore(v, &id, &ropts, &lifeboat_files::Counters::default())
                .map_err(|e| StackError::Process(format!("restoring point {}: {e}", id.short())))?;
            clock.step(steps, "restore the files point", Some(name), t);
            Ok((
                m,
                Source::point(
                    name,
                    "files",
                    vn,
                    &id,
                    Some(p.time),
                    "the newest files point of the site".into(),
                ),
            ))
        }
        ResourceKind::Instance { .. } => unreachable!("instances start after the data"),
    }
}

#[allow(clippy::too_many_arguments)]
fn recover_instance(
    cfg: &Config,
    name: &str,
    at: Option<DateTime<Utc>>,
    root: &Path,
    vaults: &[(String, Vault)],
    outputs: &crate::stack::Outputs,
    steps: &std::sync::Mutex<Vec<Step>>,
    clock: &Clock,
) -> Result<(MemberState, Source)> {
    let Some((vn, v, id, p)) = newest(vaults, name, lifeboat_instance::KIND, at) else {
        return Err(StackError::Refused(format!(
            "the site holds no instance point of `{name}`{}",
            at.map(|t| format!(" taken at or before {}", t.to_rfc3339()))
                .unwrap_or_default()
        )));
    };
    let dir = root.join("hosts").join(name);
    let made = !dir.exists();
    std::fs::create_dir_all(&dir).map_err(|e| StackError::io("create", &dir, e))?;
    let launch = crate::launch::LaunchChoice::of(cfg, name, &p)?;
    let port = crate::launch::instance_port(name, launch.spec.as_ref())?;
    let mut values = outputs.clone();
    values.insert("listen".into(), format!("127.0.0.1:{port}"));
    values.insert("port".into(), port.to_string());
    let t = Instant::now();
    let ropts = lifeboat_instance::RestoreOptions {
        to: dir.clone(),
        env: values,
        overwrite: Some(lifeboat_files::Overwrite::Always),
        launch: launch.spec.clone(),
        ..Default::default()
    };
    let rep = lifeboat_instance::restore(v, &id, &p, &ropts, &lifeboat_files::Counters::default())
        .map_err(|e| crate::launch::launch_error(name, e))?;
    if rep.launch_json.is_none() {
        let mut why: Vec<String> = rep
            .files
            .errors
            .iter()
            .take(3)
            .map(|e| format!("{e:?}"))
            .collect();
        why.extend(
            rep.files
                .damaged
                .iter()
                .take(3)
                .map(|d| format!("damaged: {d:?}")),
        );
        if why.is_empty() {
            why.push("the point has no launch spec".into());
        }
        return Err(StackError::Process(format!(
            "instance point {} was not restored whole into {}: {}",
            id.short(),
            dir.display(),
            why.join("; ")
        )));
    }
    clock.step(
        steps,
        "restore the instance (files, volumes, launch spec)",
        Some(name),
        t,
    );
    let t = Instant::now();
    let started = lifeboat_instance::supervise::start(&dir)?;
    clock.step(
        steps,
        "start the instance and wait for health",
        Some(name),
        t,
    );
    let start_time = lifeboat_instance::supervise::start_time(started.pid).ok_or_else(|| {
        StackError::Process(format!(
            "instance `{name}` exited right after it became healthy"
        ))
    })?;
    Ok((
        MemberState {
            kind: "instance".into(),
            dir,
            outputs: crate::stack::instance_outputs(port),
            process: Some(crate::process::Proc {
                pid: started.pid,
                start_time,
            }),
            provisioned: Some(made),
            ..Default::default()
        },
        Source {
            launch_spec: Some(launch.from.into()),
            launch_spec_differs: launch.differs,
            ..Source::point(
                name,
                "instance",
                vn,
                &id,
                Some(p.time),
                "the newest instance point of the site".into(),
            )
        },
    ))
}

/// Loads database member `name` into its new server `m`: the plan's
/// snapshot (with its users and grants, when it holds them), the binlog
/// archive replayed to the plan's end, then the application's own account
/// as the file declares it (after the snapshot's: its other grants stay).
fn load_database(
    m: &MemberState,
    name: &str,
    (v, catalog, plan): (
        &Vault,
        &lifeboat_mysql::Catalog,
        &lifeboat_mysql::pitr::Plan,
    ),
    app: Option<&(lifeboat_config::model::AppAccount, String)>,
    root: &Path,
    steps: &std::sync::Mutex<Vec<Step>>,
    clock: &Clock,
) -> Result<()> {
    let mut dsn = lifeboat_mysql::Dsn::parse(&m.outputs["dsn"])
        .map_err(|e| StackError::Process(e.to_string()))?;
    dsn.password = m.password.as_ref().map(|p| p.0.clone());
    let t = Instant::now();
    let ropts = lifeboat_mysql::RestoreOptions {
        users: plan.meta.users,
        ..Default::default()
    };
    let counters = lifeboat_mysql::Counters::default();
    let (id, point) = plan.snapshot.clone();
    lifeboat_mysql::restore(v, &id, &point, &dsn, &ropts, &counters)
        .map_err(|e| StackError::Process(format!("restoring snapshot {}: {e}", id.short())))?;
    clock.step(steps, "load the snapshot", Some(name), t);
    let t = Instant::now();
    let work = root.join("mysql").join(name).join("tmp");
    lifeboat_mysql::pitr::replay(v, catalog, plan, &dsn, &ropts, &work)
        .map_err(|e| StackError::Process(format!("replaying the binlog archive: {e}")))?;
    clock.step(steps, "replay the binlog archive", Some(name), t);
    if let Some((app, pw)) = app {
        crate::mariadb::Server::new(m.dir.clone())
            .with_password(m.password.as_ref().map(|p| p.0.clone()))
            .ensure_app_account(app, pw)?;
    }
    Ok(())
}
