//! A planned switchover (`recover --planned`): the primary is alive, so
//! nothing need be lost. Before the recovery: the primary's instances are
//! stopped (the application's writes stop), each database is fenced and its
//! binlog position read, the recovery waits until the target site's vaults
//! hold the archive up to that position (the binlog archive and its copy
//! drained), and each bucket is replicated once more into its replica (a
//! directory under the target's root, or a bucket on its S3 endpoint; the
//! replication engine signs with the process's AWS_* environment).
//!
//! The fence holds against every account, not only those `read_only`
//! binds (an account with `SUPER` or `READ ONLY ADMIN`, root among them,
//! ignores it): `read_only = 1`; every other client connection is killed
//! (the binlog archive's dump stays, so the archive drains); and the fencing
//! session holds `FLUSH TABLES WITH READ LOCK` while the position is read
//! and the archive drains, so no account commits after that position. Then
//! the fence is made lasting: a server the stack provisioned in the primary
//! site is shut down (nothing can write to it any more); a server of one's
//! own keeps `read_only`, and every account that ignores it other than
//! Lifeboat's own is locked (`ACCOUNT LOCK`) — the report names them and the
//! statements that undo it, and warns that Lifeboat's own account still can
//! write.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_config::{Config, ResourceKind};
use serde::{Deserialize, Serialize};

pub use crate::fence::Fence;
use crate::process::Proc;
use crate::state::StackState;
use crate::{Result, StackError};

/// What the quiescing did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quiesced {
    /// When the primary's writes stopped (its instances stopped, databases fenced).
    pub writes_stopped_at: DateTime<Utc>,
    /// Per database: the binlog position it stopped at.
    pub positions: Vec<(String, String, u64)>,
    /// Seconds the archive took to reach the target's vaults.
    pub drain_s: f64,
    /// Buckets replicated once more: (member, objects copied).
    pub replicated: Vec<(String, u64)>,
    /// How each database of the old primary is kept from taking writes.
    #[serde(default)]
    pub fences: Vec<Fence>,
    /// The old primary's binlog archives stopped after the drain (member,
    /// pid): the new primary's own archive takes the resource over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archives_stopped: Vec<(String, u32)>,
}

/// The site `stack` runs in now (its members' own site), refused when it
/// is not declared or is the switchover's `target` already.
fn primary_site<'c>(cfg: &'c Config, stack: &str, target: &str) -> Result<&'c str> {
    let primary = cfg.stacks[stack]
        .members
        .iter()
        .find_map(|m| cfg.resources.get(m)?.site.as_deref())
        .ok_or_else(|| {
            StackError::Refused(format!(
                "a planned switchover needs the primary: give stack `{stack}`'s members their `site`"
            ))
        })?;
    if primary == target {
        return Err(StackError::Refused(format!(
            "stack `{stack}` already runs in site `{target}`: a switchover goes to another site"
        )));
    }
    Ok(primary)
}

/// Stops every instance of the primary's stack that runs: no new writes.
fn stop_instances(st: &StackState) -> Result<()> {
    for (_, m) in st.members.iter().filter(|(_, m)| m.kind == "instance") {
        if m.dir
            .join(lifeboat_instance::supervise::LAUNCH_PID)
            .exists()
        {
            lifeboat_instance::supervise::stop(&m.dir)?;
        }
    }
    Ok(())
}

