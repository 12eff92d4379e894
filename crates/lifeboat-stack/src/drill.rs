//! `lifeboat drill`: a recovery into a scratch stack, checked, torn down,
//! recorded — recovery proven, not hoped for.
//!
//! The scratch stack lives under `SITE_ROOT/drills/STACK-TIME/` with its own
//! ports and directories: it never uses the endpoints the file declares, never
//! writes into a bucket replica, and only reads the site's vaults (under
//! reader locks), so the production stack and its retention are untouched.
//! After the stack is healthy, the stack's `check` runs (its `${…}` filled
//! with the scratch stack's outputs); then, after `keep_for`, the scratch is
//! stopped and removed. The report is a job of kind `drill` in the history.
//!
//! (Over 600 lines: a drill's recovery, check, teardown and record, kept together until the recovery pipeline cuts them into steps.)

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_config::{Config, Pick};
use serde::{Deserialize, Serialize};

use crate::recover::{RecoverOptions, RecoveryReport};
use crate::state::StackState;
use crate::{Result, StackError};

/// The stack's own check, run after the scratch stack is healthy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    /// The command as run.
    pub command: String,
    /// Its exit code (`None`: killed at the timeout or not started).
    pub exit: Option<i32>,
    /// The end of its output.
    pub output: String,
    /// How long it ran.
    pub duration_s: f64,
}

impl CheckReport {
    /// How it ended, in words: `exited with status 0`, `was stopped at the
    /// timeout or by a signal (no exit status)`.
    pub fn ended(&self) -> String {
        match self.exit {
            Some(code) => format!("exited with status {code}"),
            None => "did not exit by itself (stopped at the timeout, killed by a signal, or not started)".into(),
        }
    }
}

/// A drill's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillReport {
    /// The stack.
    pub stack: String,
    /// The site whose vaults it recovered from.
    pub site: String,
    /// The scratch stack's directory.
    pub scratch: PathBuf,
    /// The time recovered to (`None`: the newest).
    pub at: Option<DateTime<Utc>>,
    /// The recovery (steps, sources, RPO, RTO); `None` when it failed.
    pub recovery: Option<RecoveryReport>,
    /// Why the recovery failed.
    pub error: Option<String>,
    /// The stack's check, when it declares one.
    pub check: Option<CheckReport>,
    /// Recovery healthy and check passed.
    pub passed: bool,
    /// The scratch stack was stopped and removed.
    pub torn_down: bool,
    /// What of the scratch stack could not be removed (a scratch bucket on
    /// the site's endpoint), with why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teardown_error: Option<String>,
    /// The stack's objectives the recovery missed (`RPO 2.1 s is over the
    /// objective 1 s`): a drill that misses one fails, as `report` judges it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<String>,
    /// A fingerprint of the stack's declaration (members and their tables):
    /// a report whose fingerprint differs from the file's is "not verified
    /// since change".
    pub declaration: String,
    /// Instances whose launch spec in the file differs from the one in the
    /// point they were recovered from (the file's was used: the points were
    /// taken before the change; a new plan run copied to the site ends it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_spec_differs: Vec<String>,
}

impl DrillReport {
    /// The warning a drill gives when the file's launch specs differ from
    /// the points'.
    pub fn launch_spec_warning(&self) -> Option<String> {
        (!self.launch_spec_differs.is_empty()).then(|| {
            format!(
                "the launch spec of {} in lifeboat.toml differs from the one in the point it was recovered from; the drill used the file's (a new point, copied to site `{}`, carries it)",
                self.launch_spec_differs
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.site
            )
        })
    }
}

/// How a drill runs.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Which points.
    pub pick: Pick,
    /// How long the scratch stack stays up after the check.
    pub keep_for: Duration,
    /// Longest the check may run.
    pub check_timeout: Duration,
    /// Where the check's output is kept while it runs (the state
    /// directory's `drills/`); `None`: the scratch stack's directory.
    pub log_dir: Option<PathBuf>,
    /// Hears each step as it ends: the recovery's, the check, the teardown.
    pub on_step: Option<crate::recover::StepSink>,
}

