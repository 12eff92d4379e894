//! Retention on its own schedule (`[daemon] retention_schedule`): per vault,
//! `lifeboat forget` for each resource with the retention that applies there
//! (the plan's in the plan's vault, a copy action's — else the plan's — in
//! the copy's vault; a resource under two rules in one vault keeps what
//! either keeps), then `lifeboat prune`; one job of kind `retention` per vault.
//!
//! Locked points are never removed: the engine refuses them; the job then
//! ends `incomplete` with the refusal (point and expiry) in its log. A pass
//! due while the previous one is still going is skipped and recorded.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lifeboat_config::{Config, RetentionSpec};
use lifeboat_control::launch::trigger;
use lifeboat_control::store::{JobEnd, JobStore, NewJob, status};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::Ctx;
use crate::supervise::EnvValue;

/// Keeps what either keeps.
pub fn merge(a: &RetentionSpec, b: &RetentionSpec) -> RetentionSpec {
    let m = |x: Option<u32>, y: Option<u32>| x.max(y);
    RetentionSpec {
        keep_last: m(a.keep_last, b.keep_last),
        keep_hourly: m(a.keep_hourly, b.keep_hourly),
        keep_daily: m(a.keep_daily, b.keep_daily),
        keep_weekly: m(a.keep_weekly, b.keep_weekly),
        keep_monthly: m(a.keep_monthly, b.keep_monthly),
        keep_yearly: m(a.keep_yearly, b.keep_yearly),
        keep_within: a.keep_within.max(b.keep_within),
    }
}

/// vault → resource → the retention that applies there.
pub fn policies(cfg: &Config) -> BTreeMap<String, BTreeMap<String, RetentionSpec>> {
    let mut out: BTreeMap<String, BTreeMap<String, RetentionSpec>> = BTreeMap::new();
    let mut add = |vault: &str, r: &str, spec: &RetentionSpec| {
        let e = out.entry(vault.to_string()).or_default();
        let merged = match e.get(r) {
            Some(old) => merge(old, spec),
            None => spec.clone(),
        };
        e.insert(r.to_string(), merged);
    };
    for p in cfg.plans.values() {
        for r in &p.resources {
            add(&p.vault, r, &p.retention);
            for c in &p.copy {
                add(&c.vault, r, c.retention.as_ref().unwrap_or(&p.retention));
            }
        }
    }
    out
}

/// `lifeboat forget` flags for a retention.
pub fn forget_args(resource: &str, r: &RetentionSpec) -> Vec<String> {
    let mut a = vec!["forget".to_string(), "--resource".into(), resource.into()];
    for (flag, v) in [
        ("--keep-last", r.keep_last),
        ("--keep-hourly", r.keep_hourly),
        ("--keep-daily", r.keep_daily),
        ("--keep-weekly", r.keep_weekly),
        ("--keep-monthly", r.keep_monthly),
        ("--keep-yearly", r.keep_yearly),
    ] {
        if let Some(n) = v {
            a.extend([flag.to_string(), n.to_string()]);
        }
    }
    if let Some(w) = r.keep_within {
        a.extend(["--keep-within".into(), format!("{}s", w.0)]);
    }
    a
}

/// The retention passes going on.
#[derive(Default)]
pub struct Retention {
    going: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl Retention {
    /// Starts a retention pass over every vault (or records the skip).
    pub fn start(&mut self, ctx: &Ctx, cfg: &Arc<Config>) {
        while self.tasks.try_join_next().is_some() {}
        if self.going.swap(true, Ordering::SeqCst) {
            let s = ctx.store.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(id) = s.start(&NewJob {
                kind: "retention".into(),
                resource: None,
                plan: None,
                trigger: trigger::SCHEDULE.into(),
                vault: None,
            }) {
                let _ = s.finish(
                    id,
                    &JobEnd {
                        status: status::SKIPPED.into(),
                        error: Some(
                            "not started: the previous retention pass is still going".into(),
                        ),
                        ..JobEnd::default()
                    },
                );
            }
            ctx.log.event(
                "skipped",
                "retention: the previous pass is still going; skipped".into(),
                serde_json::json!({"kind": "retention"}),
            );
            return;
        }
        let (ctx, cfg, going) = (ctx.clone(), cfg.clone(), self.going.clone());
        let span = tracing::info_span!("job", kind = "retention");
        self.tasks.spawn(
            async move {
                for (vault, resources) in policies(&cfg) {
                    pass(&ctx, &cfg, &vault, &resources).await;
                }
                going.store(false, Ordering::SeqCst);
            }
            .instrument(span),
        );
    }

    /// Waits (at most `limit`) for a pass going on to record its end.
    pub async fn wait_all(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
    }
}

fn vault_env(cfg: &Config, vault: &str) -> Vec<(String, EnvValue)> {
    let Some(spec) = cfg.vaults.get(vault) else {
        return Vec::new();
    };
    let mut env = vec![(
        "LIFEBOAT_VAULT".to_string(),
        EnvValue::Plain(spec.location.clone()),
    )];
    env.push(match &spec.password {
        lifeboat_config::Secret::Env(n) => {
            ("LIFEBOAT_PASSWORD".into(), EnvValue::FromEnv(n.clone()))
        }
        lifeboat_config::Secret::File(p) => (
            "LIFEBOAT_PASSWORD_FILE".into(),
            EnvValue::Plain(p.display().to_string()),
        ),
    });
    env
}

/// Runs one child to its end; (exit code, stdout + stderr tail).
async fn step(ctx: &Ctx, args: &[String], env: &[(String, EnvValue)]) -> (Option<i32>, String) {
    let mut c = match crate::supervise::child_command(ctx, args, env, "retention") {
        Ok(c) => c,
        Err(e) => return (None, e),
    };
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = match tokio::process::Command::from(c).spawn() {
        Ok(ch) => ch,
        Err(e) => {
            return (
                None,
                format!("cannot start {}: {e}", ctx.launcher.exe.display()),
            );
        }
    };
    let pid = child.id().unwrap_or(0);
    ctx.children.add(pid, "retention");
    let out = child.wait_with_output().await;
    ctx.children.remove(pid);
    match out {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            (o.status.code(), tail)
        }
        Err(e) => (None, format!("cannot wait for it: {e}")),
    }
}

