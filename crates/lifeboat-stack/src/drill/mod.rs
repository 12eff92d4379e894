//! `lifeboat drill`: a recovery into a scratch stack, checked, torn down,
//! recorded — recovery proven, not hoped for.
//!
//! The scratch stack lives under `SITE_ROOT/drills/STACK-TIME/` with its own
//! ports and directories: it never uses the endpoints the file declares, never
//! writes into a bucket replica, and only reads the site's vaults (under
//! reader locks), so the production stack and its retention are untouched.
//! After the stack is healthy, the stack's `check` runs (its `${…}` filled
//! with the scratch stack's outputs); then, after `keep_for`, the scratch is
//! stopped and removed. The report is a job of kind `drill` in the history.
//!
//!
//! A drill is the recovery pipeline (`crate::recover`) into a scratch root,
//! then two steps of its own: the stack's [`check`] and the [`teardown`];
//! what it records is in [`record`], the moment a `random-within` pick
//! recovers to in [`pick`].

mod check;
mod pick;
mod record;
mod teardown;

pub use check::CheckReport;
pub(crate) use record::judge;
pub use record::{
    DrillSummary, KeptDrill, SUMMARY_PREFIX, StackVerification, report_of, summary_of, verification,
};
pub use teardown::teardown;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_config::{Config, Pick};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::recover::{RecoverOptions, RecoveryReport};

/// A drill's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillReport {
    /// The stack.
    pub stack: String,
    /// The site whose vaults it recovered from.
    pub site: String,
    /// The scratch stack's directory.
    pub scratch: PathBuf,
    /// The time recovered to (`None`: the newest).
    pub at: Option<DateTime<Utc>>,
    /// The recovery (steps, sources, RPO, RTO); `None` when it failed.
    pub recovery: Option<RecoveryReport>,
    /// Why the recovery failed.
    pub error: Option<String>,
    /// The stack's check, when it declares one.
    pub check: Option<CheckReport>,
    /// Recovery healthy and check passed.
    pub passed: bool,
    /// The scratch stack was stopped and removed.
    pub torn_down: bool,
    /// What of the scratch stack could not be removed (a scratch bucket on
    /// the site's endpoint), with why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teardown_error: Option<String>,
    /// The stack's objectives the recovery missed (`RPO 2.1 s is over the
    /// objective 1 s`): a drill that misses one fails, as `report` judges it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<String>,
    /// A fingerprint of the stack's declaration (members and their tables):
    /// a report whose fingerprint differs from the file's is "not verified
    /// since change".
    pub declaration: String,
    /// Instances whose launch spec in the file differs from the one in the
    /// point they were recovered from (the file's was used: the points were
    /// taken before the change; a new plan run copied to the site ends it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_spec_differs: Vec<String>,
    /// The scratch stacks of interrupted drills in the site torn down
    /// before this drill began, each said in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swept: Vec<String>,
}

impl DrillReport {
    /// The warning a drill gives when the file's launch specs differ from
    /// the points'.
    pub fn launch_spec_warning(&self) -> Option<String> {
        (!self.launch_spec_differs.is_empty()).then(|| {
            format!(
                "the launch spec of {} in lifeboat.toml differs from the one in the point it was recovered from; the drill used the file's (a new point, copied to site `{}`, carries it)",
                self.launch_spec_differs
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.site
            )
        })
    }
}

/// How a drill runs.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Which points.
    pub pick: Pick,
    /// How long the scratch stack stays up after the check.
    pub keep_for: Duration,
    /// Longest the check may run.
    pub check_timeout: Duration,
    /// Where the check's output is kept while it runs (the state
    /// directory's `drills/`); `None`: the scratch stack's directory.
    pub log_dir: Option<PathBuf>,
    /// Hears each step as it ends: the recovery's, the check, the teardown.
    pub on_step: Option<crate::recover::StepSink>,
    /// The scratch stack's directory ([`scratch_dir`]); `None`: a new one.
    pub scratch: Option<PathBuf>,
}

/// A new scratch stack's directory for a drill of `stack` in `site`:
/// `SITE_ROOT/drills/STACK-TIME`.
pub fn scratch_dir(cfg: &Config, stack: &str, site: &str) -> Result<PathBuf> {
    let (_, site_root) = crate::stack::resolve(cfg, stack, site)?;
    Ok(site_root.join("drills").join(format!(
        "{stack}-{}",
        Utc::now().format("%Y%m%dT%H%M%S%3fZ")
    )))
}