/// A fingerprint of what a drill of `stack` proves: the stack's table and
/// its members' tables as the file declares them.
pub fn declaration(cfg: &Config, stack: &str) -> String {
    let mut v = serde_json::json!({ "stack": cfg.stacks.get(stack) });
    if let Some(s) = cfg.stacks.get(stack) {
        for m in &s.members {
            v[m] = serde_json::to_value(cfg.resources.get(m)).unwrap_or_default();
        }
    }
    let text = serde_json::to_vec(&v).expect("json");
    lifeboat_vault::Id::of_stored(&text).to_hex()[..16].to_string()
}

fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    lifeboat_vault::crypto::fill_random(&mut b);
    if n == 0 { 0 } else { u64::from_le_bytes(b) % n }
}

/// The time a `random-within` pick recovers to: a random second within the
/// last `within` that the site's databases can be restored to (their
/// restorable windows); without a database, a random point time. Never
/// before every other member has a point (a member with none at the
/// moment picked could not be recovered to it).
fn pick_time(cfg: &Config, stack: &str, site: &str, within: Duration) -> Result<DateTime<Utc>> {
    let now = Utc::now();
    // However far back it is asked (a typo of many 9s), never an overflow.
    let from = chrono::Duration::from_std(within)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let s = &cfg.stacks[stack];
    let vaults: Vec<(String, lifeboat_vault::Vault)> = cfg
        .vaults
        .iter()
        .filter(|(_, v)| v.site.as_deref() == Some(site))
        .filter_map(|(n, _)| {
            lifeboat_control::secret::open_vault(cfg, n)
                .ok()
                .map(|v| (n.clone(), v))
        })
        .collect();
    let is_database = |m: &String| {
        matches!(
            cfg.resources.get(m).map(|r| &r.kind),
            Some(lifeboat_config::ResourceKind::Mysql { .. })
        )
    };
    let points: Vec<lifeboat_vault::RecoveryPoint> = vaults
        .iter()
        .filter_map(|(_, v)| v.list_points_trusted().ok())
        .flat_map(|points| points.into_iter().map(|(_, p)| p))
        .filter(|p| s.members.contains(&p.resource))
        .collect();
    // The first moment at which every other member has a point.
    let floor = s
        .members
        .iter()
        .filter(|m| !is_database(m))
        .filter_map(|m| {
            points
                .iter()
                .filter(|p| &p.resource == m)
                .map(|p| p.time)
                .min()
        })
        .max();
    let from = floor.map_or(from, |f| f.max(from));
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for m in s.members.iter().filter(|m| is_database(m)) {
        for (_, v) in &vaults {
            if let Ok(c) = lifeboat_mysql::Catalog::load(v, m) {
                spans.extend(
                    c.windows()
                        .iter()
                        .map(|w| (w.from.max(from), w.to))
                        .filter(|(a, b)| a <= b),
                );
            }
        }
    }
    if spans.is_empty() {
        spans.extend(
            points
                .iter()
                .filter(|p| p.time >= from)
                .map(|p| (p.time, p.time)),
        );
    }
    if spans.is_empty() {
        return Err(StackError::Refused(format!(
            "nothing of stack `{stack}` in site `{site}` is restorable within the last {} s: no drill can pick from it",
            within.as_secs()
        )));
    }
    let total: i64 = spans
        .iter()
        .map(|(a, b)| (*b - *a).num_milliseconds() + 1)
        .sum();
    let mut r = random_below(total as u64) as i64;
    for (a, b) in &spans {
        let len = (*b - *a).num_milliseconds() + 1;
        if r < len {
            return Ok(*a + chrono::Duration::milliseconds(r));
        }
        r -= len;
    }
    Ok(spans[0].1)
}

/// Fills `${NAME}` of `text` from `values`; unknown names are left as they are.
fn fill(text: &str, values: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match values.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[i..i + 3 + end]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A private file for the check's output: `DIR/check-<random>.log` in a
/// directory made 0700 (its own when `dir` is the state directory's
/// `drills/`), created new (never an existing file or a link) with 0600.
fn check_log(dir: &std::path::Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut b = [0u8; 8];
    lifeboat_vault::crypto::fill_random(&mut b);
    let path = dir.join(format!("check-{:016x}.log", u64::from_le_bytes(b)));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)?;
    Ok((path, f))
}

