//! `lifeboat jobs list|show|run`: the job history, and running a plan now.

use std::process::ExitCode;

use anyhow::Result;
use lifeboat_control::store::{JobFilter, JobStore, SqliteStore, status};

use crate::cmd_apply::StateArg;
use crate::cmd_validate::{ConfigFile, load};
use crate::common::{Global, print_json};

#[derive(clap::Subcommand, Debug)]
pub enum JobsCmd {
    /// List jobs, newest first.
    List {
        #[command(flatten)]
        state: StateArg,
        /// Only this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Only this status (running, succeeded, incomplete, failed, interrupted, cancelled, skipped).
        #[arg(long)]
        status: Option<String>,
        /// Only this plan.
        #[arg(long)]
        plan: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one job in full.
    Show {
        #[command(flatten)]
        state: StateArg,
        /// The job's number.
        id: i64,
    },
    /// Cancel a running job: its process stops the backup cleanly (no point, data kept for the next run).
    Cancel {
        #[command(flatten)]
        state: StateArg,
        /// The job's number.
        id: i64,
    },
    /// Restore a files point (or one path of it) into a directory, recorded as a job of kind `restore`.
    Restore {
        #[command(flatten)]
        from: crate::cmd_jobs_restore::RestoreFrom,
        /// Only this path of the point (as backed up).
        #[arg(long)]
        path: Option<std::path::PathBuf>,
        /// Target directory.
        #[arg(long)]
        to: std::path::PathBuf,
        /// What to do with existing files (default: refuse a non-empty target).
        #[arg(long, value_parser = ["always", "if-changed", "never"])]
        overwrite: Option<String>,
    },
    /// Restore one database of a mysql point under a new name into its resource's server, recorded as a job of kind `restore`.
    RestoreDatabase(crate::cmd_jobs_restore::RestoreDbArgs),
    /// Restore a bucket point (or its keys under a prefix) into a bucket location, recorded as a job of kind `restore`; a target holding objects is refused without --overwrite.
    RestoreBucket(crate::cmd_jobs_restore::RestoreBucketArgs),
    /// Run a plan's backups now (each recorded as a job). Exit 0 all succeeded, 3 some incomplete, 1 some failed.
    Run {
        #[command(flatten)]
        file: ConfigFile,
        #[command(flatten)]
        state: StateArg,
        /// The plan.
        #[arg(long)]
        plan: String,
        /// Only this resource of the plan.
        #[arg(long)]
        resource: Option<String>,
        /// Why the run starts, as recorded in the history (the daemon and the API set it).
        #[arg(long, default_value = "manual", value_parser = clap::builder::PossibleValuesParser::new(lifeboat_control::launch::trigger::ALL))]
        trigger: String,
    },
}

/// Prints a restore job's outcome; its exit code (0, 3 incomplete, 1 failed).
pub(crate) fn restore_outcome(g: &Global, o: &lifeboat_control::run::Outcome) -> Result<ExitCode> {
    if g.json {
        print_json(o)?;
    } else {
        println!(
            "job {}: restore of {} {}{}",
            o.job,
            o.resource,
            o.status,
            o.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    Ok(match o.status.as_str() {
        status::SUCCEEDED => ExitCode::SUCCESS,
        status::INCOMPLETE => ExitCode::from(3),
        _ => ExitCode::from(1),
    })
}

pub(crate) fn open(state: &StateArg) -> Result<SqliteStore> {
    let dir = state.dir();
    dir.create()?;
    Ok(SqliteStore::open(&dir.jobs_db())?)
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Runs one `jobs` subcommand.
pub fn run(g: &Global, c: JobsCmd) -> Result<ExitCode> {
    match c {
        JobsCmd::List {
            state,
            resource,
            status: st,
            plan,
            limit,
        } => list(g, &state, resource, st, plan, limit),
        JobsCmd::Show { state, id } => show(g, &state, id),
        JobsCmd::Cancel { state, id } => cancel_job(g, &state, id),
        JobsCmd::Restore {
            from,
            path,
            to,
            overwrite,
        } => restore(g, from, path, &to, overwrite.as_deref()),
        JobsCmd::RestoreDatabase(a) => crate::cmd_jobs_restore::database(g, a),
        JobsCmd::RestoreBucket(a) => crate::cmd_jobs_restore::bucket(g, a),
        JobsCmd::Run {
            file,
            state,
            plan,
            resource,
            trigger,
        } => run_plan(g, &file, &state, &plan, resource.as_deref(), &trigger),
    }
}

/// `jobs list`: the history, newest first, as a table or JSON.
fn list(
    g: &Global,
    state: &StateArg,
    resource: Option<String>,
    st: Option<String>,
    plan: Option<String>,
    limit: usize,
) -> Result<ExitCode> {
    if let Some(s) = &st
        && !status::ALL.contains(&s.as_str())
    {
        return Err(crate::common::usage(format!(
            "unknown status `{s}`: use one of {}",
            status::ALL.join(", ")
        )));
    }
    let store = open(state)?;
    let jobs = store.list(&JobFilter {
        resource,
        status: st,
        plan,
        limit: Some(limit),
    })?;
    if g.json {
        print_json(&jobs)?;
    } else {
        println!(
            "{:>5}  {:<8} {:<16} {:<12} {:<11} {:<19}  {:>10}  point",
            "id", "kind", "resource", "plan", "status", "started", "duration"
        );
        for j in &jobs {
            let dur = j
                .ended
                .map(|e| format!("{:.1}s", (e - j.started).num_milliseconds() as f64 / 1000.0))
                .unwrap_or_else(|| "-".into());
            println!(
                "{:>5}  {:<8} {:<16} {:<12} {:<11} {:<19}  {:>10}  {}",
                j.id,
                j.kind,
                j.resource.as_deref().unwrap_or("-"),
                j.plan.as_deref().unwrap_or("-"),
                j.status,
                time(&j.started),
                dur,
                j.point
                    .as_deref()
                    .map(|p| &p[..p.len().min(8)])
                    .unwrap_or("-")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `jobs show`: one job in full.
fn show(g: &Global, state: &StateArg, id: i64) -> Result<ExitCode> {
    let store = open(state)?;
    let Some(j) = store.get(id)? else {
        return Err(crate::common::usage(no_job(id, state)));
    };
    if g.json {
        print_json(&j)?;
    } else {
        println!(
            "job {}: {} of {} ({})",
            j.id,
            j.kind,
            j.resource.as_deref().unwrap_or("-"),
            j.status
        );
        println!("  plan:    {}", j.plan.as_deref().unwrap_or("-"));
        println!("  vault:   {}", j.vault.as_deref().unwrap_or("-"));
        println!("  trigger: {}", j.trigger);
        println!("  started: {}", j.started.to_rfc3339());
        println!(
            "  ended:   {}",
            j.ended
                .map(|e| e.to_rfc3339())
                .unwrap_or_else(|| "-".into())
        );
        if let Some(b) = j.bytes {
            println!("  read:    {}", crate::common::bytes(b));
        }
        println!("  point:   {}", j.point.as_deref().unwrap_or("-"));
        if let Some(e) = &j.error {
            println!("  error:   {e}");
        }
        if !j.log.is_empty() {
            println!("  log:");
            for l in j.log.lines() {
                println!("    {l}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `jobs cancel`: asks a running job's process to stop.
fn cancel_job(g: &Global, state: &StateArg, id: i64) -> Result<ExitCode> {
    use lifeboat_control::cancel::{Cancel, cancel};
    let store = open(state)?;
    let pid = match cancel(&store, id)? {
        Cancel::Requested { pid } => pid,
        Cancel::NotFound => {
            return Err(crate::common::usage(no_job(id, state)));
        }
        Cancel::NotRunning { status } => {
            return Err(crate::common::usage(format!(
                "job {id} is not running (it is {status})"
            )));
        }
    };
    if g.json {
        print_json(&serde_json::json!({"id": id, "pid": pid, "requested": true}))?;
    } else if !g.quiet {
        println!(
            "asked job {id} (process {pid}) to stop; `lifeboat jobs show {id}` tells when it has"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `jobs restore`: a files point (or one path of it) into a directory, as a job.
fn restore(
    g: &Global,
    from: crate::cmd_jobs_restore::RestoreFrom,
    path: Option<std::path::PathBuf>,
    to: &std::path::Path,
    overwrite: Option<&str>,
) -> Result<ExitCode> {
    let (cfg, store) = match from.open(g)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let req = lifeboat_control::restore::RestoreRequest {
        vault: from.from_vault,
        point: from.point,
        resource: from.resource,
        path,
        to: std::path::absolute(to)?,
        overwrite: overwrite.map(|o| match o {
            "always" => lifeboat_files::Overwrite::Always,
            "if-changed" => lifeboat_files::Overwrite::IfChanged,
            _ => lifeboat_files::Overwrite::Never,
        }),
    };
    let o = lifeboat_control::restore::restore_files(&cfg, &req, &from.trigger, &store)?;
    restore_outcome(g, &o)
}

/// `jobs run`: a plan's backups now (one run of a plan at a time).
fn run_plan(
    g: &Global,
    file: &ConfigFile,
    state: &StateArg,
    plan: &str,
    resource: Option<&str>,
    trigger: &str,
) -> Result<ExitCode> {
    let cfg = match load(g, file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let store = open(state)?;
    // One run of a plan at a time, whoever starts it (the daemon,
    // the API, this command): a second start is a `skipped` job.
    let _plan_lock = match state.dir().lock_plan(plan)? {
        Ok(held) => held,
        Err(busy) => {
            let (id, why) = lifeboat_control::run::record_busy(&cfg, plan, trigger, &store, &busy)?;
            if g.json {
                print_json(&serde_json::json!({"skipped": id, "error": why}))?;
            }
            eprintln!("lifeboat: {why}; recorded as skipped job {id}");
            return Ok(ExitCode::from(1));
        }
    };
    // SIGINT/SIGTERM (`jobs cancel`) stop the backup cleanly; the job is recorded `cancelled`.
    crate::common::stop_backup_on_signals()?;
    let quiet = g.quiet || g.json;
    let out = lifeboat_control::run::run_plan(&cfg, plan, resource, trigger, &store, &|r| {
        if !quiet {
            eprintln!("backing up `{r}`…");
        }
    })?;
    if g.json {
        print_json(&out)?;
    } else {
        for o in &out {
            match &o.error {
                Some(e) => println!("job {}: {} {}: {e}", o.job, o.resource, o.status),
                None => println!(
                    "job {}: {} {} → point {}",
                    o.job,
                    o.resource,
                    o.status,
                    o.point.as_deref().unwrap_or("-")
                ),
            }
        }
    }
    let any = |s: &str| out.iter().any(|o| o.status == s);
    Ok(if any(status::CANCELLED) {
        ExitCode::from(130)
    } else if any(status::FAILED) {
        ExitCode::from(1)
    } else if any(status::INCOMPLETE) {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// "there is no job N", naming the state directory it was looked for in
/// (a job recorded with another `--state` is not there).
fn no_job(id: i64, state: &crate::cmd_apply::StateArg) -> String {
    let dir = state.dir().root;
    format!(
        "there is no job {id} in the job history of state directory {} (`lifeboat jobs list` lists it; a job recorded with another --state or LIFEBOAT_STATE is in that directory)",
        dir.display()
    )
}
