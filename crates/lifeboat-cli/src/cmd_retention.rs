//! Retention and lock: `--retain-for/--lock` on every backup command,
//! `vault configure` (the vault lock configuration), `points lock` (extend a
//! point's lock) and `vault stats`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use lifeboat_vault::retention::{self, LockSettings, RetentionRequest, format_duration};
use lifeboat_vault::{LockMode, Vault};

use crate::common::{Global, bytes, print_json, usage};

/// `--retain-for` and `--lock`, flattened into every command that writes points.
#[derive(clap::Args, Debug, Default)]
pub struct RetentionArgs {
    /// Keep each new point at least this long (e.g. 30d, 12w, 7y); nobody can
    /// delete it before (governance: unless --bypass-governance).
    #[arg(long, value_name = "DURATION")]
    retain_for: Option<String>,
    /// Lock mode of that retention: governance (deletable early with
    /// --bypass-governance) or compliance (by nobody, ever, before the date).
    #[arg(long, value_name = "MODE")]
    lock: Option<String>,
}

impl RetentionArgs {
    /// The request, checked against the vault's lock configuration and set
    /// on `vault` for every point it writes.
    pub fn apply(&self, vault: &Vault) -> Result<Option<RetentionRequest>> {
        let req = RetentionRequest::from_flags(self.retain_for.as_deref(), self.lock.as_deref())
            .map_err(usage)?;
        vault.set_retention_request(req)?;
        Ok(req)
    }
}

/// `vault configure`.
#[derive(clap::Args, Debug)]
pub struct ConfigureArgs {
    /// Every new point is kept at least this long (e.g. 7d).
    #[arg(long, value_name = "DURATION")]
    min_retention: Option<String>,
    /// No point may be retained longer than this (e.g. 10y).
    #[arg(long, value_name = "DURATION")]
    max_retention: Option<String>,
    /// Mode of the retention the vault gives points: governance or compliance.
    #[arg(long, value_name = "MODE", default_value = "governance")]
    lock: String,
    /// Cooling-off period: until it ends the configuration can be changed or
    /// removed; afterwards by nobody. At least 3d.
    #[arg(long, value_name = "DURATION", default_value = "3d")]
    changeable_for: String,
    /// Show the configuration in effect; change nothing.
    #[arg(long, conflicts_with_all = ["min_retention", "max_retention", "remove"])]
    show: bool,
    /// Remove the configuration (only during its cooling-off period).
    #[arg(long, conflicts_with_all = ["min_retention", "max_retention"])]
    remove: bool,
}

fn lock_json(state: &retention::LockState) -> serde_json::Value {
    match &state.effective {
        None => serde_json::json!({"configured": false}),
        Some(l) => serde_json::json!({
            "configured": true,
            "min_retention": l.min_retention().map(format_duration),
            "max_retention": l.max_retention().map(format_duration),
            "mode": l.mode.as_str(),
            "created": l.created.to_rfc3339(),
            "changeable_until": l.changeable_until.to_rfc3339(),
            "immutable": state.immutable,
            "objects": state.objects.len(),
        }),
    }
}

fn print_lock(state: &retention::LockState) {
    match &state.effective {
        None => println!("no vault lock configuration"),
        Some(l) => {
            println!(
                "minimum retention: {}",
                l.min_retention().map_or("none".into(), format_duration)
            );
            println!(
                "maximum retention: {}",
                l.max_retention().map_or("none".into(), format_duration)
            );
            println!("lock mode:         {}", l.mode.as_str());
            if state.immutable {
                println!(
                    "immutable since   {} (nobody can change or remove it)",
                    l.changeable_until.to_rfc3339()
                );
            } else {
                println!(
                    "changeable until  {} (then immutable)",
                    l.changeable_until.to_rfc3339()
                );
            }
        }
    }
}

fn duration(flag: &str, s: &str) -> Result<chrono::Duration> {
    retention::parse_duration(s).map_err(|e| usage(format!("{flag}: {e}")))
}

pub fn configure(g: &Global, a: ConfigureArgs) -> Result<ExitCode> {
    let v = g.open()?;
    // Judged on the storage's clock: a client's clock may be set to anything.
    let now = if a.show {
        v.now().unwrap_or_else(|_| Utc::now()) // only shown: a read-only copy too
    } else {
        v.now()?
    };
    if !a.show && !a.remove {
        let s = LockSettings {
            min_retention: a
                .min_retention
                .as_deref()
                .map(|s| duration("--min-retention", s))
                .transpose()?,
            max_retention: a
                .max_retention
                .as_deref()
                .map(|s| duration("--max-retention", s))
                .transpose()?,
            mode: LockMode::parse(&a.lock).map_err(|e| usage(format!("--lock: {e}")))?,
            changeable_for: duration("--changeable-for", &a.changeable_for)?,
        };
        if s.min_retention.is_none() && s.max_retention.is_none() {
            return Err(usage(
                "give --min-retention and/or --max-retention (or --show, --remove)",
            ));
        }
        retention::configure(&v, &s, now)?;
    } else if a.remove {
        let n = retention::remove(&v, now)?;
        if !g.json && !g.quiet {
            println!("removed the vault lock configuration ({n} object(s))");
        }
    }
    let state = retention::load(&v, now)?;
    if g.json {
        print_json(&lock_json(&state))?;
    } else if !g.quiet {
        print_lock(&state);
    }
    Ok(ExitCode::SUCCESS)
}

