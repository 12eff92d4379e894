//! `/metrics`: the OpenMetrics text of Lifeboat's series, written by
//! `prometheus-client` (through `lifeboat_vault::openmetrics`).
//!
//! Every series is computed at scrape time from the job store (aggregated
//! by SQLite), the cached snapshot of the vaults (at most 5 s old) and the
//! replication rules' status files; nothing is counted in the server's
//! memory, so a restarted server (or a second one) reports the same.

use std::path::Path;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use lifeboat_bucket::replicate::RuleStatus;
use lifeboat_control::protectors::{ARCHIVE, follows};
use lifeboat_control::store::{DURATION_BUCKETS, JobGroup, JobStore, JobSummary};
use lifeboat_stack::drill::StackVerification;
use lifeboat_stack::exposure::Exposure;
use lifeboat_vault::openmetrics::{CONTENT_TYPE, Histogram, Scrape, Value};

use crate::error::{ErrorBody, blocking};
use crate::snapshot::Snapshot;
use crate::{ApiError, AppState};

/// Seconds from `from` to `to` (0 when `to` is earlier).
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

/// Metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "OpenMetrics text exposition (version 1.0.0)", content_type = "application/openmetrics-text", body = String),
              (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn metrics(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let snap = crate::routes_read::snapshot(&st).await?;
    let s2 = st.clone();
    let (summary, replication, drills) = blocking(move || {
        let store = crate::routes_jobs::open_store(&s2)?;
        let cfg = s2.cfg();
        // Stacks' last drills (none when the file declares no stack).
        let drills = lifeboat_stack::drill::verification(&cfg, &store).unwrap_or_default();
        Ok((
            store.summary()?,
            crate::routes_read::replication_statuses(&s2),
            drills,
        ))
    })
    .await?;
    let now = Utc::now();
    let mut o = Scrape::new();
    job_series(&mut o, &summary);
    let exposure: Vec<_> = snap.exposure.iter().map(|e| e.as_of(now)).collect();
    stack_series(&mut o, &exposure, &drills);
    running_series(&mut o, &summary);
    resource_series(&mut o, &snap, now);
    copy_lag_series(&mut o, &snap, now);
    archive_lag_series(&mut o, &snap, now);
    replication_series(&mut o, &replication);
    o.gauge(
        "lifeboat_vault_snapshot_age_seconds",
        "How old the cached read of the vaults behind these series is.",
    )
    .sample(&[], (now - snap.taken).num_milliseconds() as f64 / 1000.0);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], o.text()))
}

/// The labels of a group of finished jobs.
fn group_labels(g: &JobGroup) -> [(&'static str, &str); 3] {
    [
        ("resource", &g.resource),
        ("kind", &g.kind),
        ("status", &g.status),
    ]
}

/// The finished jobs' counts, bytes and durations by resource, kind and status.
fn job_series(o: &mut Scrape, summary: &JobSummary) {
    let jobs = o.counter(
        "lifeboat_jobs_total",
        "Finished jobs by resource, kind and status.",
    );
    for g in &summary.groups {
        jobs.sample(&group_labels(g), g.count);
    }
    let bytes = o.counter(
        "lifeboat_job_bytes_total",
        "Bytes read (backup) or written (restore) by finished jobs.",
    );
    for g in &summary.groups {
        bytes.sample(&group_labels(g), g.bytes);
    }
    let durations = o.histogram(
        "lifeboat_job_duration_seconds",
        "Duration of finished jobs.",
    );
    for g in &summary.groups {
        let h = Histogram::from_cumulative(DURATION_BUCKETS, &g.buckets, g.count, g.duration_sum_s);
        durations.sample(&group_labels(g), h);
    }
}

/// Each stack's live RPO exposure (and its members') and its last drill.
fn stack_series(o: &mut Scrape, exposure: &[Exposure], drills: &[StackVerification]) {
    let stacks = o.gauge(
        "lifeboat_stack_rpo_exposure_seconds",
        "Seconds of the stack's data the site does not hold yet: what a failure now would lose (its databases' when it has any).",
    );
    for e in exposure {
        if let Some(s) = e.seconds {
            stacks.sample(&[("stack", &e.stack), ("site", &e.site)], s);
        }
    }
    let members = o.gauge(
        "lifeboat_member_rpo_exposure_seconds",
        "Seconds since the newest data of a stack member that the site holds.",
    );
    for e in exposure {
        for m in &e.members {
            if let Some(s) = m.seconds {
                let l = [
                    ("stack", &*e.stack),
                    ("site", &e.site),
                    ("member", &m.member),
                ];
                members.sample(&l, s);
            }
        }
    }
    let verified = o.gauge(
        "lifeboat_stack_verified",
        "1 when the stack's last drill passed within its objectives and after its last change.",
    );
    for d in drills {
        verified.sample(&[("stack", &d.stack)], d.compliant);
    }
    let rpo = o.gauge(
        "lifeboat_stack_last_drill_rpo_seconds",
        "RPO achieved by the stack's last drill.",
    );
    for d in drills {
        if let Some(v) = d.summary.as_ref().and_then(|s| s.rpo_s) {
            rpo.sample(&[("stack", &d.stack)], v);
        }
    }
    let rto = o.gauge(
        "lifeboat_stack_last_drill_rto_seconds",
        "RTO achieved by the stack's last drill.",
    );
    for d in drills {
        if let Some(v) = d.summary.as_ref().and_then(|s| s.rto_s) {
            rto.sample(&[("stack", &d.stack)], v);
        }
    }
    let when = o.gauge(
        "lifeboat_stack_last_drill_timestamp_seconds",
        "When the stack's last drill started.",
    );
    for d in drills {
        if let Some((_, at)) = d.last_drill {
            when.sample(&[("stack", &d.stack)], at.timestamp() as f64);
        }
    }
}

/// Jobs running now and each resource's last successful backup.
fn running_series(o: &mut Scrape, summary: &JobSummary) {
    let running = o.gauge("lifeboat_jobs_running", "Jobs running now, by kind.");
    for (k, n) in &summary.running {
        running.sample(&[("kind", k)], *n);
    }
    let last = o.gauge(
        "lifeboat_last_success_timestamp_seconds",
        "End of the last successful backup job of each resource (Unix time).",
    );
    for (r, t) in &summary.last_success {
        last.sample(&[("resource", r)], t.timestamp_millis() as f64 / 1000.0);
    }
}

/// Each resource's newest point and compliance, and each vault's readability.
fn resource_series(o: &mut Scrape, snap: &Snapshot, now: DateTime<Utc>) {
    let age = o.gauge(
        "lifeboat_newest_point_age_seconds",
        "Age of each resource's newest recovery point in any vault of the file.",
    );
    for r in snap.config.resources.keys() {
        if let Some((_, _, p)) = snap.newest(r) {
            let seconds = (now - p.time).num_milliseconds() as f64 / 1000.0;
            age.sample(&[("resource", r)], seconds);
        }
    }
    let compliant = o.gauge(
        "lifeboat_resource_compliant",
        "1 when every compliance control of the resource is met (lifeboat report).",
    );
    for r in &snap.report {
        compliant.sample(&[("resource", &r.resource)], r.compliant);
    }
    let readable = o.gauge(
        "lifeboat_vault_readable",
        "1 when the vault could be opened and listed.",
    );
    for (v, r) in &snap.points {
        readable.sample(&[("vault", v)], r.is_ok());
    }
}

/// The newest point of `resource` in `vault`: of its binlog archive when
/// `binlog`, else of its other kinds.
fn newest_in(snap: &Snapshot, vault: &str, resource: &str, binlog: bool) -> Option<DateTime<Utc>> {
    let points = snap.points.get(vault)?.as_ref().ok()?;
    points
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.resource == resource && (p.kind == lifeboat_mysql::KIND_BINLOG) == binlog)
        .map(|p| p.time)
        .max()
}

