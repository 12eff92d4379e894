//! Continuous jobs: the binlog archive of each mysql resource with
//! `archive` (and its copy into each `copy_to` vault, `copy --follow`), and
//! each `[replication.NAME]` rule, as supervised children.
//!
//! Each start is a job (kind `archive` or `replicate`, status `running`,
//! recorded by the daemon, so a killed daemon leaves it `interrupted`), and
//! each exit ends it: `failed` with its exit status and the last lines of its
//! stderr, or `succeeded` when the daemon stopped it (reload, shutdown). A
//! child that exits is started again after a back-off that doubles from
//! 1 s up to 5 min and goes back to 1 s once a child ran a healthy minute.
//!
//! Secrets go to the child in its environment (`LIFEBOAT_PASSWORD` or
//! `LIFEBOAT_PASSWORD_FILE`, `LIFEBOAT_MYSQL_PASSWORD`), never on its command line.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifeboat_config::{Config, DeletePolicy, ResourceKind, Secret};
use lifeboat_control::launch::trigger;
use lifeboat_control::store::{JobEnd, JobStore, NewJob, status};
use rustix::process::Signal;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::Ctx;

/// The first back-off.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A child that ran this long was healthy: the back-off starts again from [`BACKOFF_MIN`].
pub const HEALTHY: Duration = Duration::from_secs(60);

/// How often a held job looks for its mark again.
const HOLD_RECHECK: Duration = Duration::from_secs(2);

/// One continuous job: what to run and with which environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Continuous {
    /// `archive`, `copy` or `replicate`.
    pub kind: &'static str,
    /// `archive:RESOURCE`, `copy:RESOURCE:VAULT` or `replicate:RULE`.
    pub name: String,
    /// The resource it follows.
    pub resource: Option<String>,
    /// The vault it writes to (archives).
    pub vault: Option<String>,
    /// Arguments after `lifeboat --parent-pid PID`.
    pub args: Vec<String>,
    /// Environment of the child: (name, where the value comes from).
    pub env: Vec<(String, EnvValue)>,
    /// Webhooks told of each end (those of the plans that hold the resource).
    pub webhooks: Vec<String>,
    /// Marks that hold the job while one is there: an archive's site was
    /// switched over (`ROOT/stacks/STACK/switched-over.json`), so the old
    /// primary's archive is not started again (its server is fenced, or a
    /// pinned address now reaches the new primary).
    pub held_by: Vec<PathBuf>,
}

/// The webhooks of the plans that hold `resource`.
pub fn webhooks_of(cfg: &Config, resource: &str) -> Vec<String> {
    let mut w: Vec<String> = cfg
        .plans_of(resource)
        .into_iter()
        .filter_map(|p| cfg.plans[p].notify.webhook.clone())
        .collect();
    w.sort();
    w.dedup();
    w
}

/// A value for a child's environment, read when the child starts.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvValue {
    /// Literally this.
    Plain(String),
    /// The daemon's own variable of this name (a secret: never logged).
    FromEnv(String),
    /// The first line of this file, read when the child starts (a secret:
    /// never logged), for a child that reads the secret only from a variable.
    FromFile(std::path::PathBuf),
}

fn password_env(s: &Secret, var: &str, file_var: Option<&str>) -> Vec<(String, EnvValue)> {
    match (s, file_var) {
        (Secret::Env(n), _) => vec![(var.into(), EnvValue::FromEnv(n.clone()))],
        (Secret::File(p), Some(fv)) => {
            vec![(fv.into(), EnvValue::Plain(p.display().to_string()))]
        }
        // No file flag for this secret: the daemon reads the file for the child.
        (Secret::File(p), None) => vec![(var.into(), EnvValue::FromFile(p.clone()))],
    }
}

/// The marks a switchover away from site `site` leaves for the stacks
/// resource `name` is a member of.
fn switchover_marks(cfg: &Config, name: &str, site: Option<&str>) -> Vec<PathBuf> {
    let Some(root) = site
        .and_then(|s| cfg.sites.get(s))
        .and_then(|s| s.root.as_ref())
    else {
        return Vec::new();
    };
    cfg.stacks
        .iter()
        .filter(|(_, s)| s.members.iter().any(|m| m == name))
        .map(|(stack, _)| lifeboat_control::locks::switched_over_mark(root, stack))
        .collect()
}