/// A fingerprint of what a drill of `stack` proves: the stack's table and
/// its members' tables as the file declares them.
pub fn declaration(cfg: &Config, stack: &str) -> String {
    let mut v = serde_json::json!({ "stack": cfg.stacks.get(stack) });
    if let Some(s) = cfg.stacks.get(stack) {
        for m in &s.members {
            v[m] = serde_json::to_value(cfg.resources.get(m)).unwrap_or_default();
        }
    }
    let text = serde_json::to_vec(&v).expect("json");
    lifeboat_vault::Id::of_stored(&text).to_hex()[..16].to_string()
}

/// The moment a drill recovers to: `None` for the newest.
fn picked(cfg: &Config, stack: &str, site: &str, pick: Pick) -> Result<Option<DateTime<Utc>>> {
    match pick {
        Pick::Latest => Ok(None),
        Pick::RandomWithin(d) => {
            pick::pick_time(cfg, stack, site, Duration::from_secs(d.0)).map(Some)
        }
    }
}

/// Runs a drill of `stack` from the vaults of `site`.
pub fn drill(cfg: &Config, stack: &str, site: &str, opts: &DrillOptions) -> Result<DrillReport> {
    let (s, site_root) = crate::stack::resolve(cfg, stack, site)?;
    let scratch = match &opts.scratch {
        Some(d) => d.clone(),
        None => scratch_dir(cfg, stack, site)?,
    };
    // Held until the scratch stack is torn down: a drill killed before
    // that leaves it for the next drill in the site to tear down.
    let _held = teardown::hold(&scratch, stack, site)?;
    let swept = teardown::sweep_abandoned(cfg, site, &site_root.join("drills"));
    let at = picked(cfg, stack, site, opts.pick).inspect_err(|_| {
        teardown::teardown(cfg, site, &scratch, stack);
    })?;
    let ropts = RecoverOptions {
        at,
        failed_at: None,
        scratch: Some(scratch.clone()),
        planned: false,
        protect: false,
        on_step: opts.on_step.clone(),
    };
    let began = Instant::now();
    // The drill's own steps (after the recovery's), heard as they end.
    let tell = |what: String, t: Instant| {
        if let Some(sink) = &opts.on_step {
            (sink.0)(&crate::recover::Step {
                step: what,
                member: None,
                at_s: t.duration_since(began).as_secs_f64(),
                duration_s: t.elapsed().as_secs_f64(),
                bytes: None,
            });
        }
    };
    let (recovery, error) = match crate::recover::recover(cfg, stack, site, &ropts) {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let check = match (&recovery, &s.check) {
        (Some(r), Some(cmd)) => {
            let log_dir = opts
                .log_dir
                .clone()
                .unwrap_or_else(|| scratch.join("check"));
            let t = Instant::now();
            let c = check::Check {
                command: cmd,
                scratch: &scratch,
                stack,
                log_dir: &log_dir,
                timeout: opts.check_timeout,
            }
            .run(r);
            tell(format!("the stack's check {}", c.ended()), t);
            Some(c)
        }
        _ => None,
    };
    let missed = recovery
        .as_ref()
        .map_or_else(Vec::new, |r| over_objectives(s, r.rpo_s, Some(r.rto_s)));
    let passed =
        recovery.is_some() && check.as_ref().is_none_or(|c| c.exit == Some(0)) && missed.is_empty();
    if recovery.is_some() && !opts.keep_for.is_zero() {
        std::thread::sleep(opts.keep_for);
    }
    let t = Instant::now();
    let (torn_down, teardown_error) = teardown::teardown(cfg, site, &scratch, stack);
    tell(
        match &teardown_error {
            None => "tear the scratch stack down".into(),
            Some(e) => format!("tear the scratch stack down: FAILED: {e}"),
        },
        t,
    );
    Ok(DrillReport {
        stack: stack.into(),
        site: site.into(),
        scratch,
        at,
        error,
        check,
        passed,
        torn_down,
        teardown_error,
        missed,
        declaration: declaration(cfg, stack),
        launch_spec_differs: recovery
            .iter()
            .flat_map(|r| &r.sources)
            .filter(|x| x.launch_spec_differs)
            .map(|x| x.member.clone())
            .collect(),
        recovery,
        swept,
    })
}

/// The objectives of stack `s` that an RPO and RTO miss, in words: what a
/// drill fails on and what `report` says of the last drill.
pub(crate) fn over_objectives(
    s: &lifeboat_config::Stack,
    rpo: Option<f64>,
    rto: Option<f64>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(o), Some(a)) = (s.objectives.rpo, rpo)
        && a > o.0 as f64
    {
        out.push(format!("RPO {a:.1} s is over the objective {} s", o.0));
    }
    if let (Some(o), Some(a)) = (s.objectives.rto, rto)
        && a > o.0 as f64
    {
        out.push(format!("RTO {a:.1} s is over the objective {} s", o.0));
    }
    out
}
