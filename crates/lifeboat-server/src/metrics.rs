//! `/metrics`: Prometheus text exposition, written by hand.
//!
//! Every series is computed at scrape time from the job store (aggregated
//! by SQLite), the cached snapshot of the vaults (at most 5 s old) and the
//! replication rules' status files; nothing is counted in the server's
//! memory, so a restarted server (or a second one) reports the same. A
//! metrics library (`prometheus-client`) would add a registry of
//! long-lived counters this model does not need; the exposition format is
//! small, and its escaping is done below.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::Utc;
use lifeboat_config::ResourceKind;
use lifeboat_control::store::{DURATION_BUCKETS, JobStore};

use crate::error::{ErrorBody, blocking};
use crate::{ApiError, AppState};

/// A label value, escaped (`\`, `"`, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, l: &[(&str, &str)], v: f64) {
        let _ = writeln!(self.0, "{name}{} {v}", labels(l));
    }
}

/// Metrics in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Prometheus text exposition (version 0.0.4)", content_type = "text/plain", body = String),
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
    let mut o = Out(String::new());

    o.head(
        "lifeboat_jobs_total",
        "counter",
        "Finished jobs by resource, kind and status.",
    );
    for g in &summary.groups {
        let l = [
            ("resource", g.resource.as_str()),
            ("kind", g.kind.as_str()),
            ("status", g.status.as_str()),
        ];
        o.sample("lifeboat_jobs_total", &l, g.count as f64);
    }
    o.head(
        "lifeboat_job_bytes_total",
        "counter",
        "Bytes read (backup) or written (restore) by finished jobs.",
    );
    for g in &summary.groups {
        let l = [
            ("resource", g.resource.as_str()),
            ("kind", g.kind.as_str()),
            ("status", g.status.as_str()),
        ];
        o.sample("lifeboat_job_bytes_total", &l, g.bytes as f64);
    }
    o.head(
        "lifeboat_job_duration_seconds",
        "histogram",
        "Duration of finished jobs.",
    );
    for g in &summary.groups {
        let base = [
            ("resource", g.resource.as_str()),
            ("kind", g.kind.as_str()),
            ("status", g.status.as_str()),
        ];
        for (b, n) in DURATION_BUCKETS.iter().zip(&g.buckets) {
            let le = b.to_string();
            let mut l = base.to_vec();
            l.push(("le", &le));
            o.sample("lifeboat_job_duration_seconds_bucket", &l, *n as f64);
        }
        let mut l = base.to_vec();
        l.push(("le", "+Inf"));
        o.sample("lifeboat_job_duration_seconds_bucket", &l, g.count as f64);
        o.sample("lifeboat_job_duration_seconds_sum", &base, g.duration_sum_s);
        o.sample("lifeboat_job_duration_seconds_count", &base, g.count as f64);
    }
    let exposure: Vec<_> = snap.exposure.iter().map(|e| e.as_of(now)).collect();
    o.head(
        "lifeboat_stack_rpo_exposure_seconds",
        "gauge",
        "Seconds of the stack's data the site does not hold yet: what a failure now would lose (its databases' when it has any).",
    );
    for e in &exposure {
        if let Some(s) = e.seconds {
            o.sample(
                "lifeboat_stack_rpo_exposure_seconds",
                &[("stack", &e.stack), ("site", &e.site)],
                s,
            );
        }
    }
    o.head(
        "lifeboat_member_rpo_exposure_seconds",
        "gauge",
        "Seconds since the newest data of a stack member that the site holds.",
    );
    for e in &exposure {
        for m in &e.members {
            if let Some(s) = m.seconds {
                o.sample(
                    "lifeboat_member_rpo_exposure_seconds",
                    &[
                        ("stack", &e.stack),
                        ("site", &e.site),
                        ("member", &m.member),
                    ],
                    s,
                );
            }
        }
    }
    o.head(
        "lifeboat_stack_verified",
        "gauge",
        "1 when the stack's last drill passed within its objectives and after its last change.",
    );
    for d in &drills {
        o.sample(
            "lifeboat_stack_verified",
            &[("stack", &d.stack)],
            if d.compliant { 1.0 } else { 0.0 },
        );
    }
    o.head(
        "lifeboat_stack_last_drill_rpo_seconds",
        "gauge",
        "RPO achieved by the stack's last drill.",
    );
    for d in &drills {
        if let Some(v) = d.summary.as_ref().and_then(|s| s.rpo_s) {
            o.sample(
                "lifeboat_stack_last_drill_rpo_seconds",
                &[("stack", &d.stack)],
                v,
            );
        }
    }
    o.head(
        "lifeboat_stack_last_drill_rto_seconds",
        "gauge",
        "RTO achieved by the stack's last drill.",
    );
    for d in &drills {
        if let Some(v) = d.summary.as_ref().and_then(|s| s.rto_s) {
            o.sample(
                "lifeboat_stack_last_drill_rto_seconds",
                &[("stack", &d.stack)],
                v,
            );
        }
    }
    o.head(
        "lifeboat_stack_last_drill_timestamp_seconds",
        "gauge",
        "When the stack's last drill started.",
    );
    for d in &drills {
        if let Some((_, at)) = d.last_drill {
            o.sample(
                "lifeboat_stack_last_drill_timestamp_seconds",
                &[("stack", &d.stack)],
                at.timestamp() as f64,
            );
        }
    }
    o.head(
        "lifeboat_jobs_running",
        "gauge",
        "Jobs running now, by kind.",
    );
    for (k, n) in &summary.running {
        o.sample("lifeboat_jobs_running", &[("kind", k)], *n as f64);
    }
    o.head(
        "lifeboat_last_success_timestamp_seconds",
        "gauge",
        "End of the last successful backup job of each resource (Unix time).",
    );
    for (r, t) in &summary.last_success {
        o.sample(
            "lifeboat_last_success_timestamp_seconds",
            &[("resource", r)],
            t.timestamp_millis() as f64 / 1000.0,
        );
    }

    o.head(
        "lifeboat_newest_point_age_seconds",
        "gauge",
        "Age of each resource's newest recovery point in any vault of the file.",
    );
    for r in snap.config.resources.keys() {
        if let Some((_, _, p)) = snap.newest(r) {
            o.sample(
                "lifeboat_newest_point_age_seconds",
                &[("resource", r)],
                (now - p.time).num_milliseconds() as f64 / 1000.0,
            );
        }
    }
    o.head(
        "lifeboat_resource_compliant",
        "gauge",
        "1 when every compliance control of the resource is met (lifeboat report).",
    );
    for r in &snap.report {
        o.sample(
            "lifeboat_resource_compliant",
            &[("resource", &r.resource)],
            if r.compliant { 1.0 } else { 0.0 },
        );
    }
    o.head(
        "lifeboat_vault_readable",
        "gauge",
        "1 when the vault could be opened and listed.",
    );
    for (v, r) in &snap.points {
        o.sample(
            "lifeboat_vault_readable",
            &[("vault", v)],
            if r.is_ok() { 1.0 } else { 0.0 },
        );
    }

    // Copy lag: how far the newest copy in a copy action's vault is behind
    // the newest point in the plan's vault (0 when the copy is current).
    o.head(
        "lifeboat_copy_lag_seconds",
        "gauge",
        "Per resource and copy target: newest point in the plan's vault minus newest copy in the target.",
    );
    let newest_in = |vault: &str, res: &str, binlog: bool| {
        snap.points
            .get(vault)
            .and_then(|r| r.as_ref().ok())
            .and_then(|ps| {
                ps.iter()
                    .map(|(_, p)| p)
                    .filter(|p| {
                        p.resource == res && (p.kind == lifeboat_mysql::KIND_BINLOG) == binlog
                    })
                    .map(|p| p.time)
                    .max()
            })
    };
    for (pn, p) in &snap.config.plans {
        for res in &p.resources {
            let Some(src) = newest_in(&p.vault, res, false) else {
                continue;
            };
            for c in &p.copy {
                let lag = match newest_in(&c.vault, res, false) {
                    Some(t) => (src - t).num_milliseconds().max(0) as f64 / 1000.0,
                    None => (now - src).num_milliseconds().max(0) as f64 / 1000.0,
                };
                o.sample(
                    "lifeboat_copy_lag_seconds",
                    &[("resource", res), ("plan", pn), ("vault", &c.vault)],
                    lag,
                );
            }
        }
    }
    o.head(
        "lifeboat_binlog_archive_lag_seconds",
        "gauge",
        "Per database with an archive: age of the newest archived binlog segment.",
    );
    for (name, r) in &snap.config.resources {
        if let ResourceKind::Mysql {
            archive: Some(a), ..
        } = &r.kind
        {
            let vault = a.vault.clone().or_else(|| {
                snap.config
                    .plans_of(name)
                    .first()
                    .map(|p| snap.config.plans[*p].vault.clone())
            });
            if let Some(t) = vault.and_then(|v| newest_in(&v, name, true)) {
                o.sample(
                    "lifeboat_binlog_archive_lag_seconds",
                    &[("resource", name)],
                    (now - t).num_milliseconds().max(0) as f64 / 1000.0,
                );
            }
        }
    }

    o.head(
        "lifeboat_replication_lag_seconds",
        "gauge",
        "Bucket replication lag (source write to visible at the destination) over 5 minutes.",
    );
    for s in &replication {
        for (q, v) in [("0.5", s.lag_p50_s), ("0.99", s.lag_p99_s)] {
            if let Some(v) = v {
                o.sample(
                    "lifeboat_replication_lag_seconds",
                    &[
                        ("rule", &s.rule),
                        ("from", &s.from),
                        ("to", &s.to),
                        ("quantile", q),
                    ],
                    v,
                );
            }
        }
    }
    o.head(
        "lifeboat_replication_backlog_objects",
        "gauge",
        "Objects waiting to be replicated.",
    );
    for s in &replication {
        o.sample(
            "lifeboat_replication_backlog_objects",
            &[("rule", &s.rule), ("from", &s.from), ("to", &s.to)],
            s.backlog_objects as f64,
        );
    }
    o.head(
        "lifeboat_replication_backlog_bytes",
        "gauge",
        "Bytes waiting to be replicated.",
    );
    for s in &replication {
        o.sample(
            "lifeboat_replication_backlog_bytes",
            &[("rule", &s.rule), ("from", &s.from), ("to", &s.to)],
            s.backlog_bytes as f64,
        );
    }
    o.head(
        "lifeboat_replication_running",
        "gauge",
        "1 when the rule's replicator runs (fresh status, live process).",
    );
    for s in &replication {
        o.sample(
            "lifeboat_replication_running",
            &[("rule", &s.rule), ("from", &s.from), ("to", &s.to)],
            if s.running { 1.0 } else { 0.0 },
        );
    }
    o.head(
        "lifeboat_vault_snapshot_age_seconds",
        "gauge",
        "How old the cached read of the vaults behind these series is.",
    );
    o.sample(
        "lifeboat_vault_snapshot_age_seconds",
        &[],
        (now - snap.taken).num_milliseconds() as f64 / 1000.0,
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        o.0,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            super::labels(&[("r", "a\"b\\c\nd")]),
            "{r=\"a\\\"b\\\\c\\nd\"}"
        );
    }
}