/// The continuous jobs `cfg` declares.
pub fn declared(cfg: &Config, state: &std::path::Path) -> Vec<Continuous> {
    let mut out = Vec::new();
    for (name, r) in &cfg.resources {
        let ResourceKind::Mysql {
            dsn,
            password,
            archive: Some(a),
            ..
        } = &r.kind
        else {
            continue;
        };
        let vault = a.vault.clone().or_else(|| {
            cfg.plans_of(name)
                .first()
                .map(|p| cfg.plans[*p].vault.clone())
        });
        let Some(vault) = vault else { continue };
        let Some(spec) = cfg.vaults.get(&vault) else {
            continue;
        };

        let mut env = vec![(
            "LIFEBOAT_VAULT".to_string(),
            EnvValue::Plain(spec.location.clone()),
        )];
        env.extend(password_env(
            &spec.password,
            "LIFEBOAT_PASSWORD",
            Some("LIFEBOAT_PASSWORD_FILE"),
        ));
        let vault_env = env.clone();
        if let Some(p) = password {
            env.extend(password_env(p, "LIFEBOAT_MYSQL_PASSWORD", None));
        }
        // The archive's copies: its binlog points followed into each `copy_to` vault.
        for to in &a.copy_to {
            let Some(tspec) = cfg.vaults.get(to) else {
                continue;
            };
            let mut cenv = vault_env.clone();
            cenv.extend(password_env(
                &tspec.password,
                "LIFEBOAT_TO_PASSWORD",
                Some("LIFEBOAT_TO_PASSWORD_FILE"),
            ));
            out.push(Continuous {
                kind: "copy",
                name: format!("copy:{name}:{to}"),
                resource: Some(name.clone()),
                vault: Some(to.clone()),
                args: vec![
                    "--quiet".into(),
                    "copy".into(),
                    "--to".into(),
                    tspec.location.clone(),
                    "--resource".into(),
                    name.clone(),
                    "--kind".into(),
                    "mysql-binlog".into(),
                    "--follow".into(),
                ],
                env: cenv,
                webhooks: webhooks_of(cfg, name),
                held_by: Vec::new(),
            });
        }
        out.push(Continuous {
            kind: "archive",
            name: format!("archive:{name}"),
            resource: Some(name.clone()),
            vault: Some(vault),
            args: vec![
                "--quiet".into(),
                "archive".into(),
                "mysql".into(),
                "--dsn".into(),
                dsn.clone(),
                "--resource".into(),
                name.clone(),
                "--spool".into(),
                state.join("spool").join(name).display().to_string(),
            ],
            env,
            webhooks: webhooks_of(cfg, name),
            held_by: switchover_marks(cfg, name, r.site.as_deref()),
        });
    }
    for (name, rule) in &cfg.replications {
        let Some(ResourceKind::Bucket { location }) =
            cfg.resources.get(&rule.from).map(|r| &r.kind)
        else {
            continue;
        };
        let mut args: Vec<String> = vec![
            "--quiet".into(),
            "replicate".into(),
            "--from".into(),
            location.clone(),
            "--to".into(),
            rule.to.clone(),
            "--existing".into(),
            "--delete-markers".into(),
            match rule.delete {
                DeletePolicy::Replicate => "replicate",
                DeletePolicy::Keep => "ignore",
            }
            .into(),
            "--state".into(),
            state.join("replication").display().to_string(),
        ];
        if let Some(p) = &rule.prefix {
            args.extend(["--prefix".into(), p.clone()]);
        }
        out.push(Continuous {
            kind: "replicate",
            name: format!("replicate:{name}"),
            resource: Some(rule.from.clone()),
            vault: None,
            args,
            env: Vec::new(),
            webhooks: webhooks_of(cfg, &rule.from),
            held_by: Vec::new(),
        });
    }
    out
}

