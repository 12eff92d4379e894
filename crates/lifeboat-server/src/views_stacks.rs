//! What the stack, recovery-report and replication-history routes answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::views::JobView;

/// A stack's objectives, in seconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectivesView {
    /// Most data (time) a recovery may lose.
    pub rpo_s: Option<u64>,
    /// Longest a recovery may take, start to healthy.
    pub rto_s: Option<u64>,
}

/// A member of a stack with its protection status.
#[derive(Debug, Serialize, ToSchema)]
pub struct StackMemberView {
    /// The resource.
    pub name: String,
    /// files, mysql, bucket, instance.
    pub kind: String,
    /// A failure of this member does not fail a recovery.
    pub optional: bool,
    /// Every compliance control of the resource met.
    pub compliant: bool,
    /// Its newest point's age in seconds.
    pub newest_age_s: Option<i64>,
}

/// A stack's last drill against its objectives (`lifeboat report`).
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationView {
    /// The last drill passed, within the objectives, of the declaration the file has now.
    pub compliant: bool,
    /// The last drill's job.
    pub last_drill_job: Option<i64>,
    /// When it started.
    pub last_drill_at: Option<DateTime<Utc>>,
    /// Whether it passed.
    pub passed: Option<bool>,
    /// Its achieved RPO.
    pub rpo_s: Option<f64>,
    /// Its achieved RTO.
    pub rto_s: Option<f64>,
    /// The controls that failed, each with why.
    pub failed: Vec<String>,
}

/// A drill the file declares.
#[derive(Debug, Serialize, ToSchema)]
pub struct DrillDecl {
    /// Its name (`[drill.NAME]`).
    pub name: String,
    /// The site it recovers into.
    pub site: String,
    /// Its cron schedule, if it has one.
    pub schedule: Option<String>,
    /// `latest` or `random-within:…`.
    pub pick: String,
}

/// A stack of the file.
#[derive(Debug, Serialize, ToSchema)]
pub struct StackView {
    /// Its name.
    pub name: String,
    /// Its members.
    pub members: Vec<StackMemberView>,
    /// Its objectives.
    pub objectives: ObjectivesView,
    /// Its check command.
    pub check: Option<String>,
    /// The drills that recover it.
    pub drills: Vec<DrillDecl>,
    /// Its last drill against the objectives.
    pub verification: VerificationView,
    /// Live RPO exposure: the fewest seconds of data a failure now would
    /// lose, over the sites that could recover the stack (absent: no site can).
    pub rpo_exposure_s: Option<f64>,
    /// The exposure in each site that could recover the stack.
    pub exposure: Vec<SiteExposureView>,
}

/// A stack's live RPO exposure in one site.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteExposureView {
    /// The site that would recover it.
    pub site: String,
    /// Seconds of data a failure now would lose (absent: the site cannot recover a member it needs).
    pub seconds: Option<f64>,
    /// Why the site's vaults could not be read.
    pub error: Option<String>,
    /// Per member: the newest data the site holds.
    pub members: Vec<MemberExposureView>,
}

/// One member's exposure in one site.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberExposureView {
    /// The resource.
    pub member: String,
    /// Its kind.
    pub kind: String,
    /// The newest data of it the site holds.
    pub data_time: Option<DateTime<Utc>>,
    /// Seconds since then (absent: the site holds nothing of it).
    pub seconds: Option<f64>,
}

/// Body of `POST /stacks/{name}/drill` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillBody {
    /// A drill the file declares for this stack (its site, pick, keep_for).
    pub drill: Option<String>,
    /// Else: the site whose vaults it recovers from (default: the stack's only declared drill's).
    pub site: Option<String>,
}

/// Filters of `/reports`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Only this stack.
    pub stack: Option<String>,
    /// Only `drill` or `recover`.
    pub kind: Option<String>,
    /// At most this many, newest first (default 50, at most 500).
    #[param(minimum = 0, maximum = 500)]
    pub limit: Option<u32>,
}

/// One timed step of a recovery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    /// What was done.
    pub step: String,
    /// The member, if the step is one's.
    pub member: Option<String>,
    /// Seconds from the recovery's start to the step's start.
    pub at_s: f64,
    /// How long it took.
    pub duration_s: f64,
}

/// A drill's or a recovery's report.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryView {
    /// The job that recorded it (its log, error and status).
    pub job: JobView,
    /// `drill` or `recover`.
    pub kind: String,
    /// The stack.
    pub stack: Option<String>,
    /// Recovered healthy (and, for a drill, its check passed).
    pub passed: Option<bool>,
    /// Achieved RPO.
    pub rpo_s: Option<f64>,
    /// Achieved RTO.
    pub rto_s: Option<f64>,
    /// Each step, timed (for the timeline); the whole report is the job's `report`.
    pub steps: Vec<StepView>,
}

/// One sample of a replication rule's lag.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LagSample {
    /// When it was taken.
    pub t: DateTime<Utc>,
    /// Whether the replicator ran.
    pub running: bool,
    /// Lag p50 over 5 minutes.
    pub lag_p50_s: Option<f64>,
    /// Lag p99.
    pub lag_p99_s: Option<f64>,
    /// Objects waiting.
    pub backlog_objects: Option<u64>,
    /// Their bytes.
    pub backlog_bytes: Option<u64>,
}

/// A replication rule's lag over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct LagHistory {
    /// The rule.
    pub name: String,
    /// Oldest first, at most one per sampling interval, for as long as the server has run (at most the last 2 hours).
    pub samples: Vec<LagSample>,
}
