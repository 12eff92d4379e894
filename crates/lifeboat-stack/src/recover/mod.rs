//! `lifeboat recover`: the stack provisioned in a site from what that site
//! holds — the points copied into its vaults, the binlog archive copied
//! there, the replicated bucket — started, health-checked, and reported with
//! the RPO and RTO achieved.
//!
//! A recovery is a pipeline of named steps, each a type of its own with its
//! own tests, run in this order by [`recover`] (a drill runs the same with a
//! scratch root, then its check and teardown: `drill.rs`):
//!
//! 1. [`preflight::Preflight`]: refused before anything starts — the stack
//!    up already, a stopped stack's data still there, a pinned address taken;
//! 2. a planned switchover's quiescing ([`crate::planned::quiesce`]);
//! 3. [`sources::SiteVaults`]: the site's vaults opened, each under a reader
//!    lock for the whole recovery, so no prune removes what it reads;
//! 4. [`members::RestoreData`]: per data member, its source chosen (a
//!    database's newest restorable second or `--at`: from a physical point
//!    when this host can start it, else a logical one; a bucket's replica
//!    when it is at least as new as its newest point, the newest files
//!    point), provisioned and restored — every member side by side, and
//!    beside them each instance's files and volumes;
//! 5. [`members::FenceReplicas`]: a replica used in place is fenced
//!    (`.lifeboat-fence`), so the old primary's replicator stops writing into it;
//! 6. [`instances::StartInstances`]: each instance's launch spec written
//!    with the recovered members' outputs, then started, in dependency
//!    order, and healthy;
//! 7. [`protection::Protect`]: every member protected at once (`protect`,
//!    `protect_data`);
//! 8. [`measure::Measure`]: each member's RPO, the stack's, the downtime and
//!    the recovery's time against the objectives: the report.

mod bucket_dir;
mod database;
mod instances;
mod measure;
mod members;
mod preflight;
mod protection;
mod report;
mod sources;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_config::Config;

use crate::planned::Quiesced;
use crate::state::StackState;
use crate::{Result, StackError};

pub(crate) use report::Clock;
pub use report::{Objectives, RecoveryReport, Source, Step, StepSink};
pub(crate) use sources::{BucketSources, BucketWay, restore_bucket_point};

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

/// One recovery under way: what every step of the pipeline reads, and the
/// timeline the steps add themselves to.
pub(crate) struct Recovery<'c> {
    /// The file the recovery runs with.
    pub cfg: &'c Config,
    /// The stack's name.
    pub stack: &'c str,
    /// The site it is recovered into.
    pub site: &'c str,
    /// The stack as the file declares it.
    pub declared: &'c lifeboat_config::Stack,
    /// Where its members are provisioned: the site's root, or a drill's scratch.
    pub root: PathBuf,
    /// The site whose declared directories and endpoints may be used: the
    /// recovery's own; none for a scratch stack.
    pub own: Option<&'c str>,
    /// What was asked.
    pub opts: &'c RecoverOptions,
    /// When the recovery started.
    pub started_at: DateTime<Utc>,
    /// The recovery's clock (and who hears each step).
    pub clock: Clock,
    /// Each step, timed, as it ended.
    pub steps: Mutex<Vec<Step>>,
}

impl Recovery<'_> {
    /// Records step `what` (of `member`, if one's) that began at `began`.
    pub(crate) fn step(&self, what: &str, member: Option<&str>, began: Instant) {
        self.clock.step(&self.steps, what, member, began);
    }

    /// Adds the bytes it moved to `member`'s step `what`, the last one so named.
    pub(crate) fn step_bytes(&self, what: &str, member: &str, bytes: u64) {
        let mut steps = self.steps.lock().expect("steps");
        if let Some(s) = steps
            .iter_mut()
            .rev()
            .find(|s| s.step == what && s.member.as_deref() == Some(member))
        {
            s.bytes = Some(bytes);
        }
    }

    /// The refusal or failure of the whole recovery, naming the member.
    pub(crate) fn failed(&self, member: &str, e: impl std::fmt::Display) -> StackError {
        StackError::Process(format!(
            "recovery of stack `{}` into site `{}` failed: member `{member}`: {e}",
            self.stack, self.site
        ))
    }
}

/// What the steps have brought up so far: the stack's state (written as it
/// grows), each member's source, and the warnings of optional members and
/// protection.
pub(crate) struct Recovered {
    /// The stack's state in the site.
    pub state: StackState,
    /// Per member, where its data came from.
    pub sources: Vec<Source>,
    /// What did not go as it should without failing the recovery.
    pub warnings: Vec<String>,
}

/// Recovers `stack` into `site`.
pub fn recover(
    cfg: &Config,
    stack: &str,
    site: &str,
    opts: &RecoverOptions,
) -> Result<RecoveryReport> {
    let clock = Clock::start(opts.on_step.clone());
    let started_at = Utc::now();
    let (declared, site_root) = crate::stack::resolve(cfg, stack, site)?;
    let root = opts.scratch.clone().unwrap_or(site_root);
    let _lock = crate::stack::lock(&root, stack, site)?;
    let r = Recovery {
        cfg,
        stack,
        site,
        declared,
        own: opts.scratch.is_none().then_some(site),
        root,
        opts,
        started_at,
        clock,
        steps: Mutex::new(Vec::new()),
    };
    preflight::Preflight::of(&r).check()?;
    let switchover = match opts.planned {
        true => {
            let t = Instant::now();
            let q = crate::planned::quiesce(cfg, stack, site, std::time::Duration::from_secs(120))?;
            r.step(
                "stop the primary's writes, drain its archive and replication",
                None,
                t,
            );
            Some(q)
        }
        false => None,
    };
    let outcome = pipeline(&r, switchover.as_ref());
    settle_switchover(&r, switchover.as_ref(), outcome)
}