/// Stops the writes of `stack` at its primary site (the members' own site)
/// and waits until `target`'s vaults hold every commit.
pub fn quiesce(cfg: &Config, stack: &str, target: &str, timeout: Duration) -> Result<Quiesced> {
    let s = &cfg.stacks[stack];
    let primary = primary_site(cfg, stack, target)?;
    // Nothing is stopped unless the archive reaches the target: else the
    // drain could only time out, with the application already down.
    archive_is_live(cfg, stack, target)?;
    let (_, proot) = crate::stack::resolve(cfg, stack, primary)?;
    let pstate = StackState::read(&proot, stack)?;
    // 1. The application stops: no new writes.
    if let Some(st) = &pstate {
        stop_instances(st)?;
    }
    // 2. Each database fenced; where each stopped.
    let mut held = Vec::new();
    for m in &s.members {
        match crate::fence::fence(cfg, m, pstate.as_ref()) {
            Ok(Some(h)) => held.push(h),
            Ok(None) => {}
            Err(e) => {
                return Err(StackError::Process(format!(
                    "{e}.{} The primary's application is stopped: `lifeboat stack up --stack {stack} --site {primary}` restarts it once the databases are writable again",
                    held.iter()
                        .map(|h| format!(" `{}` is fenced: {}", h.member, h.undo()))
                        .collect::<String>()
                )));
            }
        }
    }
    let writes_stopped_at = Utc::now();
    let positions: Vec<(String, String, u64)> = held
        .iter()
        .map(|h| (h.member.clone(), h.file.clone(), h.pos))
        .collect();
    // 3. The archive drains into the target's vaults (the read lock held).
    let started = Instant::now();
    if let Err(e) = drain(cfg, target, &positions, timeout) {
        // The read locks end with their sessions; what lasts is said, in
        // the order to undo it: the databases writable, then the application.
        let undo: Vec<String> = held
            .iter()
            .map(|h| format!("on `{}`: {}", h.member, h.undo()))
            .collect();
        return Err(StackError::Process(format!(
            "{e}. The primary is fenced and its application stopped; to resume there: {}, then `lifeboat stack up --stack {stack} --site {primary}`",
            undo.join("; ")
        )));
    }
    let drain_s = started.elapsed().as_secs_f64();
    // From here the old primary's site is marked switched over (`stack up`
    // there refuses, the daemon holds its archive), for the whole recovery:
    // a failure takes the mark away again and says how to resume.
    let undos: Vec<String> = held
        .iter()
        .map(|h| format!("on `{}`: {}", h.member, h.undo()))
        .collect();
    let mark = switched_over_mark(&proot, stack);
    let resume = |e: StackError| {
        let _ = std::fs::remove_file(&mark);
        StackError::Process(format!(
            "{e}. The primary is fenced and its application stopped; to resume there: {}, then `lifeboat stack up --stack {stack} --site {primary}`",
            undos.join("; ")
        ))
    };
    write_mark(&mark, stack, target, writes_stopped_at, &[]).map_err(resume)?;
    // 4. The fence made lasting.
    let fences = held
        .into_iter()
        .map(crate::fence::seal)
        .collect::<Result<Vec<Fence>>>()
        .map_err(resume)?;
    let archives_stopped = stop_old_archives(cfg, &positions);
    // 5. Buckets: one more pass of each replication rule into the target's
    // root or onto its S3 endpoint.
    let replicated = replicate_buckets(cfg, stack, target).map_err(resume)?;
    Ok(Quiesced {
        writes_stopped_at,
        positions,
        drain_s,
        replicated,
        fences,
        archives_stopped,
    })
}

/// The primary site of `stack` (its members' own) and its root.
fn primary_root(cfg: &Config, stack: &str) -> Option<(String, PathBuf)> {
    let primary = cfg.stacks[stack]
        .members
        .iter()
        .find_map(|m| cfg.resources.get(m)?.site.clone())?;
    let (_, root) = crate::stack::resolve(cfg, stack, &primary).ok()?;
    Some((primary, root))
}

fn write_mark(
    mark: &Path,
    stack: &str,
    target: &str,
    at: DateTime<Utc>,
    fences: &[Fence],
) -> Result<()> {
    let text = serde_json::json!({"stack": stack, "to": target, "at": at, "fences": fences});
    if let Some(dir) = mark.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StackError::io("create", dir, e))?;
    }
    std::fs::write(mark, format!("{text:#}\n")).map_err(|e| StackError::io("write", mark, e))
}

/// The old primary's site stays marked switched over once the recovery
/// into `target` succeeded (with the fences that hold it): `stack up`
/// there refuses while the mark is there (two primaries), and the daemon
/// holds its archive.
pub(crate) fn mark_switched_over(
    cfg: &Config,
    stack: &str,
    target: &str,
    q: &Quiesced,
) -> Result<()> {
    let Some((_, proot)) = primary_root(cfg, stack) else {
        return Ok(());
    };
    write_mark(
        &switched_over_mark(&proot, stack),
        stack,
        target,
        q.writes_stopped_at,
        &q.fences,
    )
}

/// A switchover whose recovery failed: the old primary's mark goes (it is
/// to be resumed, [`how_to_resume`]).
pub(crate) fn unmark_switched_over(cfg: &Config, stack: &str) {
    if let Some((_, proot)) = primary_root(cfg, stack) {
        let _ = std::fs::remove_file(switched_over_mark(&proot, stack));
    }
}