/// Runs the check `command` (`sh -c`) in a process group of its own, its
/// output into a private file under `log_dir`; at `timeout` the whole group
/// is killed (a check's children too).
fn run_check(
    command: &str,
    timeout: Duration,
    log_dir: &std::path::Path,
    env: &[(String, String)],
) -> CheckReport {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut out = PathBuf::new();
    let spawned = check_log(log_dir).and_then(|(p, f)| {
        out = p;
        let f2 = f.try_clone()?;
        Command::new("sh")
            .arg("-c")
            .arg(command)
            .process_group(0)
            .env_remove("MYSQL_PWD")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
    });
    let exit = match spawned {
        Err(e) => {
            if !out.as_os_str().is_empty() {
                let _ = std::fs::remove_file(&out);
            }
            return CheckReport {
                command: command.into(),
                exit: None,
                output: format!(
                    "cannot start `sh -c` with its output in {}: {e}",
                    log_dir.display()
                ),
                duration_s: started.elapsed().as_secs_f64(),
            };
        }
        Ok(mut child) => loop {
            if let Ok(Some(st)) = child.try_wait() {
                break st.code();
            }
            if started.elapsed() > timeout {
                if let Some(pg) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pg, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        },
    };
    let output = crate::process::tail(&out, 20);
    let _ = std::fs::remove_file(&out);
    CheckReport {
        command: command.into(),
        exit,
        output,
        duration_s: started.elapsed().as_secs_f64(),
    }
}

/// The root passwords of the scratch stack's databases, for the check's
/// environment (never its command line): `NAME_PASSWORD` per database
/// (`shop-db` → `SHOP_DB_PASSWORD`), and `MYSQL_PWD` (which the `mariadb`
/// client reads) when there is one database.
fn check_env(scratch: &std::path::Path, stack: &str) -> Vec<(String, String)> {
    let Ok(Some(st)) = StackState::read(scratch, stack) else {
        return Vec::new();
    };
    let mut env: Vec<(String, String)> = st
        .members
        .iter()
        .filter_map(|(n, m)| {
            let var = n
                .chars()
                .map(|c| match c.to_ascii_uppercase() {
                    c @ ('A'..='Z' | '0'..='9') => c,
                    _ => '_',
                })
                .collect::<String>();
            Some((format!("{var}_PASSWORD"), m.password.clone()?.0))
        })
        .collect();
    if env.len() == 1 {
        env.push(("MYSQL_PWD".into(), env[0].1.clone()));
    }
    env
}

/// Runs a drill of `stack` from the vaults of `site`.
pub fn drill(cfg: &Config, stack: &str, site: &str, opts: &DrillOptions) -> Result<DrillReport> {
    let (s, site_root) = crate::stack::resolve(cfg, stack, site)?;
    let scratch = site_root.join("drills").join(format!(
        "{stack}-{}",
        Utc::now().format("%Y%m%dT%H%M%S%3fZ")
    ));
    let at = match opts.pick {
        Pick::Latest => None,
        Pick::RandomWithin(d) => Some(pick_time(cfg, stack, site, Duration::from_secs(d.0))?),
    };
    let ropts = RecoverOptions {
        at,
        failed_at: None,
        scratch: Some(scratch.clone()),
        planned: false,
        protect: false,
        on_step: opts.on_step.clone(),
    };
    let began = Instant::now();
    // The drill's own steps (after the recovery's), heard as they end.
    let tell = |what: String, t: Instant| {
        if let Some(sink) = &opts.on_step {
            (sink.0)(&crate::recover::Step {
                step: what,
                member: None,
                at_s: t.duration_since(began).as_secs_f64(),
                duration_s: t.elapsed().as_secs_f64(),
            });
        }
    };
    let (recovery, error) = match crate::recover::recover(cfg, stack, site, &ropts) {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let check = match (&recovery, &s.check) {
        (Some(r), Some(cmd)) => {
            let mut values = r.outputs.clone();
            values.insert("site.root".into(), scratch.display().to_string());
            if let Some(t) = r.newest_data {
                values.insert("recovered_at".into(), t.to_rfc3339());
            }
            let log_dir = opts
                .log_dir
                .clone()
                .unwrap_or_else(|| scratch.join("check"));
            let env = check_env(&scratch, stack);
            let t = Instant::now();
            let c = run_check(&fill(cmd, &values), opts.check_timeout, &log_dir, &env);
            tell(format!("the stack's check {}", c.ended()), t);
            Some(c)
        }
        _ => None,
    };
    let missed = recovery
        .as_ref()
        .map_or_else(Vec::new, |r| over_objectives(s, r.rpo_s, Some(r.rto_s)));
    let passed =
        recovery.is_some() && check.as_ref().is_none_or(|c| c.exit == Some(0)) && missed.is_empty();
    if recovery.is_some() && !opts.keep_for.is_zero() {
        std::thread::sleep(opts.keep_for);
    }
    let t = Instant::now();
    let (torn_down, teardown_error) = teardown(cfg, site, &scratch, stack);
    tell(
        match &teardown_error {
            None => "tear the scratch stack down".into(),
            Some(e) => format!("tear the scratch stack down: FAILED: {e}"),
        },
        t,
    );
    Ok(DrillReport {
        stack: stack.into(),
        site: site.into(),
        scratch,
        at,
        error,
        check,
        passed,
        torn_down,
        teardown_error,
        missed,
        declaration: declaration(cfg, stack),
        launch_spec_differs: recovery
            .iter()
            .flat_map(|r| &r.sources)
            .filter(|x| x.launch_spec_differs)
            .map(|x| x.member.clone())
            .collect(),
        recovery,
    })
}

/// The objectives of stack `s` that an RPO and RTO miss, in words: what a
/// drill fails on and what `report` says of the last drill.
fn over_objectives(s: &lifeboat_config::Stack, rpo: Option<f64>, rto: Option<f64>) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(o), Some(a)) = (s.objectives.rpo, rpo)
        && a > o.0 as f64
    {
        out.push(format!("RPO {a:.1} s is over the objective {} s", o.0));
    }
    if let (Some(o), Some(a)) = (s.objectives.rto, rto)
        && a > o.0 as f64
    {
        out.push(format!("RTO {a:.1} s is over the objective {} s", o.0));
    }
    out
}

