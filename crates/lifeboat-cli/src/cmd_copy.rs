//! `lifeboat copy`: copy recovery points into a vault in another site.
//!
//! The source opens with `LIFEBOAT_PASSWORD` / `--password-file` and is only
//! read (a read-only vault or read-only credentials are enough: the
//! secondary site can pull); the target opens with `LIFEBOAT_TO_PASSWORD` /
//! `--to-password-file`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lifeboat_vault::copy::{Copier, CopyOptions, Outcome};
use lifeboat_vault::{Id, Location, PointFilter, RecoveryPoint, Vault, VaultError};

use crate::common::{Global, Progress, bytes, print_json, read_password, usage};

/// Arguments of `lifeboat copy`.
#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// Points to copy: ids, unique prefixes, or `latest` (of --resource/--kind).
    points: Vec<String>,
    /// The source vault (default: --vault / LIFEBOAT_VAULT). Only read.
    #[arg(long)]
    from: Option<String>,
    /// The target vault.
    #[arg(long)]
    to: String,
    /// Read the target vault's password from this file (else LIFEBOAT_TO_PASSWORD).
    #[arg(long, env = "LIFEBOAT_TO_PASSWORD_FILE")]
    to_password_file: Option<PathBuf>,
    /// Copy every point (of --resource / --kind when given).
    #[arg(long)]
    all: bool,
    /// Only points of this resource.
    #[arg(long)]
    resource: Option<String>,
    /// Only points of this kind (files, mysql, mysql-binlog, bucket); repeatable.
    #[arg(long)]
    kind: Vec<String>,
    /// Keep copying new points as they appear (e.g. a database's binlog
    /// archive) until SIGINT/SIGTERM; implies --all for the selection.
    #[arg(long)]
    follow: bool,
    /// With --follow: how often to look for new points.
    #[arg(long, default_value = "500ms", value_parser = crate::common::parse_duration)]
    interval: Duration,
    /// Retention of the copies in the target (`--retain-for`, `--lock`); the
    /// target vault's lock configuration applies as to its own backups.
    #[command(flatten)]
    retention: crate::cmd_retention::RetentionArgs,
    /// Per-vault S3 credentials.
    #[command(flatten)]
    credentials: crate::s3creds::CopyCredentials,
}

/// How long a following copy keeps one writer session in the target.
const SESSION: Duration = Duration::from_secs(5 * 60);

fn add(a: &mut lifeboat_vault::copy::CopyStats, b: &lifeboat_vault::copy::CopyStats) {
    a.points_copied += b.points_copied;
    a.points_present += b.points_present;
    a.blobs_sent += b.blobs_sent;
    a.bytes_read += b.bytes_read;
    a.bytes_sent += b.bytes_sent;
    a.blobs_skipped += b.blobs_skipped;
}

/// A vault's location with its credentials: every argument of both vaults
/// (a credentials file readable by others among them) is judged here,
/// before either vault is reached over the network.
fn locate(location: &str, which: &str, a: &CopyArgs) -> Result<Location> {
    let loc = Location::parse(location).map_err(|e| usage(format!("--{which}: {e}")))?;
    if which == "from" {
        a.credentials.from(loc)
    } else {
        a.credentials.to(loc)
    }
}

fn open(loc: &Location, password: &[u8], which: &str) -> Result<Vault> {
    Vault::open(loc, password).with_context(|| format!("cannot open the {which} vault"))
}

/// A copy's failure; a full disk can only be the target's (the source is
/// only read), so the message says which vault needs room.
fn on_target(e: VaultError, dst: &Vault) -> anyhow::Error {
    if e.is_no_space() {
        let to = dst.storage().location().to_string();
        anyhow::Error::new(e).context(format!(
            "no space left on the disk of the target vault {to}: free space there (or prune that vault) and run the copy again; what arrived is kept and is not sent again"
        ))
    } else {
        e.into()
    }
}

