//! `lifeboat stack up|down|status`: a stack's members provisioned in a site
//! (the embedded default: servers, buckets and hosts under the site's root).

use std::process::ExitCode;

use anyhow::Result;

use crate::cmd_validate::{ConfigFile, load};
use crate::common::{Global, print_json};

#[derive(clap::Args, Debug)]
pub struct Target {
    #[command(flatten)]
    file: ConfigFile,
    /// The stack (`[stack.NAME]` in the file).
    #[arg(long)]
    stack: String,
    /// The site it runs in (`[site.NAME]`, whose `root` holds it).
    #[arg(long)]
    site: String,
}

#[derive(clap::Subcommand, Debug)]
pub enum StackCmd {
    /// Provision the stack in the site and start it (idempotent: what runs already is kept).
    Up(Target),
    /// Stop the stack's processes (instances first); --purge also removes its directories.
    Down {
        #[command(flatten)]
        target: Target,
        /// Also remove the members' data directories (a scratch stack).
        #[arg(long)]
        purge: bool,
    },
    /// Check each member. Exit 0 all up, 3 some down.
    Status(Target),
}

pub fn run(g: &Global, c: StackCmd) -> Result<ExitCode> {
    match c {
        StackCmd::Up(t) => up(g, t),
        StackCmd::Down { target: t, purge } => down(g, t, purge),
        StackCmd::Status(t) => status(g, t),
    }
}