/// Stops and removes a scratch stack (whatever of it came up), its scratch
/// buckets on the site's endpoint included; says what could not be removed.
fn teardown(
    cfg: &Config,
    site: &str,
    scratch: &std::path::Path,
    stack: &str,
) -> (bool, Option<String>) {
    let mut failed = Vec::new();
    if let Ok(Some(mut state)) = StackState::read(scratch, stack) {
        for (_, m) in state.members.iter_mut().rev() {
            let _ = crate::stack::stop_member(m);
        }
        failed = crate::stack::purge_buckets(cfg, site, &state);
        crate::launch::unlink_sockets(&state);
    }
    if let Err(e) = std::fs::remove_dir_all(scratch) {
        failed.push(format!("{}: {e}", scratch.display()));
    } else {
        let _ = std::fs::remove_dir(scratch.parent().expect("drills/"));
    }
    match failed.is_empty() {
        true => (true, None),
        false => (false, Some(failed.join("; "))),
    }
}

/// The first line of a drill job's log: what `report` reads back.
pub const SUMMARY_PREFIX: &str = "drill: ";

/// What a drill job records in its log's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillSummary {
    /// Recovery healthy and check passed.
    pub passed: bool,
    /// Achieved RPO.
    pub rpo_s: Option<f64>,
    /// Achieved RTO.
    pub rto_s: Option<f64>,
    /// The declaration fingerprint it proved.
    pub declaration: String,
    /// The time recovered to, for a random pick.
    pub at: Option<DateTime<Utc>>,
}

/// The recovery report a `drill` or `recover` job recorded in the history
/// (steps with their timings, sources, RPO, RTO); `None` for other jobs, a
/// drill whose recovery failed, or a job recorded before reports were kept.
pub fn report_of(job: &lifeboat_control::store::Job) -> Option<RecoveryReport> {
    let v: serde_json::Value = serde_json::from_str(job.report.as_deref()?).ok()?;
    match job.kind.as_str() {
        "drill" => serde_json::from_value(v.get("recovery")?.clone()).ok(),
        "recover" => serde_json::from_value(v).ok(),
        _ => None,
    }
}

/// A drill job's summary: from its whole report, else (a job recorded
/// before reports were kept) its log's first line.
pub fn summary_of(job: &lifeboat_control::store::Job) -> Option<DrillSummary> {
    if job.kind != "drill" {
        return None;
    }
    if let Some(r) = job
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str::<DrillReport>(r).ok())
    {
        return Some(r.summary());
    }
    job.log
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(SUMMARY_PREFIX))
        .and_then(|l| serde_json::from_str(l).ok())
}

