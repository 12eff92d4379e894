//! Plan runs: a child `lifeboat jobs run --plan P --trigger T` each, at most
//! one per plan at a time. A run due while the previous run of the same plan
//! is still going is not started; the skip is recorded as a job (status
//! `skipped`) and sent to the plan's webhook. At the end of a run, the jobs
//! it recorded (found by its process id) are sent to the webhook, and the
//! plan's healthcheck is pinged (`/start` at the start; the URL itself when
//! every job succeeded, `/fail` otherwise).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_config::Config;
use lifeboat_control::store::{Job, JobEnd, JobStore, NewJob, status};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::Ctx;

/// Plan → (process, start) of its run going on.
type Going = Arc<Mutex<BTreeMap<String, (u32, DateTime<Utc>)>>>;

/// The plans' runs going on now.
#[derive(Default)]
pub struct Runs {
    going: Going,
    tasks: JoinSet<()>,
}

impl Runs {
    /// Starts a run of `plan` now (or records why not).
    pub fn start(&mut self, ctx: &Ctx, cfg: &Config, plan: &str, trigger: &str) {
        while self.tasks.try_join_next().is_some() {}
        let Some(p) = cfg.plans.get(plan) else {
            return;
        };
        let busy = self
            .going
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(plan)
            .copied();
        if let Some((pid, since)) = busy {
            skip(ctx, p, plan, trigger, pid, since);
            return;
        }
        let mut cmd = tokio::process::Command::from(ctx.launcher.plan_command(plan, None, trigger));
        cmd.kill_on_drop(false);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                ctx.log.event(
                    "run-failed-to-start",
                    format!(
                        "plan `{plan}`: cannot start `{} jobs run`: {e}",
                        ctx.launcher.exe.display()
                    ),
                    serde_json::json!({"plan": plan, "error": e.to_string()}),
                );
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        let started = Utc::now();
        // Read before the child can be reaped: its jobs are told by pid and
        // start time, never by a pid that may be reused.
        let pid_start = lifeboat_control::store::process_start(pid).unwrap_or_default();
        self.going
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(plan.to_string(), (pid, started));
        ctx.children.add(pid, &format!("run of plan {plan}"));
        ctx.log.event(
            "run-started",
            format!("plan `{plan}`: run started ({trigger}), process {pid}"),
            serde_json::json!({"plan": plan, "trigger": trigger, "pid": pid}),
        );
        if let Some(url) = &p.notify.healthcheck {
            ctx.notifier.ping(
                format!("{}/start", url.trim_end_matches('/')),
                String::new(),
            );
        }
        let run = RunEnd {
            ctx: ctx.clone(),
            going: self.going.clone(),
            plan: plan.to_string(),
            notify: p.notify.clone(),
            pid,
            pid_start,
        };
        let span = tracing::info_span!("job", kind = "run", plan = %plan, pid);
        self.tasks.spawn(run.wait(child).instrument(span));
    }

    /// Waits (at most `limit`) for the runs' waiters to record their end.
    pub async fn wait_all(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
    }
}

/// Records a run of `plan` that is not started because its previous run
/// (process `pid`, since `since`) is still going, and tells its webhook.
fn skip(
    ctx: &Ctx,
    p: &lifeboat_config::Plan,
    plan: &str,
    trigger: &str,
    pid: u32,
    since: DateTime<Utc>,
) {
    let why = format!(
        "not started: the previous run of plan `{plan}` (process {pid}, started {}) is still going",
        since.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let job = record_skip(ctx, plan, &p.vault, trigger, &why);
    ctx.log.event(
        "skipped",
        format!("plan `{plan}`: {why}"),
        serde_json::json!({"plan": plan, "trigger": trigger, "job": job.as_ref().map(|j| j.id)}),
    );
    if let (Some(url), Some(job)) = (&p.notify.webhook, job) {
        ctx.notifier.webhook(url.clone(), job);
    }
}

/// A started run of a plan, waited for to record and tell its end.
struct RunEnd {
    ctx: Ctx,
    going: Going,
    plan: String,
    notify: lifeboat_config::Notify,
    pid: u32,
    /// The process's start time (tells a reused pid apart).
    pid_start: String,
}

impl RunEnd {
    /// Waits for the run's process, then logs its jobs, sends them to the
    /// plan's webhook and pings its healthcheck (`/fail` unless all succeeded).
    async fn wait(self, mut child: tokio::process::Child) {
        let RunEnd {
            ctx,
            going,
            plan,
            notify,
            pid,
            pid_start,
        } = self;
        let st = child.wait().await;
        ctx.children.remove(pid);
        going
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&plan);
        let jobs = jobs_of(&ctx, &plan, pid, &pid_start);
        let ok = !jobs.is_empty() && jobs.iter().all(|j| j.status == status::SUCCEEDED);
        let summary: Vec<String> = jobs
            .iter()
            .map(|j| {
                format!(
                    "{} {}{}",
                    j.resource.as_deref().unwrap_or("-"),
                    j.status,
                    j.error
                        .as_ref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        ctx.log.event(
            "run-ended",
            format!(
                "plan `{plan}`: run ended ({}): {}",
                match st.as_ref().ok().and_then(|s| s.code()) {
                    Some(c) => format!("exit {c}"),
                    None => "killed".into(),
                },
                if summary.is_empty() { "no job recorded".into() } else { summary.join("; ") }
            ),
            serde_json::json!({"plan": plan, "pid": pid, "exit": st.as_ref().ok().and_then(|s| s.code()), "jobs": jobs.iter().map(|j| j.id).collect::<Vec<_>>(), "ok": ok}),
        );
        if let Some(url) = &notify.webhook {
            for j in &jobs {
                ctx.notifier.webhook(url.clone(), j.clone());
            }
        }
        if let Some(url) = &notify.healthcheck {
            let url = url.trim_end_matches('/');
            let to = if ok {
                url.to_string()
            } else {
                format!("{url}/fail")
            };
            ctx.notifier.ping(to, summary.join("\n"));
        }
    }
}

/// The jobs the run in process `pid` (started at `pid_start`, which tells
/// a reused pid apart) recorded for `plan`, oldest first.
fn jobs_of(ctx: &Ctx, plan: &str, pid: u32, pid_start: &str) -> Vec<Job> {
    let s = ctx.store.lock().unwrap_or_else(|e| e.into_inner());
    s.jobs_of_process(pid, pid_start)
        .unwrap_or_default()
        .into_iter()
        .filter(|j| j.plan.as_deref() == Some(plan))
        .collect()
}

fn record_skip(ctx: &Ctx, plan: &str, vault: &str, trigger: &str, why: &str) -> Option<Job> {
    let s = ctx.store.lock().unwrap_or_else(|e| e.into_inner());
    let r = s
        .start(&NewJob {
            kind: "backup".into(),
            resource: None,
            plan: Some(plan.to_string()),
            trigger: trigger.to_string(),
            vault: Some(vault.to_string()),
        })
        .and_then(|id| {
            s.finish(
                id,
                &JobEnd {
                    status: status::SKIPPED.into(),
                    error: Some(why.to_string()),
                    ..JobEnd::default()
                },
            )?;
            s.get(id)
        });
    match r {
        Ok(j) => j,
        Err(e) => {
            ctx.log.event(
                "store-error",
                format!("cannot record the skipped run of plan `{plan}`: {e}"),
                serde_json::json!({"plan": plan, "error": e.to_string()}),
            );
            None
        }
    }
}