/// Points selected by the arguments, oldest first.
fn select(src: &Vault, a: &CopyArgs) -> Result<Vec<(Id, RecoveryPoint)>> {
    let kinds: Vec<&str> = a.kind.iter().map(String::as_str).collect();
    let filter = PointFilter::kinds(&kinds).resource(a.resource.as_deref());
    let (points, damaged) = src.list_points()?;
    for d in damaged {
        eprintln!("warning: source: {d}");
    }
    let mut sel: Vec<(Id, RecoveryPoint)> = if a.all || a.follow {
        points
            .into_iter()
            .filter(|(_, p)| filter.matches(p))
            .collect()
    } else {
        let mut v = Vec::new();
        for spec in &a.points {
            v.push(src.select_point(spec, &filter)?);
        }
        v
    };
    sel.sort_by(|x, y| x.1.time.cmp(&y.1.time).then(x.0.cmp(&y.0)));
    sel.dedup_by(|x, y| x.0 == y.0);
    Ok(sel)
}

/// `copy`: points (or all, or following new ones) from one vault into another.
pub fn run(g: &Global, a: CopyArgs) -> Result<ExitCode> {
    if a.points.is_empty() && !a.all && !a.follow {
        return Err(usage(
            "name the points to copy (ids, prefixes, `latest`), or pass --all (with --resource/--kind to narrow it)",
        ));
    }
    if !a.points.is_empty() && (a.all || a.follow) {
        return Err(usage("give either points or --all/--follow, not both"));
    }
    let (src, dst) = open_both(g, &a)?;
    let stop = crate::common::stop_backup_on_signals()?;
    let mut copier =
        Copier::start(&src, &dst, CopyOptions::default()).map_err(|e| on_target(e, &dst))?;
    let started = Instant::now();
    // A following copy ends its writer session from time to time: while its
    // lock lives, a prune of the target defers deleting what it marks.
    let mut session_started = Instant::now();
    let mut earlier = lifeboat_vault::copy::CopyStats::default();
    let mut done = Copied::default();
    loop {
        if let Some(code) = done.pass(g, &a, &mut copier, &src, &dst)? {
            return Ok(code);
        }
        if !a.follow || stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(a.interval);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if session_started.elapsed() > SESSION {
            add(&mut earlier, &copier.finish()?);
            copier = Copier::start(&src, &dst, CopyOptions::default())?;
            session_started = Instant::now();
        } else {
            copier.refresh_source_index()?;
        }
    }
    let mut stats = copier.finish().map_err(|e| on_target(e, &dst))?;
    add(&mut stats, &earlier);
    done.print_summary(g, &a, &stats, started.elapsed().as_secs_f64())?;
    Ok(crate::common::finished(&done.warnings))
}

/// The source and target vaults, each opened with its own password, the
/// target's retention applied.
fn open_both(g: &Global, a: &CopyArgs) -> Result<(Vault, Vault)> {
    let from =
        a.from.clone().or_else(|| g.vault.clone()).ok_or_else(|| {
            usage("no source vault: pass --from URL (or --vault / LIFEBOAT_VAULT)")
        })?;
    let src_pw = g.password(false)?;
    let dst_pw = read_password(
        "LIFEBOAT_TO_PASSWORD",
        a.to_password_file.as_ref(),
        "target vault password",
        false,
    )?;
    let (from, to) = (locate(&from, "from", a)?, locate(&a.to, "to", a)?);
    let src = open(&from, &src_pw, "from")?;
    let dst = open(&to, &dst_pw, "to")?;
    a.retention.apply(&dst).with_context(|| {
        format!(
            "cannot copy into the target vault {} with this retention",
            dst.storage().location()
        )
    })?;
    Ok((src, dst))
}

/// What a copy did so far: each point's result, warnings, and a follower's
/// lag per copied point.
#[derive(Default)]
struct Copied {
    results: Vec<serde_json::Value>,
    warnings: Vec<String>,
    lag_ms: Vec<f64>,
}

