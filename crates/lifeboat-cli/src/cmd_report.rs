//! `lifeboat report`: per resource, is it protected as the file says? Exit 0 compliant, 3 not.

use std::process::ExitCode;

use anyhow::Result;
use lifeboat_control::report::{ResourceReport, report};

use crate::cmd_validate::{ConfigFile, load};
use crate::common::{Global, print_json};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub file: ConfigFile,
    #[command(flatten)]
    pub state: crate::cmd_apply::StateArg,
}

/// Prints the failed controls of `reports` (the drift of `plan --drift`), as `! …` lines.
pub fn print_failed(reports: &[ResourceReport], skip_in_plan: bool) -> usize {
    let mut n = 0;
    for r in reports {
        for c in r
            .controls
            .iter()
            .filter(|c| !(c.ok || (skip_in_plan && c.name == "in-plan")))
        {
            println!("  ! resource {} {}: {}", r.resource, c.name, c.detail);
            n += 1;
        }
    }
    n
}

pub fn run(g: &Global, a: ReportArgs) -> Result<ExitCode> {
    let cfg = match load(g, &a.file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let reports = report(&cfg, chrono::Utc::now());
    // Stacks: their last drill (from the job history; none when it is empty).
    let stacks = if cfg.stacks.is_empty() {
        Vec::new()
    } else {
        let dir = a.state.dir();
        dir.create()?;
        let store = lifeboat_control::store::SqliteStore::open(&dir.jobs_db())?;
        // The drills kept in the vaults too: a host that never ran one (the
        // secondary, after the primary's loss) still knows the last.
        lifeboat_stack::kept::verification(&cfg, &store)?
    };
    let compliant = reports.iter().all(|r| r.compliant) && stacks.iter().all(|s| s.compliant);
    if g.json {
        print_json(
            &serde_json::json!({"compliant": compliant, "resources": reports, "stacks": stacks}),
        )?;
    } else {
        for s in &stacks {
            let figures = |d: &lifeboat_stack::drill::DrillSummary| {
                format!(
                    "RPO {}, RTO {}",
                    d.rpo_s.map_or("-".into(), |v| format!("{v:.1} s")),
                    d.rto_s.map_or("-".into(), |v| format!("{v:.1} s"))
                )
            };
            let drill = match (&s.last_drill, &s.kept, &s.summary) {
                (Some((id, at)), _, Some(d)) => format!(
                    "last drill {id} at {}: {}",
                    at.format("%Y-%m-%d %H:%M"),
                    figures(d)
                ),
                (None, Some(k), Some(d)) => format!(
                    "last drill at {} (kept in vault `{}`, run on {}): {}",
                    k.at.format("%Y-%m-%d %H:%M"),
                    k.vault,
                    k.host,
                    figures(d)
                ),
                _ => "no drill".into(),
            };
            println!(
                "{} stack {}: {}",
                if s.compliant { "✓" } else { "✗" },
                s.stack,
                drill
            );
            for f in &s.failed {
                println!("    FAIL {f}");
            }
        }
        for r in &reports {
            println!(
                "{} {} ({}): {}",
                if r.compliant { "✓" } else { "✗" },
                r.resource,
                r.kind,
                if r.compliant {
                    "compliant"
                } else {
                    "NOT compliant"
                }
            );
            for c in &r.controls {
                println!(
                    "    {} {:<22} {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        }
        let bad = reports.iter().filter(|r| !r.compliant).count();
        println!(
            "{} of {} resource(s) compliant",
            reports.len() - bad,
            reports.len()
        );
    }
    Ok(if compliant {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