async fn pass(ctx: &Ctx, cfg: &Config, vault: &str, resources: &BTreeMap<String, RetentionSpec>) {
    let id = {
        let s = ctx.store.lock().unwrap_or_else(|e| e.into_inner());
        s.start(&NewJob {
            kind: "retention".into(),
            resource: None,
            plan: None,
            trigger: trigger::SCHEDULE.into(),
            vault: Some(vault.to_string()),
        })
        .ok()
    };
    let env = vault_env(cfg, vault);
    let mut log = Vec::new();
    let mut worst = status::SUCCEEDED;
    let mut error = None;
    let mut steps: Vec<(String, Vec<String>)> = resources
        .iter()
        .map(|(r, spec)| (format!("forget `{r}`"), forget_args(r, spec)))
        .collect();
    steps.push(("prune".into(), vec!["prune".into()]));
    for (what, args) in steps {
        let (code, out) = step(ctx, &args, &env).await;
        log.push(format!(
            "{what}: exit {}",
            code.map_or("-".into(), |c| c.to_string())
        ));
        log.extend(out.lines().map(|l| format!("  {l}")));
        match code {
            Some(0) => {}
            Some(3) => {
                if worst == status::SUCCEEDED {
                    worst = status::INCOMPLETE;
                }
                error.get_or_insert(format!(
                    "{what} in vault `{vault}` left something in place (locked points are never removed): {}",
                    out.lines().rev().find(|l| l.contains("warning") || l.contains("error")).unwrap_or("see the log")
                ));
            }
            _ => {
                worst = status::FAILED;
                error = Some(format!(
                    "{what} in vault `{vault}` failed: {}",
                    out.lines().last().unwrap_or("no output")
                ));
                break; // no prune after a failed forget
            }
        }
    }
    ctx.log.event(
        "retention",
        format!(
            "retention in vault `{vault}`: {worst}{}",
            error
                .as_ref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default()
        ),
        serde_json::json!({"vault": vault, "status": worst, "job": id, "error": error}),
    );
    let Some(id) = id else { return };
    let job = {
        let s = ctx.store.lock().unwrap_or_else(|e| e.into_inner());
        let _ = s.finish(
            id,
            &JobEnd {
                status: worst.into(),
                error,
                log: log.join("\n"),
                ..JobEnd::default()
            },
        );
        s.get(id).ok().flatten()
    };
    // Told to the webhooks of the plans that write into (or copy into) this vault.
    let mut hooks: Vec<&String> = cfg
        .plans
        .values()
        .filter(|p| p.vault == vault || p.copy.iter().any(|c| c.vault == vault))
        .filter_map(|p| p.notify.webhook.as_ref())
        .collect();
    hooks.sort();
    hooks.dedup();
    if let Some(job) = job {
        for url in hooks {
            ctx.notifier.webhook(url.clone(), job.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vault_gets_each_resources_rules_and_copies_their_own() {
        let c = lifeboat_config::parse(
            "x.toml",
            r#"
[vault.main]
location = "/srv/a"
[vault.dr]
location = "/srv/b"
[resource.etc]
paths = ["/etc"]
[plan.hourly]
resources = ["etc"]
vault = "main"
retention = { keep_hourly = 24, keep_within = "2d" }
copy = [{ vault = "dr", retention = { keep_daily = 30 } }]
[plan.weekly]
resources = ["etc"]
vault = "main"
schedule = "0 0 * * 0"
retention = { keep_weekly = 8, keep_hourly = 2 }
"#,
        )
        .unwrap();
        let p = policies(&c);
        assert_eq!(
            forget_args("etc", &p["main"]["etc"]),
            [
                "forget",
                "--resource",
                "etc",
                "--keep-hourly",
                "24",
                "--keep-weekly",
                "8",
                "--keep-within",
                "172800s"
            ]
        );
        assert_eq!(
            forget_args("etc", &p["dr"]["etc"]),
            ["forget", "--resource", "etc", "--keep-daily", "30"]
        );
    }
}
