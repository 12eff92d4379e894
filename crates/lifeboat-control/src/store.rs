//! The job history: every job with kind, resource, plan, trigger, start,
//! end, status, bytes, point id, error and a log excerpt.
//!
//! Behind [`JobStore`] so that a shared server database can replace the
//! embedded SQLite file ([`SqliteStore`]) when one daemon per site is not
//! enough: implement the trait over that database's client, with the same
//! schema and migrations. The store is history only: deleting it loses no
//! recovery point.
//!
//! A job is written `running` when it starts (with the process id and that
//! process's start time) and finished when it ends; a job left `running` by a
//! process that no longer exists (killed) is marked `interrupted` by
//! [`JobStore::mark_interrupted`], which every opener calls first.
//!
//! The embedded SQLite store and its migrations are in `sqlite`; `watch`
//! publishes the jobs' changes, whatever process commits them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

mod sqlite;
pub mod watch;
pub use sqlite::{SqliteStore, job_process_alive, process_start};
pub use watch::JobWatch;

/// Status of a job.
pub mod status {
    /// Started, not finished.
    pub const RUNNING: &str = "running";
    /// Finished well.
    pub const SUCCEEDED: &str = "succeeded";
    /// Finished with warnings (some entries not backed up).
    pub const INCOMPLETE: &str = "incomplete";
    /// Failed.
    pub const FAILED: &str = "failed";
    /// Its process died while it ran.
    pub const INTERRUPTED: &str = "interrupted";
    /// Stopped on request (`jobs cancel`, SIGINT/SIGTERM) before it made a point.
    pub const CANCELLED: &str = "cancelled";
    /// Not started: the previous run of the same plan (or retention) was still going.
    pub const SKIPPED: &str = "skipped";
    /// All of them.
    pub const ALL: &[&str] = &[
        RUNNING,
        SUCCEEDED,
        INCOMPLETE,
        FAILED,
        INTERRUPTED,
        CANCELLED,
        SKIPPED,
    ];
}

/// A job about to start.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// `backup`, `copy`, `restore`, `replicate`, `prune`, `verify`, `drill`.
    pub kind: String,
    /// The resource's name.
    pub resource: Option<String>,
    /// The plan it belongs to.
    pub plan: Option<String>,
    /// `schedule`, `catch-up`, `manual`, `api`, `continuous`.
    pub trigger: String,
    /// The vault it writes to.
    pub vault: Option<String>,
}

/// How a job ended.
#[derive(Debug, Clone, Default)]
pub struct JobEnd {
    /// One of [`status`].
    pub status: String,
    /// Bytes read from the resource.
    pub bytes: Option<u64>,
    /// The recovery point made.
    pub point: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The last lines of its log (warnings, notes), at most 4 KiB.
    pub log: String,
    /// A structured report (JSON text), kept whole: a drill's or a
    /// recovery's report with its per-step timings.
    pub report: Option<String>,
}

/// A recorded job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its number.
    pub id: i64,
    /// See [`NewJob::kind`].
    pub kind: String,
    /// The resource.
    pub resource: Option<String>,
    /// The plan.
    pub plan: Option<String>,
    /// What started it.
    pub trigger: String,
    /// The vault.
    pub vault: Option<String>,
    /// One of [`status`].
    pub status: String,
    /// Start.
    pub started: DateTime<Utc>,
    /// End.
    pub ended: Option<DateTime<Utc>>,
    /// Bytes read.
    pub bytes: Option<u64>,
    /// The point made.
    pub point: Option<String>,
    /// The error.
    pub error: Option<String>,
    /// Log excerpt.
    pub log: String,
    /// The process that ran it.
    pub pid: u32,
    /// Live progress of a running job (JSON text: see [`crate::progress`]),
    /// written by the job's process at most once a second.
    pub progress: Option<String>,
    /// Its structured report (JSON text), when its kind writes one (drill,
    /// recover); serialized as the JSON it holds.
    #[serde(serialize_with = "json_text")]
    pub report: Option<String>,
}

fn json_text<S: serde::Serializer>(
    v: &Option<String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let parsed: Option<serde_json::Value> = v.as_deref().and_then(|t| serde_json::from_str(t).ok());
    parsed.serialize(s)
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this resource.
    pub resource: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this plan.
    pub plan: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

/// Upper bounds (seconds) of the job-duration histogram buckets.
pub const DURATION_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 10800.0];

/// Figures of the finished jobs of one resource, kind and status (for metrics).
#[derive(Debug, Clone, Serialize)]
pub struct JobGroup {
    /// The resource (empty for none).
    pub resource: String,
    /// The kind.
    pub kind: String,
    /// The status.
    pub status: String,
    /// How many.
    pub count: u64,
    /// Σ bytes.
    pub bytes: u64,
    /// Σ durations (seconds).
    pub duration_sum_s: f64,
    /// How many took at most each of [`DURATION_BUCKETS`].
    pub buckets: Vec<u64>,
}

/// Figures of the whole history (for metrics).
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobSummary {
    /// Finished jobs grouped by resource, kind and status.
    pub groups: Vec<JobGroup>,
    /// Per resource, the end of its last successful backup.
    pub last_success: Vec<(String, DateTime<Utc>)>,
    /// Jobs running now, per kind.
    pub running: Vec<(String, u64)>,
}

/// The job history (SQLite now; a server database later).
pub trait JobStore {
    /// Records a job as running; returns its id.
    fn start(&self, job: &NewJob) -> Result<i64>;
    /// Records how it ended.
    fn finish(&self, id: i64, end: &JobEnd) -> Result<()>;
    /// One job.
    fn get(&self, id: i64) -> Result<Option<Job>>;
    /// Jobs, newest first.
    fn list(&self, filter: &JobFilter) -> Result<Vec<Job>>;
    /// Marks `running` jobs whose process is gone as `interrupted`; returns how many.
    fn mark_interrupted(&self) -> Result<usize>;
    /// Records a running job's progress (JSON text).
    fn set_progress(&self, id: i64, progress: &str) -> Result<()>;
    /// Records that process `pid` runs job `id` (a daemon records the jobs
    /// of its children: `jobs cancel` must signal the child, never the daemon).
    fn set_process(&self, id: i64, pid: u32) -> Result<()>;
    /// The jobs process `pid`, started at `start` (its [`process_start`]),
    /// recorded, oldest first (how a launcher learns the ids of the jobs its
    /// child started; the start time tells a reused pid's old jobs apart).
    fn jobs_of_process(&self, pid: u32, start: &str) -> Result<Vec<Job>>;
    /// Figures of the whole history, computed by the database.
    fn summary(&self) -> Result<JobSummary>;
}
