//! `lifeboat drill`: recover a stack into a scratch stack, check it, tear it
//! down, record the report as a job. Exit 0 passed, 3 failed (recorded).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use lifeboat_config::Pick;
use lifeboat_control::store::{JobEnd, JobStore, NewJob, SqliteStore, status};

use crate::cmd_apply::StateArg;
use crate::cmd_validate::{ConfigFile, load};
use crate::common::{Global, print_json};

#[derive(clap::Args, Debug)]
pub struct DrillArgs {
    #[command(flatten)]
    file: ConfigFile,
    #[command(flatten)]
    state: StateArg,
    /// A drill the file declares (`[drill.NAME]`: its stack, site, pick, keep_for).
    #[arg(long, conflicts_with_all = ["stack", "to"])]
    drill: Option<String>,
    /// The stack to drill.
    #[arg(long, requires = "to")]
    stack: Option<String>,
    /// The site whose vaults it recovers from (the scratch stack lives under its root).
    #[arg(long)]
    to: Option<String>,
    /// `latest` or `random-within:7d` (default: the drill's, else latest).
    #[arg(long)]
    pick: Option<String>,
    /// Keep the scratch stack up this long after the check (e.g. 15m; default: the drill's, else 0).
    #[arg(long)]
    keep_for: Option<String>,
    /// Longest the stack's check may run.
    #[arg(long, default_value = "10m")]
    check_timeout: String,
    /// Why it runs, as recorded in the history (the daemon sets it).
    #[arg(long, default_value = "manual", value_parser = clap::builder::PossibleValuesParser::new(lifeboat_control::launch::trigger::ALL))]
    trigger: String,
}

