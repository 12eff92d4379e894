//! What the API answers: plain JSON types with OpenAPI schemas.

use chrono::{DateTime, Utc};
use lifeboat_vault::{Id, RecoveryPoint};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
    /// Lifeboat's version.
    pub version: String,
}

/// A retention lock on a point.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockView {
    /// `governance` or `compliance`.
    pub mode: String,
    /// Until when it cannot be deleted.
    pub retain_until: DateTime<Utc>,
    /// Whether it still holds.
    pub active: bool,
}

/// Where a copied point came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineageView {
    /// The source vault's id.
    pub vault: String,
    /// The point's id there.
    pub point: String,
}

/// A recovery point.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointView {
    /// The vault's name in the file.
    pub vault: String,
    /// Full id.
    pub id: String,
    /// The resource.
    pub resource: String,
    /// files, mysql, mysql-binlog, bucket, instance.
    pub kind: String,
    /// When the backup started.
    pub time: DateTime<Utc>,
    /// Logical size in bytes (what a restore writes).
    pub size: u64,
    /// Tags (`plan:NAME`, …).
    pub tags: Vec<String>,
    /// Host it was made on.
    pub host: String,
    /// Paths or sources it covers.
    pub paths: Vec<String>,
    /// The point it was made incrementally from.
    pub parent: Option<String>,
    /// Set when the point is a copy from another vault.
    pub copied_from: Option<LineageView>,
    /// Its retention lock.
    pub lock: Option<LockView>,
    /// `crash` or `application` (instance points), else absent.
    pub consistency: Option<String>,
    /// A database point's mode: `logical` (`mysql`) or `physical`
    /// (`mysql-physical`); absent for other kinds.
    pub mode: Option<String>,
    /// The full id of the point an incremental physical point continues
    /// (absent for a full one and other kinds).
    pub base: Option<String>,
    /// Figures of the backup (files, bytes read/new/stored, duration).
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    /// Protector-specific facts (binlog coordinates, …).
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

impl PointView {
    /// The view of point `id` of vault `vault`.
    pub fn new(vault: &str, id: &Id, p: &RecoveryPoint) -> PointView {
        let now = Utc::now();
        PointView {
            vault: vault.to_string(),
            id: id.to_hex(),
            resource: p.resource.clone(),
            kind: p.kind.clone(),
            time: p.time,
            size: p.summary.size,
            tags: p.tags.clone(),
            host: p.host.clone(),
            paths: p.paths.clone(),
            parent: p.parent.map(|x| x.to_hex()),
            copied_from: p.copied_from.as_ref().map(|l| LineageView {
                vault: l.vault.clone(),
                point: l.point.to_hex(),
            }),
            lock: p.retention.as_ref().map(|r| LockView {
                mode: r.mode.as_str().to_string(),
                retain_until: r.retain_until,
                active: r.retain_until > now,
            }),
            consistency: p.meta["consistency"].as_str().map(str::to_string),
            mode: lifeboat_mysql::protector::point_mode(p).map(str::to_string),
            base: lifeboat_mysql::protector::physical_base(p),
            summary: serde_json::to_value(&p.summary).unwrap_or_default(),
            meta: if p.meta.is_object() {
                p.meta.clone()
            } else {
                serde_json::json!({})
            },
        }
    }
}

/// A vault that could not be read.
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultProblem {
    /// The vault's name.
    pub vault: String,
    /// Why.
    pub error: String,
}

/// `/resources/{name}/points`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointList {
    /// Points, newest first.
    pub points: Vec<PointView>,
    /// Vaults of the file that could not be read (their points are missing above).
    pub unreadable: Vec<VaultProblem>,
}

/// One compliance control.
#[derive(Debug, Serialize, ToSchema)]
pub struct ControlView {
    /// `in-plan`, `rpo:PLAN`, `copy:PLAN:VAULT`, `lock:VAULT`, `archive`, `restorable-window`.
    pub name: String,
    /// Met.
    pub ok: bool,
    /// The measurement, or why not.
    pub detail: String,
}

/// A resource of the file with its protection status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceView {
    /// Its name.
    pub name: String,
    /// files, mysql, bucket, instance.
    pub kind: String,
    /// Its site.
    pub site: Option<String>,
    /// The plans that hold it.
    pub plans: Vec<String>,
    /// Every control met.
    pub compliant: bool,
    /// The newest point's age in seconds (its plans' vaults).
    pub newest_age_s: Option<i64>,
    /// The newest point in any vault of the file (binlog seals aside).
    pub newest_point: Option<PointView>,
    /// The compliance controls.
    pub controls: Vec<ControlView>,
}