/// Copy lag: how far the newest copy in a copy action's vault is behind the
/// newest point in the plan's vault (0 when the copy is current).
fn copy_lag_series(o: &mut Scrape, snap: &Snapshot, now: DateTime<Utc>) {
    let lag = o.gauge(
        "lifeboat_copy_lag_seconds",
        "Per resource and copy target: newest point in the plan's vault minus newest copy in the target.",
    );
    for (pn, p) in &snap.config.plans {
        for res in &p.resources {
            let Some(src) = newest_in(snap, &p.vault, res, false) else {
                continue;
            };
            for c in &p.copy {
                let behind = match newest_in(snap, &c.vault, res, false) {
                    Some(t) => seconds_between(t, src),
                    None => seconds_between(src, now),
                };
                lag.sample(
                    &[("resource", res), ("plan", pn), ("vault", &c.vault)],
                    behind,
                );
            }
        }
    }
}

/// Per database with a binlog archive: the age of its newest segment.
fn archive_lag_series(o: &mut Scrape, snap: &Snapshot, now: DateTime<Utc>) {
    let lag = o.gauge(
        "lifeboat_binlog_archive_lag_seconds",
        "Per database with an archive: age of the newest archived binlog segment.",
    );
    for name in snap.config.resources.keys() {
        let archive = follows(&snap.config, name, Path::new("spool"))
            .into_iter()
            .find(|f| f.follow.job == ARCHIVE);
        if let Some(t) = archive
            .and_then(|a| a.vault)
            .and_then(|v| newest_in(snap, &v, name, true))
        {
            lag.sample(&[("resource", name)], seconds_between(t, now));
        }
    }
}

/// The labels of a bucket replication rule.
fn rule_labels(s: &RuleStatus) -> [(&'static str, &str); 3] {
    [("rule", &s.rule), ("from", &s.from), ("to", &s.to)]
}

/// Each bucket replication rule's lag, backlog and whether it runs.
fn replication_series(o: &mut Scrape, replication: &[RuleStatus]) {
    let lag = o.gauge(
        "lifeboat_replication_lag_seconds",
        "Bucket replication lag (source write to visible at the destination) over 5 minutes.",
    );
    for s in replication {
        let [rule, from, to] = rule_labels(s);
        for (q, v) in [("0.5", s.lag_p50_s), ("0.99", s.lag_p99_s)] {
            if let Some(v) = v {
                lag.sample(&[rule, from, to, ("quantile", q)], v);
            }
        }
    }
    type Field = fn(&RuleStatus) -> Value;
    let gauges: [(&'static str, &'static str, Field); 3] = [
        (
            "lifeboat_replication_backlog_objects",
            "Objects waiting to be replicated.",
            |s| s.backlog_objects.into(),
        ),
        (
            "lifeboat_replication_backlog_bytes",
            "Bytes waiting to be replicated.",
            |s| s.backlog_bytes.into(),
        ),
        (
            "lifeboat_replication_running",
            "1 when the rule's replicator runs (fresh status, live process).",
            |s| s.running.into(),
        ),
    ];
    for (name, help, field) in gauges {
        let g = o.gauge(name, help);
        for s in replication {
            g.sample(&rule_labels(s), field(s));
        }
    }
}
