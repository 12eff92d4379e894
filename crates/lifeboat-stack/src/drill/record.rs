//! What a drill records and how it is read back: its summary and whole
//! report in the job history (and the site's vaults), and each stack's
//! verification state from its newest drill.

use chrono::{DateTime, Utc};
use lifeboat_config::Config;
use serde::{Deserialize, Serialize};

use super::{DrillReport, declaration, over_objectives};
use crate::recover::RecoveryReport;
use crate::{Result, StackError};

/// The first line of a drill job's log: what `report` reads back.
pub const SUMMARY_PREFIX: &str = "drill: ";

/// What a drill job records in its log's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillSummary {
    /// Recovery healthy and check passed.
    pub passed: bool,
    /// Achieved RPO.
    pub rpo_s: Option<f64>,
    /// Achieved RTO.
    pub rto_s: Option<f64>,
    /// The declaration fingerprint it proved.
    pub declaration: String,
    /// The time recovered to, for a random pick.
    pub at: Option<DateTime<Utc>>,
}

/// The recovery report a `drill` or `recover` job recorded in the history
/// (steps with their timings, sources, RPO, RTO); `None` for other jobs, a
/// drill whose recovery failed, or a job recorded before reports were kept.
pub fn report_of(job: &lifeboat_control::store::Job) -> Option<RecoveryReport> {
    let v: serde_json::Value = serde_json::from_str(job.report.as_deref()?).ok()?;
    match job.kind.as_str() {
        "drill" => serde_json::from_value(v.get("recovery")?.clone()).ok(),
        "recover" => serde_json::from_value(v).ok(),
        _ => None,
    }
}

/// A drill job's summary: from its whole report, else (a job recorded
/// before reports were kept) its log's first line.
pub fn summary_of(job: &lifeboat_control::store::Job) -> Option<DrillSummary> {
    if job.kind != "drill" {
        return None;
    }
    if let Some(r) = job
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str::<DrillReport>(r).ok())
    {
        return Some(r.summary());
    }
    job.log
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(SUMMARY_PREFIX))
        .and_then(|l| serde_json::from_str(l).ok())
}

impl DrillReport {
    /// What `report` and `/metrics` read back.
    pub fn summary(&self) -> DrillSummary {
        DrillSummary {
            passed: self.passed,
            rpo_s: self.recovery.as_ref().and_then(|r| r.rpo_s),
            rto_s: self.recovery.as_ref().map(|r| r.rto_s),
            declaration: self.declaration.clone(),
            at: self.at,
        }
    }

    /// The job log: the summary line, then a readable account.
    pub fn log(&self) -> String {
        let summary = self.summary();
        let mut log = format!(
            "{SUMMARY_PREFIX}{}\n",
            serde_json::to_string(&summary).expect("json")
        );
        if let Some(r) = &self.recovery {
            for s in &r.steps {
                log.push_str(&s.line());
                log.push('\n');
            }
        }
        if let Some(e) = &self.error {
            log.push_str(&format!("recovery failed: {e}\n"));
        }
        if let Some(c) = &self.check {
            log.push_str(&format!(
                "check `{}` {} after {:.1} s\n{}\n",
                c.command,
                c.ended(),
                c.duration_s,
                c.output
            ));
        }
        for m in &self.missed {
            log.push_str(&format!("objective missed: {m}\n"));
        }
        if let Some(e) = &self.teardown_error {
            log.push_str(&format!("teardown failed: {e}\n"));
        }
        if let Some(w) = self.launch_spec_warning() {
            log.push_str(&format!("warning: {w}\n"));
        }
        log
    }
}

/// A stack's verification state, from its newest drill job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackVerification {
    /// The stack.
    pub stack: String,
    /// Whether every control passed.
    pub compliant: bool,
    /// The newest drill's job id and time.
    pub last_drill: Option<(i64, DateTime<Utc>)>,
    /// Its summary.
    pub summary: Option<DrillSummary>,
    /// Failed controls, each with why.
    pub failed: Vec<String>,
    /// The newest drill is one kept in a vault, not in this host's history
    /// (`crate::kept`): where, when and by which host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<KeptDrill>,
}

/// A drill report read from a vault (`crate::kept`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptDrill {
    /// The vault it is kept in.
    pub vault: String,
    /// When it was kept (the drill's end).
    pub at: DateTime<Utc>,
    /// The host that ran it.
    pub host: String,
}

/// Per stack: the newest drill passed, within the objectives, and of the
/// declaration the file has now (else "not verified since change").
pub fn verification(
    cfg: &Config,
    store: &dyn lifeboat_control::store::JobStore,
) -> Result<Vec<StackVerification>> {
    let mut out = Vec::new();
    for (name, s) in &cfg.stacks {
        let jobs = store
            .list(&lifeboat_control::store::JobFilter {
                resource: Some(name.clone()),
                limit: Some(200),
                ..Default::default()
            })
            .map_err(|e| StackError::Process(e.to_string()))?;
        // The newest drill that came to a verdict: one cancelled or
        // interrupted (or still running) proves nothing either way.
        use lifeboat_control::store::status::{FAILED, SUCCEEDED};
        let last = jobs
            .into_iter()
            .find(|j| j.kind == "drill" && (j.status == SUCCEEDED || j.status == FAILED));
        let summary = last.as_ref().and_then(summary_of);
        let failed = judge(cfg, name, s, summary.as_ref(), last.as_ref().map(|j| j.id));
        out.push(StackVerification {
            stack: name.clone(),
            compliant: failed.is_empty(),
            last_drill: last.map(|j| (j.id, j.started)),
            summary,
            failed,
            kept: None,
        });
    }
    Ok(out)
}

/// The stack was never drilled, with the command that drills it: its
/// declared drill's, else one to the site its drills or vaults name.
fn never_drilled(cfg: &Config, stack: &str) -> String {
    let declared = cfg.drills.iter().find(|(_, d)| d.stack == stack);
    let command = match declared {
        Some((drill, _)) => format!("lifeboat drill --drill {drill}"),
        None => format!("lifeboat drill --stack {stack} --to SITE"),
    };
    format!("never drilled (`{command}`)")
}

/// The controls stack `name` (`s`) fails, judged by its newest drill's
/// summary (`job`: that drill's job in this history, when it is there).
pub(crate) fn judge(
    cfg: &Config,
    name: &str,
    s: &lifeboat_config::Stack,
    summary: Option<&DrillSummary>,
    job: Option<i64>,
) -> Vec<String> {
    let mut failed = Vec::new();
    match summary {
        None => failed.push(never_drilled(cfg, name)),
        Some(d) => {
            if !d.passed {
                failed.push(match job {
                    Some(id) => format!("the last drill failed (`lifeboat jobs show {id}`)"),
                    None => {
                        "the last drill failed (its report is kept in the site's vaults)".into()
                    }
                });
            }
            for m in over_objectives(s, d.rpo_s, d.rto_s) {
                failed.push(format!("the last drill's {m}"));
            }
            if d.declaration != declaration(cfg, name) {
                failed.push("not verified since change: the stack's declaration changed after its last drill".into());
            }
        }
    }
    failed
}