struct Running {
    spec: Continuous,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The continuous jobs being supervised.
#[derive(Default)]
pub struct Supervisors {
    running: BTreeMap<String, Running>,
}

impl Supervisors {
    /// How many.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Their names.
    pub fn names(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    /// Starts what `cfg` declares and is not running, stops what it no
    /// longer declares, restarts what changed.
    pub fn reconcile(&mut self, ctx: &Ctx, cfg: &Config) {
        let want: BTreeMap<String, Continuous> = declared(cfg, &ctx.state.root)
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(n, r)| want.get(*n) != Some(&r.spec))
            .map(|(n, _)| n.clone())
            .collect();
        for n in stale {
            if let Some(r) = self.running.remove(&n) {
                let _ = r.stop.send(true);
                ctx.log.event(
                    "continuous-stopping",
                    format!("{n}: stopping (no longer declared as it runs)"),
                    serde_json::json!({"name": n}),
                );
            }
        }
        for (n, spec) in want {
            if self.running.contains_key(&n) {
                continue;
            }
            let (tx, rx) = watch::channel(false);
            let span = tracing::info_span!("job", kind = spec.kind, name = %n);
            let task = tokio::spawn(supervise(ctx.clone(), spec.clone(), rx).instrument(span));
            self.running.insert(
                n,
                Running {
                    spec,
                    stop: tx,
                    task,
                },
            );
        }
    }

    /// Tells every supervisor to stop its child; returns their tasks to await.
    pub fn stop_all(&mut self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.running)
            .into_values()
            .map(|r| {
                let _ = r.stop.send(true);
                r.task
            })
            .collect()
    }
}

/// A child `lifeboat` process with `args` and `env` (secrets read now,
/// never logged; `what` names the job in an error), dying with the daemon
/// (`--parent-pid`), its stdin closed; the caller sets stdout and stderr.
pub(crate) fn child_command(
    ctx: &Ctx,
    args: &[String],
    env: &[(String, EnvValue)],
    what: &str,
) -> Result<std::process::Command, String> {
    let mut c = std::process::Command::new(&ctx.launcher.exe);
    c.arg("--parent-pid")
        .arg(std::process::id().to_string())
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        match v {
            EnvValue::FromFile(p) => {
                let secret = lifeboat_control::secret::read(
                    &lifeboat_config::Secret::File(p.clone()),
                    &format!("{k} of {what}"),
                )
                .map_err(|e| e.to_string())?;
                c.env(k, String::from_utf8_lossy(&secret).into_owned());
            }
            EnvValue::Plain(s) => {
                c.env(k, s);
            }
            EnvValue::FromEnv(n) => match std::env::var_os(n) {
                Some(val) => {
                    c.env(k, val);
                }
                None => {
                    return Err(format!(
                        "environment variable {n} is not set (the file names it)"
                    ));
                }
            },
        }
        if k == "LIFEBOAT_PASSWORD_FILE" {
            c.env_remove("LIFEBOAT_PASSWORD");
        }
        if k == "LIFEBOAT_TO_PASSWORD_FILE" {
            c.env_remove("LIFEBOAT_TO_PASSWORD");
        }
    }
    Ok(c)
}

fn build(ctx: &Ctx, spec: &Continuous) -> Result<tokio::process::Command, String> {
    let mut c = child_command(ctx, &spec.args, &spec.env, &spec.name)?;
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut c = tokio::process::Command::from(c);
    c.kill_on_drop(true);
    Ok(c)
}

fn start_job(ctx: &Ctx, spec: &Continuous) -> Option<i64> {
    let s = ctx.store.lock().unwrap_or_else(|e| e.into_inner());
    s.start(&NewJob {
        kind: spec.kind.into(),
        resource: spec.resource.clone(),
        plan: None,
        trigger: trigger::CONTINUOUS.into(),
        vault: spec.vault.clone(),
    })
    .ok()
}

fn end_job(ctx: &Ctx, id: Option<i64>, end: JobEnd, webhooks: &[String]) {
    let Some(id) = id else { return };
    let job = {
        let s = ctx.store.lock().unwrap_or_else(|e| e.into_inner());
        let _ = s.finish(id, &end);
        s.get(id).ok().flatten()
    };
    if let Some(job) = job {
        for url in webhooks {
            ctx.notifier.webhook(url.clone(), job.clone());
        }
    }
}

