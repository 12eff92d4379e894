//! `lifeboat forget`: apply a retention policy to recovery points.

use std::process::ExitCode;

use anyhow::Result;
use lifeboat_vault::forget::{KeepPolicy, forget};

use crate::common::{Global, print_json, usage};

#[derive(clap::Args, Debug)]
pub struct ForgetArgs {
    /// Keep the newest N points.
    #[arg(long, default_value_t = 0)]
    keep_last: u32,
    /// Keep the newest point of each of the last N hours.
    #[arg(long, default_value_t = 0)]
    keep_hourly: u32,
    /// Keep the newest point of each of the last N days.
    #[arg(long, default_value_t = 0)]
    keep_daily: u32,
    /// Keep the newest point of each of the last N weeks.
    #[arg(long, default_value_t = 0)]
    keep_weekly: u32,
    /// Keep the newest point of each of the last N months.
    #[arg(long, default_value_t = 0)]
    keep_monthly: u32,
    /// Keep the newest point of each of the last N years.
    #[arg(long, default_value_t = 0)]
    keep_yearly: u32,
    /// Keep every point stored within this long before now (e.g. 30d), by
    /// the storage's times: a point stamped in the future does not move it.
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Only consider points of this resource.
    #[arg(long)]
    resource: Option<String>,
    /// Show what would be forgotten; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also forget points under a governance-mode lock (never compliance).
    #[arg(long, alias = "override-lock")]
    bypass_governance: bool,
}

pub fn run(g: &Global, a: ForgetArgs) -> Result<ExitCode> {
    let policy = KeepPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within_s: match &a.keep_within {
            Some(s) => lifeboat_vault::retention::parse_duration(s)
                .map_err(|e| usage(format!("--keep-within: {e}")))?
                .num_seconds(),
            None => 0,
        },
    };
    if policy.is_empty() {
        return Err(usage(
            "no --keep-* option given: that would forget every point; give at least one, e.g. --keep-last 7",
        ));
    }
    let v = g.open()?;
    let (points, _) = v.list_points()?;
    let points: Vec<_> = points
        .into_iter()
        .filter(|(_, p)| a.resource.as_ref().is_none_or(|r| &p.resource == r))
        .collect();
    // A database's archived binlog is kept for as long as a kept snapshot
    // can be rolled forward with it: the mysql protector's rule.
    let rules = lifeboat_mysql::forget_rules();
    let outcome = forget(&v, &points, &policy, &rules, a.dry_run, a.bypass_governance)?;
    let decisions = &outcome.decisions;
    if g.json {
        let notes: Vec<_> = outcome
            .time_notes
            .iter()
            .map(|(id, n)| serde_json::json!({"id": id.to_hex(), "note": n}))
            .collect();
        print_json(
            &serde_json::json!({"dry_run": a.dry_run, "decisions": decisions, "time_notes": notes}),
        )?;
    } else if !g.quiet {
        for d in decisions {
            println!(
                "{} {} {} {}  {}",
                if d.keep {
                    "keep  "
                } else if a.dry_run {
                    "forget?"
                } else {
                    "forget"
                },
                d.id.short(),
                d.time.format("%Y-%m-%d %H:%M:%S"),
                d.resource,
                d.reasons.join(", ")
            );
        }
        let n = decisions.iter().filter(|d| !d.keep).count();
        {
            println!(
                "{} {n} point(s), kept {}{}",
                if a.dry_run { "would forget" } else { "forgot" },
                decisions.len() - n,
                if a.dry_run || n == 0 {
                    ""
                } else {
                    "; run `lifeboat prune` to free the space"
                }
            );
        }
    }
    for (id, note) in &outcome.time_notes {
        eprintln!("warning: point {}: {note}", id.short());
    }
    for (id, why) in &outcome.not_deleted {
        eprintln!("warning: point {} was not forgotten: {why}", id.short());
    }
    if !outcome.not_deleted.is_empty() {
        eprintln!(
            "error: {} point(s) could not be forgotten; the others were",
            outcome.not_deleted.len()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