/// `/report`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    /// When the vaults were read.
    pub generated: DateTime<Utc>,
    /// Every resource compliant.
    pub compliant: bool,
    /// Per resource.
    pub resources: Vec<ResourceView>,
}

/// A recorded job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// Its number.
    pub id: i64,
    /// backup, restore, copy, …
    pub kind: String,
    /// The resource.
    pub resource: Option<String>,
    /// The plan.
    pub plan: Option<String>,
    /// schedule, catch-up, manual, api, continuous.
    pub trigger: String,
    /// The vault.
    pub vault: Option<String>,
    /// running, succeeded, incomplete, failed, interrupted, cancelled.
    pub status: String,
    /// Start.
    pub started: DateTime<Utc>,
    /// End.
    pub ended: Option<DateTime<Utc>>,
    /// Seconds from start to end (or to now while it runs).
    pub duration_s: f64,
    /// Bytes read (backup) or written (restore).
    pub bytes: Option<u64>,
    /// The point made (or restored).
    pub point: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its log excerpt.
    pub log: String,
    /// The process running it.
    pub pid: u32,
    /// Live progress while it runs: `{unit, items, items_total, bytes, bytes_total, updated}`.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<serde_json::Value>,
    /// A drill's or recovery's whole report: steps with their timings
    /// (`at_s`, `duration_s`, `member`, `step`), sources, RPO and RTO.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
}

impl From<lifeboat_control::store::Job> for JobView {
    fn from(j: lifeboat_control::store::Job) -> Self {
        let end = j.ended.unwrap_or_else(Utc::now);
        JobView {
            duration_s: ((end - j.started).num_milliseconds().max(0) as f64) / 1000.0,
            progress: j
                .progress
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok()),
            report: j
                .report
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok()),
            id: j.id,
            kind: j.kind,
            resource: j.resource,
            plan: j.plan,
            trigger: j.trigger,
            vault: j.vault,
            status: j.status,
            started: j.started,
            ended: j.ended,
            bytes: j.bytes,
            point: j.point,
            error: j.error,
            log: j.log,
            pid: j.pid,
        }
    }
}

/// Filters of `/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only this resource.
    pub resource: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this plan.
    pub plan: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Body of `POST /plans/{plan}/run` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// Only this resource of the plan.
    pub resource: Option<String>,
}

/// A run or restore started as a child process.
#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    /// The child process.
    pub pid: u32,
    /// The jobs it has recorded so far (a run records one per resource, in turn).
    pub jobs: Vec<i64>,
    /// Where to follow the first job.
    pub events: Option<String>,
}

/// Body of `POST /restores`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// The vault's name in the file.
    pub vault: String,
    /// The point: id, unique prefix, or `latest` (with `resource`).
    pub point: String,
    /// Only a point of this resource.
    pub resource: Option<String>,
    /// Only this path of the point (absolute, as backed up).
    pub path: Option<String>,
    /// The target directory (absolute; created when missing).
    pub to: String,
    /// Existing content: `always`, `if-changed`, `never`; absent: a non-empty target is refused.
    pub overwrite: Option<String>,
}

/// Answer of `POST /jobs/{id}/cancel`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelView {
    /// The job.
    pub id: i64,
    /// The process asked to stop.
    pub pid: u32,
}

/// Query of a point's contents.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentsQuery {
    /// files/instance: a directory of the tree (default `/`); mysql: a database (its tables), absent: the databases.
    pub path: Option<String>,
    /// bucket: only keys starting with this.
    pub prefix: Option<String>,
    /// At most this many entries (default 1000, at most 10000).
    #[param(minimum = 0, maximum = 10000)]
    pub limit: Option<u32>,
}

/// One entry of a point's contents.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    /// Path in the tree, database, table or key.
    pub name: String,
    /// file, dir, symlink, …; `database`, `table`; `object`.
    pub kind: String,
    /// Bytes (files, objects, table data).
    pub size: u64,
    /// Modification time, when the tree records one.
    pub mtime: Option<DateTime<Utc>>,
}