/// `points lock`.
#[derive(clap::Args, Debug)]
pub struct LockArgs {
    /// Point: full id or unique prefix.
    point: String,
    /// Keep it until this time (RFC 3339).
    #[arg(long, value_name = "TIME", conflicts_with = "retain_for")]
    retain_until: Option<DateTime<Utc>>,
    /// Keep it this long from now (e.g. 90d).
    #[arg(long, value_name = "DURATION")]
    retain_for: Option<String>,
    /// governance or compliance (default: the point's current mode).
    #[arg(long, value_name = "MODE")]
    lock: Option<String>,
    /// Allow shortening or removing a governance lock.
    #[arg(long)]
    bypass_governance: bool,
}

pub fn lock_point(g: &Global, a: LockArgs) -> Result<ExitCode> {
    let v = g.open()?;
    let until = match (&a.retain_until, &a.retain_for) {
        (Some(t), _) => *t,
        (None, Some(d)) => v.now()? + duration("--retain-for", d)?,
        (None, None) => return Err(usage("give --retain-until TIME or --retain-for DURATION")),
    };
    let mode = a
        .lock
        .as_deref()
        .map(LockMode::parse)
        .transpose()
        .map_err(|e| usage(format!("--lock: {e}")))?;
    let (id, _) = v.find_point(&a.point, None)?;
    let new_id = retention::extend(&v, &id, until, mode, a.bypass_governance)
        .with_context(|| format!("cannot lock recovery point {}", id.short()))?;
    let p = v.read_point(&new_id)?;
    let r = p.retention.expect("just locked");
    if g.json {
        print_json(&serde_json::json!({
            "old_id": id.to_hex(), "id": new_id.to_hex(),
            "retain_until": r.retain_until.to_rfc3339(), "mode": r.mode.as_str(),
        }))?;
    } else if !g.quiet {
        println!(
            "{} locked ({}) until {}{}",
            new_id,
            r.mode.as_str(),
            r.retain_until.to_rfc3339(),
            if new_id == id {
                String::new()
            } else {
                format!(" (was {}: a point's id is its content's hash)", id.short())
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn stats(g: &Global, lock: crate::common::NoLock) -> Result<ExitCode> {
    let v = g.open()?;
    let _reader = lock.reader_lock(&v, "list")?;
    let now = lock.shown_now(&v)?;
    let index = v.load_index()?;
    let s = lifeboat_vault::stats::stats(&v, &index, now)?;
    let state = retention::load(&v, now)?;
    if g.json {
        let mut j = serde_json::to_value(&s)?;
        j["vault_lock"] = lock_json(&state);
        print_json(&j)?;
        return Ok(ExitCode::SUCCESS);
    }
    let kinds: Vec<String> = s
        .points_by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    println!("points:            {} ({})", s.points, kinds.join(", "));
    if s.points_damaged > 0 {
        println!("damaged points:    {}", s.points_damaged);
    }
    println!("logical size:      {}", bytes(s.logical_bytes));
    println!(
        "unique data:       {} in {} blobs",
        bytes(s.unique_bytes),
        s.blobs
    );
    println!(
        "stored:            {} in {} packs ({} obsolete)",
        bytes(s.stored_bytes),
        s.packs,
        s.packs_obsolete
    );
    println!(
        "dedup ratio:       {:.2}   compression ratio: {:.2}   overall: {:.2}",
        s.dedup_ratio, s.compression_ratio, s.total_ratio
    );
    println!(
        "index:             {} in {} files",
        bytes(s.index_bytes),
        s.index_files
    );
    match (s.earliest_unlock, s.latest_unlock) {
        (Some(e), Some(l)) => println!(
            "locked points:     {} ({} compliance); first unlocks {}, last {}",
            s.locked_points,
            s.locked_compliance,
            e.to_rfc3339(),
            l.to_rfc3339()
        ),
        _ => println!("locked points:     0"),
    }
    print_lock(&state);
    Ok(ExitCode::SUCCESS)
}
