//! The daemon behind `lifeboat serve`.
//!
//! It never backs anything up in its own process: every run is a child
//! (`lifeboat jobs run`, `lifeboat archive mysql`, `lifeboat replicate`,
//! `lifeboat forget`/`prune`) started through
//! [`lifeboat_control::launch::Launcher`], which dies with the daemon. The
//! daemon decides *when*, records what the children cannot (a skipped run,
//! a continuous job's start and exit, a retention pass), and tells people.
//!
//! - [`schedule`]: when each plan runs next, and whether a run was missed
//!   while the daemon was down (caught up once, inside the plan's window);
//! - [`runs`]: starting a plan's run, skipping it while the previous one of
//!   the same plan is going (recorded as a `skipped` job), notifying at its end;
//! - [`supervise`]: continuous jobs (binlog archives, bucket replications),
//!   restarted with exponential back-off (1 s .. 5 min, reset after a
//!   healthy minute), each start and exit a job;
//! - [`retention`]: forget (each plan's and copy action's retention, per
//!   resource) then prune, per vault, on `[daemon] retention_schedule`;
//! - [`drills`]: each `[drill.X] schedule`, a child `lifeboat drill`
//!   (recovery into a scratch stack, checked, torn down, recorded);
//! - [`notify`]: webhook (JSON per job) and healthchecks.io-style pings;
//! - [`children`]: every child the daemon started, for shutdown (SIGTERM,
//!   a grace period, then SIGKILL).
//!
//! The configuration is a [`LiveConfig`] that a reload swaps (the REST API
//! reads the same one); an invalid file on reload keeps the old one.

pub mod children;
pub mod continuous;
pub mod drills;
pub mod log;
pub mod notify;
pub mod retention;
pub mod runs;
pub mod schedule;
pub mod supervise;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_config::Config;
use lifeboat_control::launch::{Launcher, trigger};
use lifeboat_control::state::StateDir;
use lifeboat_control::store::SqliteStore;
use tokio::sync::watch;

pub use log::Log;

/// The configuration in force; a reload (SIGHUP) swaps the inner `Arc`.
pub type LiveConfig = Arc<RwLock<Arc<Config>>>;

/// The job store shared by the daemon's tasks.
pub type Store = Arc<Mutex<SqliteStore>>;

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The control plane (state directory, job store) failed.
    #[error(transparent)]
    Control(#[from] lifeboat_control::ControlError),
}

/// Result of the daemon.
pub type Result<T> = std::result::Result<T, DaemonError>;

/// What the daemon needs.
pub struct DaemonOptions {
    /// The declarative file (re-read on reload).
    pub config_path: PathBuf,
    /// The state directory (job store, replication state, spools).
    pub state: StateDir,
    /// The `lifeboat` executable its children run.
    pub exe: PathBuf,
    /// How long running children get after SIGTERM before SIGKILL.
    pub grace: Duration,
    /// The configuration in force (loaded and validated by the caller).
    pub live: LiveConfig,
    /// Bumped by the caller on SIGHUP: re-read the file.
    pub reload: watch::Receiver<u64>,
    /// Where events go (human lines on stderr, or JSON lines on stdout).
    pub log: Log,
}

/// What every task of the daemon shares.
#[derive(Clone)]
pub struct Ctx {
    /// Starts children.
    pub launcher: Launcher,
    /// The job history.
    pub store: Store,
    /// Running children.
    pub children: children::Children,
    /// Events.
    pub log: Log,
    /// Notifications.
    pub notifier: notify::Notifier,
    /// State directory.
    pub state: StateDir,
    /// Grace period on stop.
    pub grace: Duration,
}