/// A kind of resource, from its protector (`/kinds`).
#[derive(Debug, Serialize, ToSchema)]
pub struct KindView {
    /// The resource kind (`kind = "…"` in `lifeboat.toml`).
    pub kind: String,
    /// The point kinds its protector writes; the first is its main one.
    pub point_kinds: Vec<String>,
    /// A title in words.
    pub title: String,
    /// How a point's contents are walked: `tree` (`path`: a directory),
    /// `levels` (`path`: an entry of the first level, none: that level),
    /// `prefix` (`prefix`: keys starting with it); absent: not listed.
    pub browse: Option<String>,
    /// For `levels`: each level's name (`database`, `table`).
    pub levels: Vec<String>,
    /// The console's restore form: `files`, `database`, `bucket`, or
    /// `command-only` (restored with `command`).
    pub restore: String,
    /// The command that restores its points.
    pub command: String,
    /// The command that restores a point of each of its point kinds
    /// (`POINT` stands for the point's id where a kind's names it: a
    /// physical database point's `lifeboat restore mysql POINT --physical
    /// --datadir DIR`).
    pub commands: std::collections::BTreeMap<String, String>,
}

impl KindView {
    /// What protector `p` says of its kind.
    pub fn of(p: &'static dyn lifeboat_protector::Protector) -> KindView {
        let d = p.describe();
        let commands = d
            .point_kinds
            .iter()
            .map(|k| (k.to_string(), p.restore_command(k)))
            .collect();
        KindView {
            commands,
            ..KindView::from(d)
        }
    }
}

impl From<lifeboat_protector::Description> for KindView {
    fn from(d: lifeboat_protector::Description) -> Self {
        KindView {
            commands: Default::default(),
            kind: d.kind.into(),
            point_kinds: d.point_kinds.iter().map(|k| k.to_string()).collect(),
            title: d.title.into(),
            browse: d.browse.map(|b| word(&b)),
            levels: d.levels.iter().map(|l| l.to_string()).collect(),
            restore: word(&d.restore),
            command: d.command.into(),
        }
    }
}

/// The serde word of a protector's enum (`tree`, `command-only`).
fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `/points/{vault}/{id}/contents`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Contents {
    /// The point's kind.
    pub kind: String,
    /// What is listed (a directory, `databases`, a database, a key prefix).
    pub listing: String,
    /// Entries, at most `limit`.
    pub entries: Vec<EntryView>,
    /// Whether more entries exist than were returned.
    pub truncated: bool,
}

/// A vault's declared lock (from the file).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeclaredLock {
    /// governance or compliance.
    pub mode: String,
    /// Minimum retention, e.g. `30d`.
    pub min_retention: Option<String>,
    /// Maximum retention.
    pub max_retention: Option<String>,
}

/// A vault with its figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultView {
    /// Its name.
    pub name: String,
    /// Its location.
    pub location: String,
    /// Its site.
    pub site: Option<String>,
    /// The lock the file declares.
    pub declared_lock: Option<DeclaredLock>,
    /// Figures: points, logical vs stored bytes, dedup/compression ratios, locked points.
    #[schema(value_type = Option<Object>)]
    pub stats: Option<serde_json::Value>,
    /// The lock configuration in the vault (`configured`, mode, retention bounds, immutable).
    #[schema(value_type = Option<Object>)]
    pub lock: Option<serde_json::Value>,
    /// Why the vault could not be read.
    pub error: Option<String>,
}

/// A replication rule and its live status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicationView {
    /// The rule's name.
    pub name: String,
    /// The source bucket resource.
    pub from: String,
    /// The destination location.
    pub to: String,
    /// Only keys under this prefix.
    pub prefix: Option<String>,
    /// What deletions do.
    pub delete: String,
    /// Whether its replicator runs (status fresh, process alive).
    pub running: bool,
    /// Objects waiting.
    pub backlog_objects: Option<u64>,
    /// Their bytes.
    pub backlog_bytes: Option<u64>,
    /// Age of the oldest waiting change.
    pub oldest_pending_s: Option<f64>,
    /// Lag p50 over 5 minutes.
    pub lag_p50_s: Option<f64>,
    /// Lag p99.
    pub lag_p99_s: Option<f64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// The whole status the replicator wrote, when there is one.
    #[schema(value_type = Option<Object>)]
    pub status: Option<serde_json::Value>,
}

/// A plan of the file.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// Its name.
    pub name: String,
    /// Its resources, in order.
    pub resources: Vec<String>,
    /// Cron expression.
    pub schedule: String,
    /// Time zone of the schedule.
    pub timezone: String,
    /// The next scheduled run.
    pub next_run: Option<DateTime<Utc>>,
    /// How long after its time a run may still start.
    pub window: Option<String>,
    /// The vault its points go into.
    pub vault: String,
    /// The vaults each point is copied into.
    pub copies: Vec<String>,
    /// Its retention (`keep_daily`, …).
    #[schema(value_type = Object)]
    pub retention: serde_json::Value,
}
