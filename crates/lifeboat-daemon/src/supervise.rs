//! Continuous jobs (`continuous`: the binlog archive of each mysql resource
//! with `archive`, its copies, each `[replication.NAME]` rule), as
//! supervised children.
//!
//! Each start is a job (kind `archive` or `replicate`, status `running`,
//! recorded by the daemon, so a killed daemon leaves it `interrupted`), and
//! each exit ends it: `failed` with its exit status and the last lines of its
//! stderr, or `succeeded` when the daemon stopped it (reload, shutdown). A
//! child that exits is started again after a back-off that doubles from
//! 1 s up to 5 min and goes back to 1 s once a child ran a healthy minute.

use std::collections::{BTreeMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifeboat_config::Config;
use lifeboat_control::launch::trigger;
use lifeboat_control::store::{JobEnd, JobStore, NewJob, status};
use rustix::process::Signal;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::Ctx;
pub use crate::continuous::{Continuous, EnvValue, declared, webhooks_of};

/// The first back-off.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A child that ran this long was healthy: the back-off starts again from [`BACKOFF_MIN`].
pub const HEALTHY: Duration = Duration::from_secs(60);

/// How often a held job looks for its mark again.
const HOLD_RECHECK: Duration = Duration::from_secs(2);

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

/// Whether a continuous job may start: held while a mark of its site's
/// switchover is there.
enum Hold {
    /// No mark: start it.
    Free,
    /// Held: look again after a while.
    Held,
    /// The supervisor was told to stop meanwhile.
    Stopped,
}

/// Says once that the job is held by a switchover's mark and waits a while
/// before it is looked at again.
async fn hold(
    ctx: &Ctx,
    spec: &Continuous,
    stop: &mut watch::Receiver<bool>,
    held: &mut bool,
) -> Hold {
    let Some(mark) = spec.held_by.iter().find(|m| m.exists()) else {
        *held = false;
        return Hold::Free;
    };
    let name = &spec.name;
    if !*held {
        ctx.log.event(
            "continuous-held",
            format!(
                "{name}: not started: its site was switched over ({}); it starts again once that mark is gone (stack down --purge there, or a recovery into that site)",
                mark.display()
            ),
            serde_json::json!({"name": name, "mark": mark}),
        );
        *held = true;
    }
    tokio::select! {
        _ = tokio::time::sleep(HOLD_RECHECK) => Hold::Held,
        _ = stop.changed() => Hold::Stopped,
    }
}

/// Supervises one continuous job: starts its child, records each run as a
/// job, starts it again after a back-off until told to stop.
async fn supervise(ctx: Ctx, spec: Continuous, mut stop: watch::Receiver<bool>) {
    let mut delay = BACKOFF_MIN;
    let name = spec.name.clone();
    let mut held = false;
    loop {
        if *stop.borrow() {
            return;
        }
        match hold(&ctx, &spec, &mut stop, &mut held).await {
            Hold::Free => {}
            Hold::Held => continue,
            Hold::Stopped => return,
        }
        let started = Instant::now();
        let job = start_job(&ctx, &spec);
        let (end, stopped) =
            match build(&ctx, &spec).and_then(|mut c| c.spawn().map_err(|e| e.to_string())) {
                Err(e) => (
                    JobEnd {
                        status: status::FAILED.into(),
                        error: Some(format!("cannot start: {e}")),
                        ..JobEnd::default()
                    },
                    false,
                ),
                Ok(child) => run_child(&ctx, &name, child, job, &mut stop, started).await,
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

/// Follows a started child until it exits or the supervisor is told to stop
/// (then SIGTERM, the grace, SIGKILL); how its job ended, and whether the
/// daemon stopped it.
async fn run_child(
    ctx: &Ctx,
    name: &str,
    mut child: tokio::process::Child,
    job: Option<i64>,
    stop: &mut watch::Receiver<bool>,
    started: Instant,
) -> (JobEnd, bool) {
    let pid = child.id().unwrap_or(0);
    ctx.children.add(pid, name);
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
    let tail = stderr_tail(&mut child);
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
    (child_end(&how, log, stopped, started), stopped)
}

/// The last 20 lines of the child's stderr, kept as it writes them.
fn stderr_tail(child: &mut tokio::process::Child) -> Arc<Mutex<VecDeque<String>>> {
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
    tail
}

/// How a child's job ended: `succeeded` when the daemon stopped it, else
/// `failed` with `how` it exited and its last line.
fn child_end(how: &str, log: String, stopped: bool, started: Instant) -> JobEnd {
    if stopped {
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
    }
}
