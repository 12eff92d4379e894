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
    let compliant = reports.iter().all(|r| r.compliant);
    if g.json {
        print_json(&serde_json::json!({"compliant": compliant, "resources": reports}))?;
    } else {
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