/// What to do to resume the old primary after a switchover whose recovery
/// failed: each fence's undo, the stack brought up again, the archives.
pub(crate) fn how_to_resume(cfg: &Config, stack: &str, target: &str, q: &Quiesced) -> String {
    let primary = primary_root(cfg, stack).map_or_else(|| "the primary".into(), |p| p.0);
    let mut out: Vec<String> = q
        .fences
        .iter()
        .map(|f| match &f.undo {
            Some(u) => format!("on `{}`: {u}", f.member),
            None => format!(
                "`{}`'s server was stopped ({})",
                f.member,
                match f.locked_accounts.is_empty() {
                    true => "stack up starts it again".to_string(),
                    false => format!(
                        "once stack up has started it: ALTER USER … ACCOUNT UNLOCK for {}",
                        f.locked_accounts.join(", ")
                    ),
                }
            ),
        })
        .collect();
    // What the recovery brought up in the target goes first: never two
    // writable databases.
    out.insert(
        0,
        format!(
            "first `lifeboat stack down --stack {stack} --site {target} --purge` (what the recovery brought up there; copy out anything written to it since)"
        ),
    );
    out.push(format!(
        "then `lifeboat stack up --stack {stack} --site {primary}` (it starts what was stopped)"
    ));
    if !q.archives_stopped.is_empty() {
        out.push(format!(
            "and restart the binlog archive of {} (`lifeboat serve` does)",
            q.archives_stopped
                .iter()
                .map(|(m, _)| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    format!("to resume there: {}", out.join("; "))
}

/// Whether `p` runs (a zombie, exited but not yet reaped by its parent,
/// does not).
fn running(p: &Proc) -> bool {
    p.alive()
        && std::fs::read_to_string(format!("/proc/{}/stat", p.pid))
            .ok()
            .and_then(|st| {
                st.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('Z'))
            })
            != Some(true)
}

/// Stops the old primary's binlog archives that run on this machine (found
/// by their locks in every vault of the file: kind `archive MEMBER`, this
/// boot and pid namespace, the same process by its start time): drained,
/// they would hold the resource and keep the new primary's archive from
/// starting. One on another machine is left; the recovery's protection then
/// says its archive could not start.
fn stop_old_archives(cfg: &Config, positions: &[(String, String, u64)]) -> Vec<(String, u32)> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_string())
        .ok();
    let ns = std::fs::metadata("/proc/self/ns/pid")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .ok();
    let mut stopped = Vec::new();
    for name in cfg.vaults.keys() {
        let Ok(v) = lifeboat_control::secret::open_vault(cfg, name) else {
            continue;
        };
        let Ok(locks) = lifeboat_vault::lock::live_locks(v.storage()) else {
            continue;
        };
        for (member, _, _) in positions {
            let kind = format!("archive {member}");
            for (_, l) in locks.iter().filter(|(_, l)| l.kind == kind) {
                let here = l.boot_id.is_some() && l.boot_id == boot && l.pid_ns == ns;
                let same = l.start_time.is_some()
                    && lifeboat_instance::supervise::start_time(l.pid as i32) == l.start_time;
                if !here || !same || stopped.iter().any(|(_, p)| *p == l.pid) {
                    continue;
                }
                let p = Proc {
                    pid: l.pid as i32,
                    start_time: l.start_time.unwrap_or_default(),
                };
                // The process itself (it may share its group with others):
                // SIGTERM, then SIGKILL after 15 s.
                if let Some(pid) = rustix::process::Pid::from_raw(p.pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                    let until = Instant::now() + Duration::from_secs(15);
                    while running(&p) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    if running(&p) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                }
                stopped.push((member.clone(), l.pid));
            }
        }
    }
    stopped
}

/// Waits until some vault of `target` holds each database's archive up to
/// the position it stopped at.
fn drain(
    cfg: &Config,
    target: &str,
    positions: &[(String, String, u64)],
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    let vaults: Vec<lifeboat_vault::Vault> = cfg
        .vaults
        .iter()
        .filter(|(_, v)| v.site.as_deref() == Some(target))
        .filter_map(|(n, _)| lifeboat_control::secret::open_vault(cfg, n).ok())
        .collect();
    for (m, file, pos) in positions {
        let want = (lifeboat_mysql::binlog::file_number(file).unwrap_or(0), *pos);
        while !vaults
            .iter()
            .any(|v| archived_to(v, m).is_some_and(|have| have >= want))
        {
            if started.elapsed() > timeout {
                return Err(StackError::Process(format!(
                    "the binlog archive of `{m}` did not reach {file}:{pos} in site `{target}`'s vaults within {} s: is its archive running, and its copy to the secondary?",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

pub use lifeboat_control::locks::switched_over_mark;

/// How old the newest restorable second of a database's archive in the
/// target's vaults may be for a switchover to start (an idle archive marks
/// it every check; a busy one with every seal).
const LIVE_ARCHIVE: Duration = Duration::from_secs(90);

/// Refuses, before anything is stopped, when some database of `stack` has
/// no archive reaching `target`'s vaults within [`LIVE_ARCHIVE`].
fn archive_is_live(cfg: &Config, stack: &str, target: &str) -> Result<()> {
    let vaults: Vec<(String, lifeboat_vault::Vault)> = cfg
        .vaults
        .iter()
        .filter(|(_, v)| v.site.as_deref() == Some(target))
        .filter_map(|(n, _)| {
            Some((
                n.clone(),
                lifeboat_control::secret::open_vault(cfg, n).ok()?,
            ))
        })
        .collect();
    let now = Utc::now();
    for m in &cfg.stacks[stack].members {
        if !matches!(
            cfg.resources.get(m).map(|r| &r.kind),
            Some(ResourceKind::Mysql { .. })
        ) {
            continue;
        }
        let catalogs: Vec<lifeboat_mysql::Catalog> = vaults
            .iter()
            .filter_map(|(_, v)| lifeboat_mysql::Catalog::load(v, m).ok())
            .collect();
        let newest = catalogs
            .iter()
            .filter_map(|c| c.windows().iter().map(|w| w.to).max())
            .max();
        let fresh = newest.is_some_and(|t| (now - t).to_std().unwrap_or_default() <= LIVE_ARCHIVE);
        let names: Vec<&str> = vaults.iter().map(|(n, _)| n.as_str()).collect();
        // The archive is there but nothing to roll it forward from: a
        // snapshot is what is missing, not the archive.
        if newest.is_none()
            && catalogs
                .iter()
                .any(|c| c.snapshots.is_empty() && !c.segments.is_empty())
        {
            let plans = cfg.plans_of(m);
            return Err(StackError::Refused(format!(
                "site `{target}`'s vaults ({}) hold database `{m}`'s binlog archive but no snapshot of it to roll forward from: {}, then switch over — nothing was stopped",
                names.join(", "),
                match plans.first() {
                    Some(p) => format!(
                        "take one now (`lifeboat jobs run --plan {p}`; its copy brings it there)"
                    ),
                    None => format!(
                        "take one (`lifeboat backup mysql --resource {m} --users` into one of them)"
                    ),
                }
            )));
        }
        if !fresh {
            return Err(StackError::Refused(format!(
                "database `{m}`'s binlog archive is not reaching site `{target}`'s vaults ({}): {}; start it (`lifeboat serve` runs it, or `lifeboat archive mysql`) and its copy, then switch over — nothing was stopped",
                names.join(", "),
                match newest {
                    Some(t) => format!(
                        "their newest restorable second is {} s old",
                        (now - t).num_seconds()
                    ),
                    None => "they hold none of it".to_string(),
                }
            )));
        }
    }
    Ok(())
}

/// How far vault `v` holds database `member`'s archive: (binlog file number, end).
pub(crate) fn archived_to(v: &lifeboat_vault::Vault, member: &str) -> Option<(u64, u64)> {
    let c = lifeboat_mysql::Catalog::load(v, member).ok()?;
    let h = c.head()?;
    Some((
        lifeboat_mysql::binlog::file_number(&h.file).unwrap_or(0),
        h.end,
    ))
}

/// One more pass of each of the stack's bucket replication rules into the
/// target's root or onto its S3 endpoint: (member, objects copied).
fn replicate_buckets(cfg: &Config, stack: &str, target: &str) -> Result<Vec<(String, u64)>> {
    let s = &cfg.stacks[stack];
    let (_, troot) = crate::stack::resolve(cfg, stack, target)?;
    let endpoint = crate::bucket::SiteStore::of(cfg, target)?;
    let mut replicated = Vec::new();
    for m in &s.members {
        for rule in cfg.replications.values().filter(|r| &r.from == m) {
            let to = PathBuf::from(rule.to.strip_prefix("file://").unwrap_or(&rule.to));
            if !to.starts_with(&troot) && !endpoint.as_ref().is_some_and(|e| e.holds(&rule.to)) {
                continue;
            }
            let Some(ResourceKind::Bucket { location }) = cfg.resources.get(m).map(|r| &r.kind)
            else {
                continue;
            };
            let copied = replicate_once(location, &rule.to, &troot)?;
            replicated.push((m.clone(), copied));
        }
    }
    Ok(replicated)
}

fn replicate_once(from: &str, to: &str, root: &Path) -> Result<u64> {
    let from_n = lifeboat_bucket::Bucket::parse(from)
        .map_err(|e| StackError::Process(e.to_string()))?
        .to_string();
    let to_n = lifeboat_bucket::Bucket::parse(to)
        .map_err(|e| StackError::Process(e.to_string()))?
        .to_string();
    let mut opts = lifeboat_bucket::replicate::Options::new(&from_n, &to_n, "");
    opts.state_dir = root
        .join("stacks")
        .join(".switchover-replication")
        .join(lifeboat_bucket::replicate::rule_id(&from_n, &to_n, ""));
    opts.existing = true;
    opts.once = true;
    let rep = lifeboat_bucket::replicate::run_until_signalled(opts)
        .map_err(|e| StackError::Process(format!("replicating {from} into {to}: {e}")))?;
    Ok(rep.copied)
}