async fn supervise(ctx: Ctx, spec: Continuous, mut stop: watch::Receiver<bool>) {
    let mut delay = BACKOFF_MIN;
    let name = spec.name.clone();
    let mut held = false;
    loop {
        if *stop.borrow() {
            return;
        }
        // Held while its site is switched over (said once, rechecked).
        if let Some(mark) = spec.held_by.iter().find(|m| m.exists()) {
            if !held {
                ctx.log.event(
                    "continuous-held",
                    format!(
                        "{name}: not started: its site was switched over ({}); it starts again once that mark is gone (stack down --purge there, or a recovery into that site)",
                        mark.display()
                    ),
                    serde_json::json!({"name": name, "mark": mark}),
                );
                held = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(HOLD_RECHECK) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        held = false;
        let started = Instant::now();
        let job = start_job(&ctx, &spec);
        let (end, stopped) = match build(&ctx, &spec)
            .and_then(|mut c| c.spawn().map_err(|e| e.to_string()))
        {
            Err(e) => (
                JobEnd {
                    status: status::FAILED.into(),
                    error: Some(format!("cannot start: {e}")),
                    ..JobEnd::default()
                },
                false,
            ),
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                ctx.children.add(pid, &name);
                // The job is the child's: `jobs cancel` signals it, not the daemon.
                if let Some(id) = job {
                    let s = ctx.store.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = s.set_process(id, pid);
                }
                ctx.log.event(
                    "continuous-started",
                    format!("{name}: started, process {pid}"),
                    serde_json::json!({"name": name, "pid": pid, "job": job}),
                );
                let tail = Arc::new(Mutex::new(VecDeque::<String>::new()));
                if let Some(err) = child.stderr.take() {
                    let tail = tail.clone();
                    tokio::spawn(async move {
                        let mut lines = tokio::io::BufReader::new(err).lines();
                        while let Ok(Some(l)) = lines.next_line().await {
                            let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                            if t.len() == 20 {
                                t.pop_front();
                            }
                            t.push_back(l);
                        }
                    });
                }
                let (st, stopped) = tokio::select! {
                    st = child.wait() => (st, false),
                    _ = stop.changed() => {
                        crate::children::signal(pid, Signal::TERM);
                        let st = match tokio::time::timeout(ctx.grace, child.wait()).await {
                            Ok(st) => st,
                            Err(_) => {
                                crate::children::signal(pid, Signal::KILL);
                                child.wait().await
                            }
                        };
                        (st, true)
                    }
                };
                ctx.children.remove(pid);
                // Let the reader take the last lines.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let log = tail
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n");
                let how = match st.as_ref().ok().and_then(|s| s.code()) {
                    Some(c) => format!("exited with status {c}"),
                    None => "was killed by a signal".into(),
                };
                let end = if stopped {
                    JobEnd {
                        status: status::SUCCEEDED.into(),
                        log: format!("stopped by the daemon (reload or shutdown); it {how}\n{log}"),
                        ..JobEnd::default()
                    }
                } else {
                    JobEnd {
                        status: status::FAILED.into(),
                        error: Some(format!(
                            "it {how} after {}s{}",
                            started.elapsed().as_secs(),
                            log.lines()
                                .last()
                                .map(|l| format!(": {l}"))
                                .unwrap_or_default()
                        )),
                        log,
                        ..JobEnd::default()
                    }
                };
                (end, stopped)
            }
        };
        let error = end.error.clone();
        end_job(&ctx, job, end, &spec.webhooks);
        if stopped || *stop.borrow() {
            ctx.log.event(
                "continuous-stopped",
                format!("{name}: stopped"),
                serde_json::json!({"name": name}),
            );
            return;
        }
        if started.elapsed() >= HEALTHY {
            delay = BACKOFF_MIN;
        }
        ctx.log.event(
            "continuous-exited",
            format!(
                "{name}: {}; starting again in {}s",
                error.as_deref().unwrap_or("ended"),
                delay.as_secs()
            ),
            serde_json::json!({"name": name, "error": error, "retry_in_s": delay.as_secs()}),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_is_held_by_the_mark_of_a_switchover_away_from_its_site() {
        let t = tempfile::tempdir().unwrap();
        let text = format!(
            "[site.primary]\nroot = \"{}\"\n[vault.main]\nlocation = \"/srv/v\"\n[resource.db]\nsite = \"primary\"\ndsn = \"mysql://backup@127.0.0.1:3306\"\narchive = {{ vault = \"main\" }}\n[stack.shop]\nmembers = [\"db\"]\n",
            t.path().display()
        );
        let c = lifeboat_config::parse("x.toml", &text).unwrap();
        let names = |c: &Config| -> Vec<String> {
            declared(c, std::path::Path::new("/state"))
                .into_iter()
                .map(|x| x.name)
                .collect()
        };
        assert_eq!(names(&c), ["archive:db"]);
        let d = declared(&c, std::path::Path::new("/state"));
        let mark = lifeboat_control::locks::switched_over_mark(t.path(), "shop");
        assert_eq!(d[0].held_by, [mark]);
    }

    #[test]
    fn a_database_password_file_is_read_for_the_archive_at_its_start() {
        let c = lifeboat_config::parse(
            "x.toml",
            "[vault.main]\nlocation = \"/srv/v\"\n[resource.db]\ndsn = \"mysql://backup@127.0.0.1:3306\"\npassword_file = \"/etc/lifeboat/db.pw\"\narchive = { vault = \"main\" }\n",
        )
        .unwrap();
        let d = declared(&c, std::path::Path::new("/state"));
        let a = d.iter().find(|c| c.name == "archive:db").unwrap();
        assert!(
            a.env.contains(&(
                "LIFEBOAT_MYSQL_PASSWORD".to_string(),
                EnvValue::FromFile("/etc/lifeboat/db.pw".into())
            )),
            "{:?}",
            a.env
        );
    }

    #[test]
    fn archives_and_replications_are_declared_with_secrets_from_the_environment() {
        let c = lifeboat_config::parse(
            "x.toml",
            r#"
[vault.main]
location = "/srv/v"
password_env = "MAIN_PW"
[resource.db]
dsn = "mysql://backup@127.0.0.1:3306"
password_env = "DB_PW"
archive = { copy_to = ["dr"] }
[vault.dr]
location = "/srv/dr"
password_file = "/etc/lifeboat/dr.pw"
[resource.assets]
kind = "bucket"
location = "file:///srv/assets"
[plan.p]
resources = ["db", "assets"]
vault = "main"
[replication.assets-dr]
from = "assets"
to = "file:///srv/dr-assets"
delete = "keep"
"#,
        )
        .unwrap();
        let d = declared(&c, std::path::Path::new("/state"));
        assert_eq!(d.len(), 3, "{d:?}");
        let copy = d.iter().find(|c| c.name == "copy:db:dr").unwrap();
        assert!(
            copy.args
                .windows(2)
                .any(|w| w == ["--kind", "mysql-binlog"])
        );
        assert!(copy.env.contains(&(
            "LIFEBOAT_PASSWORD".into(),
            EnvValue::FromEnv("MAIN_PW".into())
        )));
        assert!(copy.env.contains(&(
            "LIFEBOAT_TO_PASSWORD_FILE".into(),
            EnvValue::Plain("/etc/lifeboat/dr.pw".into())
        )));
        assert!(!copy.env.iter().any(|(k, _)| k == "LIFEBOAT_MYSQL_PASSWORD"));
        let d: Vec<_> = d.into_iter().filter(|c| c.kind != "copy").collect();
        assert_eq!(d[0].name, "archive:db");
        assert!(d[0].args.iter().all(|a| !a.contains("PW")));
        assert!(d[0].env.contains(&(
            "LIFEBOAT_PASSWORD".into(),
            EnvValue::FromEnv("MAIN_PW".into())
        )));
        assert!(d[0].env.contains(&(
            "LIFEBOAT_MYSQL_PASSWORD".into(),
            EnvValue::FromEnv("DB_PW".into())
        )));
        assert_eq!(d[1].name, "replicate:assets-dr");
        assert!(
            d[1].args
                .windows(2)
                .any(|w| w == ["--delete-markers", "ignore"])
        );
    }
}