/// The drill to run: its stack, site, pick and keep-for, from `--drill`
/// (its declaration) or `--stack`/`--to`, with the flags over them.
fn chosen(
    cfg: &lifeboat_config::Config,
    a: &DrillArgs,
) -> Result<(String, String, Pick, Duration)> {
    let (stack, site, mut pick, mut keep_for) = match &a.drill {
        Some(d) => {
            let dr = cfg.drills.get(d).ok_or_else(|| {
                crate::common::usage(format!(
                    "there is no drill `{d}` in the file (drills: {})",
                    cfg.drills.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            (
                dr.stack.clone(),
                dr.to.clone(),
                dr.pick,
                Duration::from_secs(dr.keep_for.0),
            )
        }
        None => match (&a.stack, &a.to) {
            (Some(s), Some(t)) => (s.clone(), t.clone(), Pick::Latest, Duration::ZERO),
            _ => {
                return Err(crate::common::usage(
                    "name a drill (--drill NAME) or a stack and a site (--stack NAME --to SITE)",
                ));
            }
        },
    };
    if let Some(p) = &a.pick {
        pick = Pick::parse(p).map_err(|e| crate::common::usage(format!("--pick: {e}")))?;
    }
    if let Some(k) = &a.keep_for {
        // Zero (`0`, `0s`) keeps nothing up: the default.
        keep_for = lifeboat_config::duration::parse_or_zero(k)
            .map(|d| d.std())
            .map_err(|e| crate::common::usage(format!("--keep-for {k:?}: {e}")))?;
    }
    Ok((stack, site, pick, keep_for))
}

pub fn run(g: &Global, a: DrillArgs) -> Result<ExitCode> {
    let cfg = match load(g, &a.file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let (stack, site, pick, keep_for) = chosen(&cfg, &a)?;
    let dir = a.state.dir();
    let opts = lifeboat_stack::drill::DrillOptions {
        pick,
        keep_for,
        // A timeout, as `--grace` and the file's timeouts: a bare number is seconds.
        check_timeout: lifeboat_vault::duration::parse_timeout(&a.check_timeout).map_err(|e| {
            crate::common::usage(format!("--check-timeout {:?}: {e}", a.check_timeout))
        })?,
        log_dir: Some(dir.root.join("drills")),
        // Each step on its own line as it ends (stdout is line-buffered,
        // so a pipe or a log sees them as they happen, not at the end).
        on_step: (!g.quiet && !g.json)
            .then(|| lifeboat_stack::recover::StepSink::new(|s| println!("  {}", s.line()))),
        scratch: Some(lifeboat_stack::drill::scratch_dir(&cfg, &stack, &site)?),
    };
    dir.create()?;
    let store = SqliteStore::open(&dir.jobs_db())?;
    let job = store.start(&NewJob {
        kind: "drill".into(),
        resource: Some(stack.clone()),
        plan: a.drill.clone(),
        trigger: a.trigger.clone(),
        vault: None,
    })?;
    let scratch = opts.scratch.clone().expect("chosen above");
    tear_down_on_signals(&cfg, &site, &stack, &scratch, &dir.jobs_db(), job)?;
    if !g.quiet && !g.json {
        eprintln!(
            "drill {job}: recovering stack `{stack}` from site `{site}` into a scratch stack…"
        );
    }
    let r = match lifeboat_stack::drill::drill(&cfg, &stack, &site, &opts) {
        Ok(r) => r,
        Err(e) => {
            store.finish(
                job,
                &JobEnd {
                    status: status::FAILED.into(),
                    error: Some(e.to_string()),
                    ..Default::default()
                },
            )?;
            return Err(e.into());
        }
    };
    record(&store, job, &r)?;
    // Kept in the site's vaults too: `report` on a host whose history never
    // saw this drill (the secondary, after the primary's loss) reads it there.
    let (_, not_kept) = lifeboat_stack::kept::keep(
        &cfg,
        &site,
        "drill",
        &stack,
        Some(job),
        &serde_json::to_value(&r)?,
    );
    if !g.quiet {
        for note in &r.swept {
            eprintln!("note: {note}");
        }
        let teardown = r
            .teardown_error
            .as_ref()
            .map(|e| format!("the scratch stack was not removed whole: {e}"));
        for w in not_kept
            .iter()
            .cloned()
            .chain(teardown)
            .chain(r.launch_spec_warning())
        {
            eprintln!("warning: {w}");
        }
    }
    if g.json {
        let mut j = serde_json::to_value(&r)?;
        j["job"] = job.into();
        print_json(&j)?;
    } else if !g.quiet {
        print_outcome(job, &stack, &r);
    }
    Ok(if r.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// On SIGINT or SIGTERM (Ctrl-C, the daemon's shutdown) the drill stops
/// where it is: its scratch stack — whatever of it came up — is torn down,
/// its job ends `cancelled`, and the process exits 130. (A drill killed
/// outright leaves its scratch stack to the next drill in the site.)
fn tear_down_on_signals(
    cfg: &lifeboat_config::Config,
    site: &str,
    stack: &str,
    scratch: &std::path::Path,
    jobs: &std::path::Path,
    job: i64,
) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let (cfg, site, stack) = (cfg.clone(), site.to_string(), stack.to_string());
    let (scratch, jobs) = (scratch.to_path_buf(), jobs.to_path_buf());
    std::thread::spawn(move || {
        let Some(sig) = signals.forever().next() else {
            return;
        };
        let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
        eprintln!("interrupted ({name}): tearing the scratch stack down…");
        let (_, failed) = lifeboat_stack::drill::teardown(&cfg, &site, &scratch, &stack);
        let error = match &failed {
            None => format!("interrupted ({name}); the scratch stack was torn down"),
            Some(e) => format!(
                "interrupted ({name}); the scratch stack was not removed whole: {e} (the next drill of the stack tries again)"
            ),
        };
        if let Some(e) = &failed {
            eprintln!("warning: the scratch stack was not removed whole: {e}");
        }
        if let Ok(store) = SqliteStore::open(&jobs) {
            let end = JobEnd {
                status: status::CANCELLED.into(),
                error: Some(error),
                ..Default::default()
            };
            let _ = store.finish(job, &end);
        }
        std::process::exit(130);
    });
    Ok(())
}

/// The drill's job ended in the store, with its log and whole report (the
/// store keeps the log's end; the report goes beside it).
fn record(store: &SqliteStore, job: i64, r: &lifeboat_stack::drill::DrillReport) -> Result<()> {
    let failure = (!r.passed).then(|| {
        r.error
            .clone()
            .or_else(|| r.missed.first().cloned())
            .unwrap_or_else(|| match &r.check {
                Some(c) => format!(
                    "the stack's check {}: {}",
                    c.ended(),
                    c.output.lines().last().unwrap_or("")
                ),
                None => "the drill failed".into(),
            })
    });
    store.finish(
        job,
        &JobEnd {
            status: match r.passed {
                true => status::SUCCEEDED,
                false => status::FAILED,
            }
            .into(),
            error: failure,
            log: r.log(),
            report: Some(serde_json::to_string(r)?),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// What is left to print after the steps (printed as they ended): what
/// went wrong, the check's own output, and the drill's one-line outcome.
fn print_outcome(job: i64, stack: &str, r: &lifeboat_stack::drill::DrillReport) {
    if let Some(e) = &r.error {
        println!("  recovery failed: {e}");
    }
    if let Some(c) = &r.check {
        println!("  check `{}` {}:", c.command, c.ended());
        for l in c.output.lines() {
            println!("    {l}");
        }
    }
    if let Some(rec) = &r.recovery {
        crate::cmd_stack::print_sources(rec);
    }
    match &r.recovery {
        Some(rec) => println!(
            "drill {job} of stack `{stack}`: {} — RPO {}, RTO {:.1} s{}; scratch stack {}",
            if r.passed { "passed" } else { "FAILED" },
            rec.rpo_s.map_or("-".into(), |v| format!("{v:.1} s")),
            rec.rto_s,
            r.at.map(|t| format!(", recovered to {}", t.to_rfc3339()))
                .unwrap_or_default(),
            if r.torn_down {
                "removed"
            } else {
                "NOT removed"
            }
        ),
        None => println!(
            "drill {job} of stack `{stack}`: FAILED — {}",
            r.error.as_deref().unwrap_or("")
        ),
    }
}
