//! Stacks and their recoveries: each stack with its members' protection,
//! objectives, last drill and live RPO exposure; starting a drill (a child
//! `lifeboat drill`, like a plan's run); the drill and recovery reports
//! with per-step timings, read from the jobs of kind `drill` and `recover`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use lifeboat_control::store::{JobFilter, JobStore};

use crate::error::{ErrorBody, blocking};
use crate::routes_jobs::{open_store, start};
use crate::views::{JobView, Started};
use crate::views_stacks::*;
use crate::{ApiError, AppState};

/// The file's stacks: members, objectives, declared drills, the last drill against the objectives, live RPO exposure.
#[utoipa::path(get, path = "/api/v1/stacks", tag = "stacks",
    responses((status = 200, body = Vec<StackView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stacks(State(st): State<AppState>) -> Result<Json<Vec<StackView>>, ApiError> {
    let snap = crate::routes_read::snapshot(&st).await?;
    blocking(move || {
        let cfg = st.cfg();
        let store = open_store(&st)?;
        let verified = lifeboat_stack::drill::verification(&cfg, &store)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let now = chrono::Utc::now();
        Ok(Json(
            cfg.stacks
                .iter()
                .map(|(name, s)| {
                    let v = verified.iter().find(|v| &v.stack == name);
                    StackView {
                        name: name.clone(),
                        members: s
                            .members
                            .iter()
                            .map(|m| {
                                let r = snap.report.iter().find(|r| &r.resource == m);
                                StackMemberView {
                                    name: m.clone(),
                                    kind: r.map(|r| r.kind.clone()).unwrap_or_default(),
                                    optional: s.optional.contains(m),
                                    compliant: r.is_some_and(|r| r.compliant),
                                    newest_age_s: r.and_then(|r| r.newest_age_s),
                                }
                            })
                            .collect(),
                        objectives: ObjectivesView {
                            rpo_s: s.objectives.rpo.map(|d| d.0),
                            rto_s: s.objectives.rto.map(|d| d.0),
                        },
                        check: s.check.clone(),
                        drills: cfg
                            .drills
                            .iter()
                            .filter(|(_, d)| &d.stack == name)
                            .map(|(n, d)| DrillDecl {
                                name: n.clone(),
                                site: d.to.clone(),
                                schedule: d.schedule.as_ref().map(|s| s.expr.clone()),
                                pick: match d.pick {
                                    lifeboat_config::Pick::Latest => "latest".into(),
                                    lifeboat_config::Pick::RandomWithin(w) => {
                                        format!("random-within:{w}")
                                    }
                                },
                            })
                            .collect(),
                        verification: VerificationView {
                            compliant: v.is_some_and(|v| v.compliant),
                            last_drill_job: v.and_then(|v| v.last_drill.map(|(id, _)| id)),
                            last_drill_at: v.and_then(|v| v.last_drill.map(|(_, at)| at)),
                            passed: v.and_then(|v| v.summary.as_ref().map(|s| s.passed)),
                            rpo_s: v.and_then(|v| v.summary.as_ref().and_then(|s| s.rpo_s)),
                            rto_s: v.and_then(|v| v.summary.as_ref().and_then(|s| s.rto_s)),
                            failed: v.map(|v| v.failed.clone()).unwrap_or_default(),
                        },
                        rpo_exposure_s: snap
                            .exposure
                            .iter()
                            .filter(|e| &e.stack == name)
                            .filter_map(|e| e.as_of(now).seconds)
                            .min_by(f64::total_cmp),
                        exposure: snap
                            .exposure
                            .iter()
                            .filter(|e| &e.stack == name)
                            .map(|e| {
                                let e = e.as_of(now);
                                SiteExposureView {
                                    site: e.site,
                                    seconds: e.seconds,
                                    error: e.error,
                                    members: e
                                        .members
                                        .into_iter()
                                        .map(|m| MemberExposureView {
                                            member: m.member,
                                            kind: m.kind,
                                            data_time: m.data_time,
                                            seconds: m.seconds,
                                        })
                                        .collect(),
                                }
                            })
                            .collect(),
                    }
                })
                .collect(),
        ))
    })
    .await
}

/// Starts a drill of a stack now (a child `lifeboat drill`: recovery into a
/// scratch stack, its check, teardown, a `drill` job); answers once the
/// child has recorded its job.
#[utoipa::path(post, path = "/api/v1/stacks/{name}/drill", tag = "stacks",
    params(("name" = String, Path, description = "The stack's name in the file")),
    request_body(content = Option<DrillBody>, description = "A declared drill, or the site to recover from"),
    responses((status = 202, body = Started), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn drill(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Option<Json<DrillBody>>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    let b = body.map(|b| b.0).unwrap_or_default();
    let cfg = st.cfg();
    if !cfg.stacks.contains_key(&name) {
        return Err(ApiError::not_found(format!(
            "there is no stack `{name}` in the file (stacks: {})",
            cfg.stacks.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let declared: Vec<&String> = cfg
        .drills
        .iter()
        .filter(|(_, d)| d.stack == name)
        .map(|(n, _)| n)
        .collect();
    let args: Vec<String> = match (&b.drill, &b.site) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give a declared `drill` or a `site`, not both",
            ));
        }
        (Some(d), None) => {
            if !declared.contains(&d) {
                return Err(ApiError::bad_request(format!(
                    "there is no drill `{d}` of stack `{name}` in the file (its drills: {})",
                    if declared.is_empty() {
                        "none".to_string()
                    } else {
                        declared
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )));
            }
            vec!["--drill".into(), d.clone()]
        }
        (None, Some(site)) => {
            if !cfg.sites.contains_key(site) {
                return Err(ApiError::bad_request(format!(
                    "there is no site `{site}` in the file (sites: {})",
                    cfg.sites.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            vec!["--stack".into(), name.clone(), "--to".into(), site.clone()]
        }
        (None, None) => match declared.as_slice() {
            [d] => vec!["--drill".into(), (*d).clone()],
            _ => {
                return Err(ApiError::bad_request(format!(
                    "stack `{name}` has {} declared drills: name a `drill` or a `site`",
                    declared.len()
                )));
            }
        },
    };
    let mut all = vec!["--quiet", "drill"];
    all.extend(args.iter().map(String::as_str));
    all.extend(["--trigger", lifeboat_control::launch::trigger::API]);
    let cmd = st.0.launcher.command(&all);
    let started = start(&st, cmd, &format!("drill of stack `{name}`")).await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// The report of a `drill` or `recover` job: its whole recovery report
/// (`lifeboat_stack::drill::report_of`); for a drill recorded before reports
/// were kept, its summary line and its step lines.
fn recovery_view(j: lifeboat_control::store::Job) -> RecoveryView {
    use lifeboat_control::store::status;
    let report = lifeboat_stack::drill::report_of(&j);
    let summary = lifeboat_stack::drill::summary_of(&j);
    let steps = match &report {
        Some(r) => r
            .steps
            .iter()
            .map(|s| StepView {
                step: s.step.clone(),
                member: s.member.clone(),
                at_s: s.at_s,
                duration_s: s.duration_s,
            })
            .collect(),
        None => old_steps(&j.log),
    };
    RecoveryView {
        kind: j.kind.clone(),
        stack: j.resource.clone(),
        passed: summary
            .as_ref()
            .map(|s| s.passed)
            .or_else(|| (j.status != status::RUNNING).then_some(j.status == status::SUCCEEDED)),
        rpo_s: report
            .as_ref()
            .and_then(|r| r.rpo_s)
            .or(summary.as_ref().and_then(|s| s.rpo_s)),
        rto_s: report
            .as_ref()
            .map(|r| r.rto_s)
            .or(summary.as_ref().and_then(|s| s.rto_s)),
        steps,
        job: JobView::from(j),
    }
}

/// Steps from a log's `  0.12 s    1.50 s member: step` lines.
fn old_steps(log: &str) -> Vec<StepView> {
    log.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let at_s = it.next()?.parse().ok()?;
            (it.next()? == "s").then_some(())?;
            let duration_s = it.next()?.parse().ok()?;
            (it.next()? == "s").then_some(())?;
            let rest: Vec<&str> = it.collect();
            let rest = rest.join(" ");
            let (member, step) = match rest.split_once(": ") {
                Some((m, s)) if !m.contains(' ') => (Some(m.to_string()), s.to_string()),
                _ => (None, rest),
            };
            Some(StepView {
                step,
                member,
                at_s,
                duration_s,
            })
        })
        .collect()
}

/// Drill and recovery reports with per-step timings, newest first.
#[utoipa::path(get, path = "/api/v1/reports", tag = "stacks",
    params(ReportQuery),
    responses((status = 200, body = Vec<RecoveryView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reports(
    State(st): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> Result<Json<Vec<RecoveryView>>, ApiError> {
    if let Some(k) = &q.kind
        && k != "drill"
        && k != "recover"
    {
        return Err(ApiError::bad_request(format!(
            "unknown kind `{k}`: use drill or recover"
        )));
    }
    blocking(move || {
        let store = open_store(&st)?;
        let limit = q.limit.unwrap_or(50).min(500) as usize;
        let list = store.list(&JobFilter {
            resource: q.stack.clone(),
            limit: Some(5000),
            ..Default::default()
        })?;
        Ok(Json(
            list.into_iter()
                .filter(|j| j.kind == "drill" || j.kind == "recover")
                .filter(|j| q.kind.as_ref().is_none_or(|k| &j.kind == k))
                .take(limit)
                .map(recovery_view)
                .collect(),
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_drill_log_gives_its_steps() {
        let log = "drill: {\"passed\":true}\n   0.00 s    1.25 s db: restore snapshot\n   1.25 s    0.50 s start instance shop\nrecovery failed: x\n";
        let s = old_steps(log);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].member.as_deref(), Some("db"));
        assert_eq!(s[0].step, "restore snapshot");
        assert_eq!((s[1].at_s, s[1].duration_s), (1.25, 0.5));
        assert_eq!(s[1].member, None);
    }
}