impl DrillReport {
    /// What `report` and `/metrics` read back.
    pub fn summary(&self) -> DrillSummary {
        DrillSummary {
            passed: self.passed,
            rpo_s: self.recovery.as_ref().and_then(|r| r.rpo_s),
            rto_s: self.recovery.as_ref().map(|r| r.rto_s),
            declaration: self.declaration.clone(),
            at: self.at,
        }
    }

    /// The job log: the summary line, then a readable account.
    pub fn log(&self) -> String {
        let summary = self.summary();
        let mut log = format!(
            "{SUMMARY_PREFIX}{}\n",
            serde_json::to_string(&summary).expect("json")
        );
        if let Some(r) = &self.recovery {
            for s in &r.steps {
                log.push_str(&s.line());
                log.push('\n');
            }
        }
        if let Some(e) = &self.error {
            log.push_str(&format!("recovery failed: {e}\n"));
        }
        if let Some(c) = &self.check {
            log.push_str(&format!(
                "check `{}` {} after {:.1} s\n{}\n",
                c.command,
                c.ended(),
                c.duration_s,
                c.output
            ));
        }
        for m in &self.missed {
            log.push_str(&format!("objective missed: {m}\n"));
        }
        if let Some(e) = &self.teardown_error {
            log.push_str(&format!("teardown failed: {e}\n"));
        }
        if let Some(w) = self.launch_spec_warning() {
            log.push_str(&format!("warning: {w}\n"));
        }
        log
    }
}

/// A stack's verification state, from its newest drill job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackVerification {
    /// The stack.
    pub stack: String,
    /// Whether every control passed.
    pub compliant: bool,
    /// The newest drill's job id and time.
    pub last_drill: Option<(i64, DateTime<Utc>)>,
    /// Its summary.
    pub summary: Option<DrillSummary>,
    /// Failed controls, each with why.
    pub failed: Vec<String>,
    /// The newest drill is one kept in a vault, not in this host's history
    /// (`crate::kept`): where, when and by which host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<KeptDrill>,
}

/// A drill report read from a vault (`crate::kept`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptDrill {
    /// The vault it is kept in.
    pub vault: String,
    /// When it was kept (the drill's end).
    pub at: DateTime<Utc>,
    /// The host that ran it.
    pub host: String,
}

/// Per stack: the newest drill passed, within the objectives, and of the
/// declaration the file has now (else "not verified since change").
pub fn verification(
    cfg: &Config,
    store: &dyn lifeboat_control::store::JobStore,
) -> Result<Vec<StackVerification>> {
    let mut out = Vec::new();
    for (name, s) in &cfg.stacks {
        let jobs = store
            .list(&lifeboat_control::store::JobFilter {
                resource: Some(name.clone()),
                limit: Some(200),
                ..Default::default()
            })
            .map_err(|e| StackError::Process(e.to_string()))?;
        let last = jobs
            .into_iter()
            .find(|j| j.kind == "drill" && j.status != lifeboat_control::store::status::RUNNING);
        let summary = last.as_ref().and_then(summary_of);
        let failed = judge(cfg, name, s, summary.as_ref());
        out.push(StackVerification {
            stack: name.clone(),
            compliant: failed.is_empty(),
            last_drill: last.map(|j| (j.id, j.started)),
            summary,
            failed,
            kept: None,
        });
    }
    Ok(out)
}

/// The controls stack `name` (`s`) fails, judged by its newest drill's summary.
pub(crate) fn judge(
    cfg: &Config,
    name: &str,
    s: &lifeboat_config::Stack,
    summary: Option<&DrillSummary>,
) -> Vec<String> {
    let mut failed = Vec::new();
    match summary {
        None => failed.push("never drilled (`lifeboat drill --stack NAME --to SITE`)".to_string()),
        Some(d) => {
            if !d.passed {
                failed.push("the last drill failed (`lifeboat jobs show ID`)".into());
            }
            for m in over_objectives(s, d.rpo_s, d.rto_s) {
                failed.push(format!("the last drill's {m}"));
            }
            if d.declaration != declaration(cfg, name) {
                failed.push("not verified since change: the stack's declaration changed after its last drill".into());
            }
        }
    }
    failed
}