impl Copied {
    /// One pass: copies the selected points not yet there (all of them
    /// unless following), then folds the binlog seals a copied rollup holds.
    /// `Some(130)` when interrupted.
    fn pass(
        &mut self,
        g: &Global,
        a: &CopyArgs,
        copier: &mut Copier,
        src: &Vault,
        dst: &Vault,
    ) -> Result<Option<ExitCode>> {
        let sel = select(src, a)?;
        let todo: Vec<_> = sel
            .into_iter()
            .filter(|(id, p)| copier.present(id, p).is_none() || !a.follow)
            .collect();
        let total = todo.len();
        let c = copier.counters();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let d = done.clone();
        let progress = Progress::start(g.progress() && total > 0, move || {
            format!(
                "copying point {} of {total}: read {} of {} planned",
                d.load(Ordering::Relaxed) + 1,
                bytes(c.bytes_read.load(Ordering::Relaxed)),
                bytes(c.bytes_planned.load(Ordering::Relaxed)),
            )
        });
        let mut rollups = 0;
        for (id, p) in todo {
            match copier.copy_point(&id, &p) {
                Ok(o) => {
                    if self.record(g, a, &id, &p, o) {
                        rollups += 1;
                    }
                }
                Err(e @ VaultError::CopySource { .. }) => {
                    eprintln!("warning: {e}");
                    self.warnings.push(e.to_string());
                }
                Err(VaultError::Interrupted) => {
                    drop(progress);
                    return Ok(Some(crate::common::backup_interrupted()));
                }
                Err(e) => return Err(on_target(e, dst)),
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        drop(progress);
        // The seals a copied rollup holds are folded in the target too (the
        // archive does so in its own vault): no copy of every second's seal.
        if rollups > 0 {
            match lifeboat_mysql::segment::fold_superseded_seals(dst) {
                Ok(n) => tracing::info!("{n} binlog seal copies folded into their rollup"),
                Err(e) => self
                    .warnings
                    .push(format!("binlog seals not folded in the target: {e}")),
            }
        }
        Ok(None)
    }

    /// Records (and prints) one point's outcome; whether it was a binlog
    /// rollup that was copied.
    fn record(&mut self, g: &Global, a: &CopyArgs, id: &Id, p: &RecoveryPoint, o: Outcome) -> bool {
        let (target, copied) = match o {
            Outcome::Copied(t) => (t, true),
            Outcome::Present(t) => (t, false),
        };
        if copied && a.follow {
            let lag = (chrono::Utc::now() - p.time).num_milliseconds() as f64;
            self.lag_ms.push(lag);
        }
        if !g.json && !g.quiet {
            println!(
                "{} {} → {}  {} {}",
                if copied { "copied " } else { "present" },
                id.short(),
                target.short(),
                p.kind,
                p.resource
            );
        }
        self.results.push(serde_json::json!({
            "source": id.to_hex(), "target": target.to_hex(),
            "copied": copied, "kind": p.kind, "resource": p.resource,
        }));
        copied && p.kind == lifeboat_mysql::KIND_BINLOG && p.meta["rollup"] == true
    }

    /// The copy's figures: JSON (points, warnings, lag when following) or a line.
    fn print_summary(
        &self,
        g: &Global,
        a: &CopyArgs,
        stats: &lifeboat_vault::copy::CopyStats,
        secs: f64,
    ) -> Result<()> {
        if g.json {
            let mut j = serde_json::to_value(stats)?;
            j["points"] = self.results.clone().into();
            j["warnings"] = self.warnings.clone().into();
            j["duration_s"] = secs.into();
            if a.follow {
                let lag_ms = &self.lag_ms;
                j["lag_ms"] = serde_json::json!({
                    "samples": lag_ms.len(),
                    "max": lag_ms.iter().cloned().fold(0.0, f64::max),
                    "mean": lag_ms.iter().sum::<f64>() / (lag_ms.len().max(1) as f64),
                });
            }
            print_json(&j)?;
        } else if !g.quiet {
            println!(
                "{} point(s) copied, {} already present; blobs: {} sent, {} skipped; read {}, sent {} in {secs:.1}s",
                stats.points_copied,
                stats.points_present,
                stats.blobs_sent,
                stats.blobs_skipped,
                bytes(stats.bytes_read),
                bytes(stats.bytes_sent),
            );
        }
        Ok(())
    }
}