/// `stack up`: each member and what it provides, and the time it took.
fn up(g: &Global, t: Target) -> Result<ExitCode> {
    let quiet = g.quiet || g.json;
    let cfg = match load(g, &t.file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let started = std::time::Instant::now();
    let state = lifeboat_stack::up(&cfg, &t.stack, &t.site)?;
    let secs = started.elapsed().as_secs_f64();
    if !g.quiet {
        for w in &state.warnings {
            eprintln!("warning: {w}");
        }
    }
    if g.json {
        print_json(
            &serde_json::json!({"state": state, "duration_s": secs, "warnings": state.warnings}),
        )?;
    } else if !quiet {
        for (n, m) in &state.members {
            let what = ["dsn", "url", "location", "path"]
                .iter()
                .find_map(|k| m.outputs.get(*k))
                .cloned()
                .unwrap_or_default();
            println!("  {n:<20} {:<9} {what}", m.kind);
        }
        println!(
            "stack `{}` is up in site `{}` ({secs:.1} s)",
            t.stack, t.site
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `stack down`: a line per member as it goes, then what was done.
fn down(g: &Global, t: Target, purge: bool) -> Result<ExitCode> {
    let quiet = g.quiet || g.json;
    let cfg = match load(g, &t.file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    // A line per member as it goes (stopping servers and removing
    // data can take a minute; stderr, so `--json` stays parseable).
    let progress = |l: &str| {
        if !g.quiet {
            eprintln!("  {l}");
        }
    };
    let state = lifeboat_stack::down(&cfg, &t.stack, &t.site, purge, &progress)?;
    if g.json {
        print_json(
            &serde_json::json!({"stopped": state.is_some(), "purged": purge && state.is_some()}),
        )?;
    } else if !quiet {
        match state {
            None => println!(
                "stack `{}` was never brought up in site `{}`",
                t.stack, t.site
            ),
            Some(_) if purge => println!(
                "stack `{}` in site `{}` is down and its directories are removed",
                t.stack, t.site
            ),
            Some(_) => println!(
                "stack `{}` in site `{}` is down (data kept; `stack up` starts it again)",
                t.stack, t.site
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `stack status`: each member's status; exit 3 when some are not up.
fn status(g: &Global, t: Target) -> Result<ExitCode> {
    let cfg = match load(g, &t.file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let members = lifeboat_stack::stack::status(&cfg, &t.stack, &t.site)?;
    let all_up = members.iter().all(|m| m.status == "up");
    if g.json {
        print_json(
            &serde_json::json!({"stack": t.stack, "site": t.site, "up": all_up, "members": members}),
        )?;
    } else if !g.quiet {
        for m in &members {
            println!(
                "  {:<20} {:<9} {:<8} {:<28} {}",
                m.name,
                m.kind,
                m.status,
                address(&m.outputs),
                m.detail.as_deref().unwrap_or("")
            );
        }
        println!(
            "stack `{}` in site `{}`: {}",
            t.stack,
            t.site,
            if all_up { "up" } else { "not all up" }
        );
    }
    Ok(if all_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// A recovery's report in words (its steps were printed as they ended):
/// each member's source, what protects it now, the fences, warnings, the
/// stack's addresses, and the RPO and RTO against their objectives.
fn print_recovery(r: &lifeboat_stack::recover::RecoveryReport) {
    print_sources(r);
    print_after_sources(r);
}

/// Each member's source and its own RPO, with why (a drill prints them too:
/// its stack's RPO is its worst member's, named here).
pub(crate) fn print_sources(r: &lifeboat_stack::recover::RecoveryReport) {
    println!("sources:");
    for s in &r.sources {
        println!(
            "  {:<16} {:<9} {:<13} {}  data from {}, RPO {}{}",
            s.member,
            s.kind,
            s.from,
            s.point
                .as_deref()
                .map(|p| &p[..12.min(p.len())])
                .unwrap_or("-"),
            s.data_time.map_or("-".into(), |t| t
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            secs(s.rpo_s),
            if s.stateless {
                " (stateless: not in the stack's RPO)"
            } else {
                ""
            }
        );
        println!("  {:<16} {}", "", s.why);
        if let Some(from) = &s.launch_spec {
            println!(
                "  {:<16} launch spec: from {from}{}",
                "",
                if s.launch_spec_differs {
                    " (the point's differs: the file's is used)"
                } else {
                    ""
                }
            );
        }
    }
}

/// The rest of a recovery's report: protection, fences, warnings,
/// addresses, objectives.
fn print_after_sources(r: &lifeboat_stack::recover::RecoveryReport) {
    for p in &r.protection {
        match (p.archive_pid, p.binlog_from) {
            (Some(pid), Some(from)) => println!(
                "  {} is protected: snapshot {} in vault `{}`, binlog archive running (pid {pid}, binlog from file {from})",
                p.member,
                &p.snapshot[..12],
                p.vault,
            ),
            _ => println!(
                "  {} is protected: first {} point {} in vault `{}`",
                p.member,
                p.kind,
                &p.snapshot[..12],
                p.vault,
            ),
        }
    }
    for f in r.switchover.iter().flat_map(|q| &q.fences) {
        println!("  {}", fence_line(f));
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    for (k, v) in &r.outputs {
        if k.ends_with(".url") || k.ends_with(".dsn") || k.ends_with(".location") {
            println!("  {k} = {v}");
        }
    }
    println!(
        "stack `{}` recovered in site `{}`: RPO {} (objective {}), {} (RTO objective {})",
        r.stack,
        r.site,
        secs(r.rpo_s),
        r.objectives.rpo_s.map_or("-".into(), |v| format!("{v} s")),
        times(r),
        r.objectives.rto_s.map_or("-".into(), |v| format!("{v} s")),
    );
}

/// Where a member answers: a server's `host:port` (and its socket), an
/// instance's URL, a bucket's location, a directory.
fn address(o: &std::collections::BTreeMap<String, String>) -> String {
    if let (Some(h), Some(p)) = (o.get("host"), o.get("port")) {
        return match o.get("socket") {
            Some(s) => format!("{h}:{p} (socket {s})"),
            None => format!("{h}:{p}"),
        };
    }
    ["url", "location", "path"]
        .iter()
        .find_map(|k| o.get(*k))
        .cloned()
        .unwrap_or_default()
}

#[derive(clap::Args, Debug)]
pub struct RecoverArgs {
    #[command(flatten)]
    file: ConfigFile,
    #[command(flatten)]
    state: crate::cmd_apply::StateArg,
    /// The stack (`[stack.NAME]` in the file).
    #[arg(long)]
    stack: String,
    /// The site to recover into (its vaults hold the copies; its root holds the new stack).
    #[arg(long)]
    to: String,
    /// Recover the databases to this moment (RFC 3339) instead of their newest restorable second.
    #[arg(long, value_name = "TIME|latest", default_value = "latest")]
    at: String,
    /// When the primary failed (RFC 3339), for the achieved RPO; default: when the recovery starts.
    #[arg(long, value_name = "TIME", conflicts_with = "planned")]
    failed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Planned switchover (the primary is alive): stop its writes, drain its binlog archive and
    /// bucket replication into the site, then recover with nothing lost.
    #[arg(long, conflicts_with = "at")]
    planned: bool,
    /// Do not protect the recovered members at once (by default, as soon as the stack is healthy,
    /// each gets a first point in the vault it was recovered from; a database also its binlog archive).
    #[arg(long)]
    no_protect: bool,
}

type History = Option<(lifeboat_control::store::SqliteStore, i64)>;

fn record_start(state: &crate::cmd_apply::StateArg, stack: &str, planned: bool) -> History {
    use lifeboat_control::store::{JobStore, NewJob, SqliteStore};
    let dir = state.dir();
    let opened = dir
        .create()
        .map_err(|e| e.to_string())
        .and_then(|_| SqliteStore::open(&dir.jobs_db()).map_err(|e| e.to_string()))
        .and_then(|s| {
            s.start(&NewJob {
                kind: "recover".into(),
                resource: Some(stack.to_string()),
                plan: planned.then(|| "planned".to_string()),
                trigger: "manual".into(),
                vault: None,
            })
            .map(|id| (s, id))
            .map_err(|e| e.to_string())
        });
    match opened {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("warning: the recovery is not recorded in the job history: {e}");
            None
        }
    }
}

fn record_end(
    h: History,
    r: std::result::Result<&lifeboat_stack::recover::RecoveryReport, &str>,
) -> Option<i64> {
    use lifeboat_control::store::{JobEnd, JobStore, status};
    let (store, id) = h?;
    let end = match r {
        Ok(r) => JobEnd {
            status: if r.warnings.is_empty() {
                status::SUCCEEDED
            } else {
                status::INCOMPLETE
            }
            .into(),
            error: (!r.warnings.is_empty()).then(|| r.warnings.join("; ")),
            log: format!(
                "recovered into site `{}`: RPO {}, {}\n",
                r.site,
                secs(r.rpo_s),
                times(r)
            ) + &r.steps.iter().map(|s| s.line() + "\n").collect::<String>(),
            report: serde_json::to_string(r).ok(),
            ..Default::default()
        },
        Err(e) => JobEnd {
            status: status::FAILED.into(),
            error: Some(e.to_string()),
            ..Default::default()
        },
    };
    if let Err(e) = store.finish(id, &end) {
        eprintln!("warning: the recovery's job {id} could not be finished in the history: {e}");
    }
    Some(id)
}

fn secs(s: Option<f64>) -> String {
    s.map_or("-".into(), |v| format!("{v:.1} s"))
}

/// The downtime (failure → healthy) when the failure time is known, and
/// the recovery's own time (`recover`'s start → healthy), labelled.
fn times(r: &lifeboat_stack::recover::RecoveryReport) -> String {
    match r.downtime_s {
        // A switchover's downtime starts when it stopped the writes, after
        // the recovery's own start (its checks ran while the shop served).
        Some(d) if r.switchover.is_some() => format!(
            "downtime {} (writes stopped → healthy; the whole switchover {})",
            secs(Some(d)),
            secs(Some(r.recovery_s))
        ),
        Some(d) => format!(
            "downtime {} (failure → healthy; the recovery itself {})",
            secs(Some(d)),
            secs(Some(r.recovery_s))
        ),
        None => format!(
            "recovery {} (`recover`'s start → healthy; give --failed-at for the downtime)",
            secs(Some(r.recovery_s))
        ),
    }
}

pub fn recover(g: &Global, a: RecoverArgs) -> Result<ExitCode> {
    let cfg = match load(g, &a.file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let at = match a.at.as_str() {
        "latest" => None,
        t => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| {
                    crate::common::usage(format!(
                        "--at {t:?}: {e} (write an RFC 3339 time or `latest`)"
                    ))
                })?
                .with_timezone(&chrono::Utc),
        ),
    };
    if !g.quiet && !g.json {
        eprintln!(
            "recovering stack `{}` into site `{}` from what it holds…",
            a.stack, a.to
        );
    }
    let opts = lifeboat_stack::recover::RecoverOptions {
        at,
        failed_at: a.failed_at,
        scratch: None,
        planned: a.planned,
        protect: !a.no_protect,
        // Each step printed as it ends (also into a pipe), not all at the end.
        on_step: (!g.quiet && !g.json).then(|| {
            println!("steps:");
            lifeboat_stack::recover::StepSink::new(|s| println!("  {}", s.line()))
        }),
    };
    // The recovery is recorded in the job history (the console and `jobs`
    // show its report); a history that cannot be opened never stops it.
    let history = record_start(&a.state, &a.stack, a.planned);
    let r = match lifeboat_stack::recover::recover(&cfg, &a.stack, &a.to, &opts) {
        Ok(r) => r,
        Err(e) => {
            record_end(history, Err(&e.to_string()));
            return Err(e.into());
        }
    };
    let job = record_end(history, Ok(&r));
    // Kept in the vaults of the site it recovered from, beside the data.
    let mut r = r;
    let (_, not_kept) = lifeboat_stack::kept::keep(
        &cfg,
        &a.to,
        "recover",
        &a.stack,
        job,
        &serde_json::to_value(&r)?,
    );
    r.warnings.extend(not_kept);
    if g.json {
        let mut j = serde_json::to_value(&r)?;
        if let Some(id) = job {
            j["job"] = id.into();
        }
        print_json(&j)?;
    } else if !g.quiet {
        print_recovery(&r);
    }
    let missed = r.objectives.rpo_met == Some(false) || r.objectives.rto_met == Some(false);
    Ok(if missed || !r.warnings.is_empty() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// How the old primary's database is fenced after a switchover, in words.
fn fence_line(f: &lifeboat_stack::planned::Fence) -> String {
    match &f.writable_by {
        None => format!(
            "the old primary's `{}` is fenced: its server is shut down",
            f.member
        ),
        Some(ours) => format!(
            "the old primary's `{}` is fenced: read-only, {} connection(s) ended, accounts that ignore read-only locked ({}); Lifeboat's own account {ours} still can write: no application may use it (to lift the fence: {})",
            f.member,
            f.killed_connections,
            if f.locked_accounts.is_empty() {
                "none".to_string()
            } else {
                f.locked_accounts.join(", ")
            },
            f.undo.as_deref().unwrap_or("")
        ),
    }
}
