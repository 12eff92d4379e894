//! `lifeboat forget`: apply a retention policy to recovery points.

use std::process::ExitCode;

use anyhow::{Result, bail};
use lifeboat_vault::forget::{KeepPolicy, apply};

use crate::common::{Global, print_json};

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
    /// Only consider points of this resource.
    #[arg(long)]
    resource: Option<String>,
    /// Show what would be forgotten; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also forget points under a governance-mode lock.
    #[arg(long)]
    override_lock: bool,
}

pub fn run(g: &Global, a: ForgetArgs) -> Result<ExitCode> {
    let policy = KeepPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
    };
    if policy.is_empty() {
        bail!(
            "no --keep-* option given: that would forget every point; give at least one, e.g. --keep-last 7"
        );
    }
    let v = g.open()?;
    let (points, _) = v.list_points()?;
    let points: Vec<_> = points
        .into_iter()
        .filter(|(_, p)| a.resource.as_ref().is_none_or(|r| &p.resource == r))
        .collect();
    let mut decisions = apply(&points, &policy, chrono::Utc::now());
    // A database's archived binlog is kept for as long as a kept snapshot
    // can be rolled forward with it, whatever the policy says of its points.
    let kept: std::collections::HashSet<_> = decisions
        .iter()
        .filter(|d| d.keep && d.kind == lifeboat_mysql::KIND_SNAPSHOT)
        .map(|d| d.id)
        .collect();
    let needed = lifeboat_mysql::catalog::binlog_points_needed(&points, &|id| kept.contains(id));
    for d in decisions
        .iter_mut()
        .filter(|d| d.kind == lifeboat_mysql::KIND_BINLOG)
    {
        d.reasons.clear();
        if let Some((_, why)) = needed.iter().find(|(id, _)| *id == d.id) {
            d.reasons.push(why.clone());
        }
        let locked = points
            .iter()
            .any(|(id, p)| *id == d.id && p.is_locked(chrono::Utc::now(), false));
        if locked {
            d.reasons.push("locked".into());
        }
        d.keep = !d.reasons.is_empty();
    }
    let mut refused = Vec::new();
    if !a.dry_run {
        for d in decisions.iter_mut().filter(|d| !d.keep) {
            if let Err(e) = v.remove_point(&d.id, a.override_lock) {
                d.keep = true;
                d.reasons.push(format!("not deleted: {e}"));
                refused.push(e.to_string());
            }
        }
    }
    if g.json {
        print_json(&serde_json::json!({"dry_run": a.dry_run, "decisions": decisions}))?;
    } else if !g.quiet {
        for d in &decisions {
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
    for r in &refused {
        eprintln!("warning: {r}");
    }
    Ok(ExitCode::SUCCESS)
}