fn current(live: &LiveConfig) -> Arc<Config> {
    live.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Sleeps until `t` (at least 1 ms, at most a minute so that a clock jump is
/// noticed within a minute).
fn until(t: Option<DateTime<Utc>>) -> Duration {
    let Some(t) = t else {
        return Duration::from_secs(60);
    };
    let ms = (t - Utc::now()).num_milliseconds().clamp(1, 60_000);
    Duration::from_millis(ms as u64 + 1)
}

/// Runs the daemon until `shutdown` turns true; then stops starting runs,
/// stops its children (SIGTERM, the grace period, SIGKILL) and returns.
pub async fn run(opts: DaemonOptions, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    let mut reload = opts.reload.clone();
    let mut d = Daemon::start(opts)?;
    d.catch_up().await;
    loop {
        d.start_due(Utc::now());
        let wait = until(d.sched.next_wake());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            r = reload.changed() => {
                if r.is_ok() {
                    d.reload();
                }
            }
        }
    }
    d.stop().await;
    Ok(())
}

/// The daemon's state between wakes: the file in force and what it started.
struct Daemon {
    ctx: Ctx,
    config_path: PathBuf,
    live: LiveConfig,
    cfg: Arc<Config>,
    runs: runs::Runs,
    sched: schedule::Timetable,
    continuous: supervise::Supervisors,
    retention: retention::Retention,
    drills: drills::Drills,
}

impl Daemon {
    /// Opens the job store (marking the jobs of a daemon killed earlier
    /// `interrupted`), builds the timetable and starts the continuous jobs.
    fn start(opts: DaemonOptions) -> Result<Daemon> {
        let DaemonOptions {
            config_path,
            state,
            exe,
            grace,
            live,
            reload: _,
            log,
        } = opts;
        state.create()?;
        // Opening marks the jobs of a daemon (or run) killed earlier `interrupted`.
        let store = Arc::new(Mutex::new(SqliteStore::open(&state.jobs_db())?));
        let ctx = Ctx {
            launcher: Launcher::new(exe, config_path.clone(), state.root.clone()),
            store,
            children: children::Children::default(),
            log,
            notifier: notify::Notifier::new(log),
            state,
            grace,
        };
        let cfg = current(&live);
        let mut continuous = supervise::Supervisors::default();
        continuous.reconcile(&ctx, &cfg);
        log.event(
            "started",
            format!(
                "daemon started: {} plan(s), {} continuous job(s); pid {}",
                cfg.plans.len(),
                continuous.len(),
                std::process::id()
            ),
            serde_json::json!({"plans": cfg.plans.len(), "continuous": continuous.names(), "pid": std::process::id()}),
        );
        Ok(Daemon {
            sched: schedule::Timetable::new(&cfg, Utc::now()),
            ctx,
            config_path,
            live,
            cfg,
            runs: runs::Runs::default(),
            continuous,
            retention: retention::Retention::default(),
            drills: drills::Drills::default(),
        })
    }

    /// Runs missed while the daemon was down, once each, inside their window.
    async fn catch_up(&mut self) {
        let log = self.ctx.log;
        let missed = {
            let (c, s) = (self.cfg.clone(), self.ctx.store.clone());
            tokio::task::spawn_blocking(move || schedule::missed_runs(&c, &s, Utc::now()))
                .await
                .unwrap_or_default()
        };
        let caught_up: Vec<&String> = missed.iter().map(|(p, _)| p).collect();
        log.event(
            "ready",
            format!(
                "scheduling; next time: {}",
                self.sched
                    .next_wake()
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "none".into())
            ),
            serde_json::json!({"caught_up": caught_up}),
        );
        for (plan, why) in &missed {
            log.event(
                "catch-up",
                format!("plan `{plan}`: {why}; catching up now"),
                serde_json::json!({"plan": plan, "why": why}),
            );
            self.runs
                .start(&self.ctx, &self.cfg, plan, trigger::CATCH_UP);
        }
    }

    /// Starts the plans' runs, the retention pass and the drills due at `now`.
    fn start_due(&mut self, now: DateTime<Utc>) {
        for plan in self.sched.due_plans(now) {
            self.runs
                .start(&self.ctx, &self.cfg, &plan, trigger::SCHEDULE);
        }
        if self.sched.retention_due(now) {
            self.retention.start(&self.ctx, &self.cfg);
        }
        for d in self.sched.due_drills(now) {
            self.drills.start(&self.ctx, &d);
        }
    }

    /// Re-reads the file; a valid one is put in force (timetable and
    /// continuous jobs follow), an invalid one is logged and ignored.
    fn reload(&mut self) {
        let log = self.ctx.log;
        let Some(new) = reload_file(&self.config_path, &log) else {
            return;
        };
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        self.sched.update(&new, Utc::now());
        self.continuous.reconcile(&self.ctx, &new);
        self.cfg = new;
        let names = self.continuous.names();
        log.event(
            "reloaded",
            format!(
                "reloaded {}: {} plan(s), continuous jobs: {}",
                self.config_path.display(),
                self.cfg.plans.len(),
                names.join(", ")
            ),
            serde_json::json!({"plans": self.cfg.plans.keys().collect::<Vec<_>>(), "continuous": names}),
        );
    }

    /// Stops starting runs and stops every child: SIGTERM, the grace, SIGKILL.
    async fn stop(mut self) {
        let (log, grace) = (self.ctx.log, self.ctx.grace);
        log.event(
            "stopping",
            format!(
                "stopping: no new runs; {} child process(es) get SIGTERM and {}s to finish",
                self.ctx.children.len(),
                grace.as_secs()
            ),
            serde_json::json!({"children": self.ctx.children.len(), "grace_s": grace.as_secs()}),
        );
        let sup = self.continuous.stop_all();
        self.ctx.children.stop_all(grace).await;
        for h in sup {
            let _ = h.await;
        }
        self.runs.wait_all(grace + Duration::from_secs(15)).await;
        self.retention
            .wait_all(grace + Duration::from_secs(5))
            .await;
        log.event(
            "stopped",
            "daemon stopped".to_string(),
            serde_json::json!({}),
        );
    }
}

/// Re-reads and validates the file; `None` (logged, with every error) keeps the old one.
fn reload_file(path: &std::path::Path, log: &Log) -> Option<Arc<Config>> {
    match lifeboat_config::load(path) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            let errors: Vec<String> = match &e {
                lifeboat_config::LoadError::Invalid(d) => {
                    d.0.iter().map(|x| x.to_string()).collect()
                }
                other => vec![other.to_string()],
            };
            log.event(
                "reload-refused",
                format!(
                    "reload refused: {} is not valid; the previous configuration keeps running:\n  {}",
                    path.display(),
                    errors.join("\n  ")
                ),
                serde_json::json!({"file": path.display().to_string(), "errors": errors}),
            );
            None
        }
    }
}

/// The plans, by name, whose schedule is `cfg`'s (for the timetable).
pub(crate) fn plan_schedules(cfg: &Config) -> BTreeMap<String, lifeboat_config::Schedule> {
    cfg.plans
        .iter()
        .map(|(n, p)| (n.clone(), p.schedule.clone()))
        .collect()
}