/// The steps after a switchover's quiescing (if any): the data members, the
/// replicas' fences, the instances, protection and the report.
fn pipeline(r: &Recovery, switchover: Option<&Quiesced>) -> Result<RecoveryReport> {
    let vaults = sources::SiteVaults::open(r)?;
    let (mut got, hosts) = members::RestoreData::run(r, &vaults)?;
    if r.opts.scratch.is_none() {
        members::FenceReplicas::run(r, &mut got);
    }
    instances::StartInstances::run(r, hosts, &mut got)?;
    let healthy = measure::Healthy::now(&r.clock);
    // Protected at once (after the RTO: the stack already serves).
    let protection = match r.opts.protect && r.opts.scratch.is_none() {
        true => protection::Protect::run(r, &vaults, &mut got)?,
        false => Vec::new(),
    };
    Ok(measure::Measure {
        healthy,
        switchover: switchover.cloned(),
        protection,
    }
    .report(r, &vaults, got))
}

/// A switchover's mark after the recovery: on success the old primary's
/// site stays marked switched over (with its fences) and this site, the
/// stack's primary now, is not (a mark of an earlier switchover away from it
/// would hold its archive); on failure the mark is removed and the error
/// says how to resume the primary.
fn settle_switchover(
    r: &Recovery,
    switchover: Option<&Quiesced>,
    outcome: Result<RecoveryReport>,
) -> Result<RecoveryReport> {
    let (cfg, stack, site) = (r.cfg, r.stack, r.site);
    match (outcome, switchover) {
        (Ok(report), q) => {
            if let Some(q) = q {
                crate::planned::mark_switched_over(cfg, stack, site, q)?;
            }
            if r.opts.scratch.is_none() {
                let mark = crate::planned::switched_over_mark(&r.root, stack);
                if let Err(e) = std::fs::remove_file(&mark)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(StackError::io("remove", &mark, e));
                }
            }
            Ok(report)
        }
        (Err(e), None) => Err(e),
        (Err(e), Some(q)) => {
            crate::planned::unmark_switched_over(cfg, stack);
            Err(StackError::Process(format!(
                "{e}. The switchover had stopped the primary: {}",
                crate::planned::how_to_resume(cfg, stack, site, q)
            )))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A file with a site `dr` and stack `shop` (a database, a bucket, an
    /// instance); `extra` is appended.
    pub(crate) fn config(root: &std::path::Path, extra: &str) -> Config {
        let text = format!(
            r#"
[site.dr]
root = "{root}"
[vault.dr-vault]
site = "dr"
location = "file://{root}/vault"
password_env = "LIFEBOAT_PASSWORD"
[resource.shop-db]
kind = "mysql"
dsn = "mysql://root@127.0.0.1:3306"
[resource.shop-assets]
kind = "bucket"
location = "file://{root}/assets"
[resource.shop-host]
kind = "instance"
paths = ["/opt/shop"]
launch = {{ command = ["/opt/shop/shop"], health = "http://${{listen}}/health" }}
[stack.shop]
members = ["shop-db", "shop-assets", "shop-host"]
optional = ["shop-assets"]
objectives = {{ rpo = "5s", rto = "2m" }}
{extra}"#,
            root = root.display()
        );
        lifeboat_config::parse("lifeboat.toml", &text).expect("a valid file")
    }

    /// Runs `f` with a recovery of stack `shop` into site `dr` rooted at `root`.
    pub(crate) fn recovery_in(root: &std::path::Path, f: impl FnOnce(&Recovery)) {
        let cfg = config(root, "");
        let opts = RecoverOptions::default();
        let r = Recovery {
            cfg: &cfg,
            stack: "shop",
            site: "dr",
            declared: &cfg.stacks["shop"],
            root: root.to_path_buf(),
            own: Some("dr"),
            opts: &opts,
            started_at: Utc::now(),
            clock: Clock::start(None),
            steps: Mutex::new(Vec::new()),
        };
        f(&r)
    }

    /// An empty vault at `path` (fast key derivation).
    pub(crate) fn vault_in(path: &std::path::Path) -> lifeboat_vault::Vault {
        lifeboat_vault::vault::throwaway(path)
    }

    /// A step is recorded with the member it is of, and heard by the sink
    /// as it ends.
    #[test]
    fn each_step_is_recorded_and_heard_as_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let heard = std::sync::Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        recovery_in(dir.path(), |r| {
            let r = Recovery {
                clock: Clock::start(Some(StepSink::new(move |s| {
                    h.lock().unwrap().push(s.line())
                }))),
                steps: Mutex::new(Vec::new()),
                root: r.root.clone(),
                ..*r
            };
            r.step("load the snapshot", Some("shop-db"), Instant::now());
            let steps = r.steps.lock().unwrap();
            assert_eq!(steps.len(), 1);
            assert_eq!(steps[0].member.as_deref(), Some("shop-db"));
        });
        let heard = heard.lock().unwrap();
        assert_eq!(heard.len(), 1);
        assert!(
            heard[0].ends_with("shop-db: load the snapshot"),
            "{heard:?}"
        );
    }
}
