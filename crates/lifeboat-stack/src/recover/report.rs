//! What a recovery reports: each member's source, the steps with their
//! times, the RPO and RTO achieved against the stack's objectives.

use chrono::{DateTime, Utc};
use lifeboat_vault::Id;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

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
    /// The bytes it moved, where that says what it cost (a binlog replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
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
        ) + &self
            .bytes
            .map(|b| format!(" ({b} bytes)"))
            .unwrap_or_default()
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
    /// A database: how its point was restored, `physical` (a data
    /// directory extracted and prepared) or `logical` (loaded through SQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
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
            mode: None,
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
            mode: None,
            rpo_s: None,
            stateless: false,
            launch_spec: None,
            launch_spec_differs: false,
        }
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

/// A recovery's clock: when it started, and who hears each step as it ends.
pub(crate) struct Clock(Instant, Option<StepSink>);

impl Clock {
    /// A clock started now.
    pub(crate) fn start(sink: Option<StepSink>) -> Clock {
        Clock(Instant::now(), sink)
    }

    /// Seconds since the recovery started.
    pub(crate) fn elapsed_s(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }

    /// Records `step` (of `member`, if one's) that began at `began` in
    /// `steps`, and tells the sink.
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
            bytes: None,
        };
        if let Some(sink) = &self.1 {
            (sink.0)(&s);
        }
        steps.lock().expect("steps").push(s);
    }
}
