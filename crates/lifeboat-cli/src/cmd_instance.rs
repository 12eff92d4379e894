//! `lifeboat backup instance`, `lifeboat restore instance`, `lifeboat instance stop`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lifeboat_files::Counters;
use lifeboat_instance::{InstanceSpec, RestoreOptions};
use lifeboat_vault::RecoveryPoint;

use crate::common::{Global, Progress, bytes, print_json, usage};

#[derive(Args, Debug)]
pub struct BackupInstanceArgs {
    /// The instance spec (TOML: name, paths, volumes, [launch], [hooks]).
    #[arg(long)]
    spec: PathBuf,
    /// Tag the point (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[command(flatten)]
    retention: crate::cmd_retention::RetentionArgs,
}

#[derive(Args, Debug)]
pub struct RestoreInstanceArgs {
    /// Point: full id, unique id prefix, or `latest` (the newest instance point).
    point: String,
    /// Target directory: a backed-up /opt/app becomes DIR/opt/app.
    #[arg(long)]
    to: PathBuf,
    /// Value of a launch spec placeholder `${KEY}` (repeatable), e.g.
    /// DATABASE_URL=mysql://… for this site's database.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Start the application afterwards and wait until its health URL answers 200.
    #[arg(long)]
    start: bool,
    /// Only a point of this resource (with `latest`: its newest instance point).
    #[arg(long)]
    resource: Option<String>,
    /// Write volume NAME (its path as backed up, or its file name) onto the
    /// block device DEV instead of under --to (repeatable). The device must
    /// be at least the volume's size, not mounted and not in use.
    #[arg(long = "volume-to", value_name = "NAME=DEV")]
    volume_to: Vec<String>,
    /// With --volume-to: write zeros over the volume's holes and zero blocks
    /// (without it they keep the device's old content: right for a new or
    /// discarded device, not for a used one).
    #[arg(long)]
    zero_holes: bool,
    #[command(flatten)]
    policy: crate::cmd_restore::PolicyArgs,
}

#[derive(Subcommand, Debug)]
pub enum InstanceCmd {
    /// Stop the application that `restore instance --start` started in DIR.
    Stop {
        /// The restore's target directory.
        dir: PathBuf,
    },
}

/// The consistency of an instance point (`crash`, `application`), else null.
pub fn consistency(p: &RecoveryPoint) -> serde_json::Value {
    if p.kind == lifeboat_instance::KIND {
        p.meta["consistency"].clone()
    } else {
        serde_json::Value::Null
    }
}

/// The last column of `points list`: tags, and an instance's consistency.
pub fn tags_column(p: &RecoveryPoint) -> String {
    let mut t = p.tags.join(",");
    if let Some(c) = consistency(p).as_str() {
        if !t.is_empty() {
            t.push(' ');
        }
        t.push_str(&format!("({c}-consistent)"));
    }
    t
}

pub fn backup(g: &Global, a: BackupInstanceArgs) -> Result<ExitCode> {
    let spec = InstanceSpec::load(&a.spec).map_err(|e| usage(e.to_string()))?;
    let v = g.open()?;
    a.retention.apply(&v)?;
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let bar = Progress::start(g.progress(), move || {
        format!(
            "{} files, {} read",
            c.files.load(Ordering::Relaxed),
            bytes(c.bytes_read.load(Ordering::Relaxed))
        )
    });
    let _span = tracing::info_span!("job", kind = "backup", protector = "instance").entered();
    let res = match crate::common::interruptible(bar, || {
        lifeboat_instance::backup(&v, &spec, &a.tags, &counters)
    })? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    crate::common::print_notes_and_warnings(g, &res.notes, &res.warnings);
    let s = &res.point.summary;
    if g.json {
        print_json(&serde_json::json!({
            "id": res.id.to_hex(),
            "resource": res.point.resource,
            "kind": res.point.kind,
            "parent": res.point.parent.map(|p| p.to_hex()),
            "consistency": res.consistency,
            "files": s.files,
            "dirs": s.dirs,
            "size": s.size,
            "bytes_read": s.bytes_read,
            "bytes_new": s.bytes_new,
            "bytes_stored": s.bytes_stored,
            "blobs_new": s.blobs_new,
            "duration_s": s.duration_s,
            "volumes": res.volumes,
            "warnings": res.warnings,
            "notes": res.notes,
        }))?;
    } else if g.quiet {
        println!("{}", res.id);
    } else {
        eprintln!(
            "instance {}: {} files, {} volume(s), {} in total; read {}, new {}, stored {} in {:.1}s; {}-consistent",
            res.point.resource,
            s.files,
            res.volumes.len(),
            bytes(s.size),
            bytes(s.bytes_read),
            bytes(s.bytes_new),
            bytes(s.bytes_stored),
            s.duration_s,
            res.consistency
        );
        println!("{}", res.id);
    }
    // A crash-consistent point is a complete point: the warning says why it
    // is not application-consistent; the exit code stays 0 for it alone.
    let incomplete: Vec<String> = res
        .warnings
        .iter()
        .filter(|w| !w.contains("crash-consistent"))
        .cloned()
        .collect();
    Ok(crate::common::finished(&incomplete))
}

fn parse_env(list: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kv in list {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(usage(format!(
                "--env {kv:?}: write KEY=VALUE, e.g. --env DATABASE_URL=mysql://user@host/db"
            )));
        };
        if !lifeboat_instance::spec::is_name(k) {
            return Err(usage(format!("--env {kv:?}: {k:?} is not a valid name")));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn parse_devices(list: &[String]) -> Result<Vec<(String, PathBuf)>> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), PathBuf::from(v))),
            _ => Err(usage(format!(
                "--volume-to {kv:?}: write NAME=DEVICE, e.g. --volume-to shop.img=/dev/sdb"
            ))),
        })
        .collect()
}

/// A restored instance: the point, what its restore reported, how long it
/// took, and its start when asked for.
struct Restored {
    id: lifeboat_vault::Id,
    point: RecoveryPoint,
    rep: lifeboat_instance::RestoreReport,
    restore_s: f64,
    started: Option<lifeboat_instance::supervise::Started>,
}

/// `restore instance`: a point's paths and volumes into a directory (and
/// devices), then its start when asked.
pub fn restore(g: &Global, a: RestoreInstanceArgs) -> Result<ExitCode> {
    let env = parse_env(&a.env)?;
    let devices = parse_devices(&a.volume_to)?;
    if a.zero_holes && devices.is_empty() {
        return Err(usage(
            "--zero-holes goes with --volume-to (a volume restored as a file keeps its holes as holes)",
        ));
    }
    if a.start && a.policy.dry_run {
        return Err(usage("--start and --dry-run exclude each other"));
    }
    let opts = RestoreOptions {
        to: a.to.clone(),
        env,
        overwrite: a.policy.overwrite(),
        devices,
        zero_holes: a.zero_holes,
        dry_run: a.policy.dry_run,
        delete: a.policy.delete,
        launch: None,
        part: lifeboat_instance::restore::Part::Whole,
    };
    let mut r = restore_point(g, &a, &opts)?;
    let code = files_outcome(&r.rep.files, &a.to);
    if a.start && code == ExitCode::SUCCESS {
        if r.rep.launch.is_none() {
            return Err(usage(
                "the point has no [launch] spec: there is nothing to start",
            ));
        }
        let to = std::path::absolute(&a.to)?;
        let s = lifeboat_instance::supervise::start(&to)
            .with_context(|| format!("starting the instance restored in {}", to.display()))?;
        r.started = Some(s);
    }
    if g.json {
        print_json(&restored_json(&r))?;
    } else if r.rep.dry_run {
        print_dry_run(g, &r, &a.to)?;
    } else if !g.quiet {
        print_done(&r, &a.to);
    }
    Ok(code)
}

/// Restores the chosen point with `opts`, a progress bar meanwhile.
fn restore_point(g: &Global, a: &RestoreInstanceArgs, opts: &RestoreOptions) -> Result<Restored> {
    let v = g.open()?;
    let reader = lifeboat_vault::lock::reader_lock(v.storage(), "restore")?;
    let (id, point) =
        crate::pick::select(&v, &a.point, crate::pick::INSTANCE, a.resource.as_deref())?;
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let begun = std::time::Instant::now();
    let bar = Progress::start(g.progress() && !a.policy.dry_run, move || {
        crate::common::fraction_line(
            c.bytes_written.load(Ordering::Relaxed),
            c.size.load(Ordering::Relaxed),
            begun.elapsed(),
            bytes,
        )
    });
    let _span = tracing::info_span!("job", kind = "restore", protector = "instance").entered();
    let rep =
        lifeboat_instance::restore(&v, &id, &point, opts, &counters).map_err(|e| match e {
            lifeboat_instance::InstanceError::MissingValues(_)
            | lifeboat_instance::InstanceError::Usage(_) => usage(e.to_string()),
            e => e.into(),
        })?;
    drop(bar);
    drop(reader);
    Ok(Restored {
        id,
        point,
        rep,
        restore_s: begun.elapsed().as_secs_f64(),
        started: None,
    })
}

/// Says what went wrong writing the files; the exit code (1 local errors,
/// 3 damaged parts: nothing is started then).
fn files_outcome(f: &lifeboat_files::RestoreReport, to: &std::path::Path) -> ExitCode {
    for w in &f.warnings {
        eprintln!("warning: {w}");
    }
    for d in &f.damaged {
        eprintln!("damaged, not restored: {d}");
    }
    for e in f.errors.iter().take(20) {
        eprintln!("error: {e}");
    }
    if !f.errors.is_empty() {
        eprintln!(
            "error: local errors writing {}; nothing was started",
            to.display()
        );
        ExitCode::from(1)
    } else if !f.damaged.is_empty() {
        eprintln!(
            "error: parts of the point are damaged; nothing was started (run `lifeboat vault check --read-data`)"
        );
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

/// The restore as JSON (`--json`).
fn restored_json(r: &Restored) -> serde_json::Value {
    let (rep, f, started) = (&r.rep, &r.rep.files, &r.started);
    serde_json::json!({
        "point": r.id.to_hex(),
        "resource": r.point.resource,
        "consistency": rep.consistency,
        "files": f.files,
        "dirs": f.dirs,
        "bytes": f.bytes,
        "restore_s": r.restore_s,
        "launch": rep.launch,
        "launch_json": rep.launch_json,
        "dry_run": rep.dry_run,
        "actions": f.actions,
        "unchanged": f.unchanged,
        "deleted": f.deleted,
        "devices": rep.devices,
        "started": started.is_some(),
        "pid": started.as_ref().map(|s| s.pid),
        "started_in_s": started.as_ref().map(|s| s.started_in_s),
        "health": started.as_ref().and_then(|s| s.health.clone()),
        "warnings": f.warnings,
        "damaged": f.damaged,
        "errors": f.errors,
    })
}

/// A volume's line: what a dry run would write onto its device, or what
/// was written.
fn volume_line(d: &lifeboat_instance::device::DeviceReport, dry_run: bool) -> String {
    let (data, holes) = (bytes(d.data_bytes), bytes(d.hole_bytes));
    if dry_run {
        let zeros = if d.holes_zeroed {
            format!(", {holes} of zeros")
        } else {
            String::new()
        };
        return format!(
            "write {} onto {} ({data} of data{zeros})",
            d.volume,
            d.device.display()
        );
    }
    let holes = if d.holes_zeroed {
        format!(", {holes} of holes zeroed")
    } else if d.hole_bytes > 0 {
        format!(
            "; its {holes} of holes and zero blocks keep the device's old content (give --zero-holes for a used device)"
        )
    } else {
        String::new()
    };
    format!(
        "volume {} written onto {}: {data} of data{holes}",
        d.volume,
        d.device.display()
    )
}

/// A dry run's lines: each action, each volume, the launch spec, a summary.
fn print_dry_run(g: &Global, r: &Restored, to: &std::path::Path) -> Result<()> {
    let (rep, f) = (&r.rep, &r.rep.files);
    for act in &f.actions {
        println!("{} {}", act.action, act.path);
    }
    for d in &rep.devices {
        println!("{}", volume_line(d, true));
    }
    if let Some(l) = &rep.launch {
        println!(
            "launch spec {}: {}",
            to.join("launch.json").display(),
            serde_json::to_string(l)?
        );
    }
    if !g.quiet {
        eprintln!(
            "dry run of instance {} to {}: {} actions, {} to write, {} device(s); nothing was written",
            r.point.resource,
            to.display(),
            f.actions.len(),
            bytes(f.total_bytes + rep.devices.iter().map(|d| d.data_bytes).sum::<u64>()),
            rep.devices.len()
        );
    }
    Ok(())
}

/// A done restore's lines: each volume, the summary, the launch spec, the start.
fn print_done(r: &Restored, to: &std::path::Path) {
    let (rep, f) = (&r.rep, &r.rep.files);
    for d in &rep.devices {
        eprintln!("{}", volume_line(d, false));
    }
    eprintln!(
        "restored instance {} ({}-consistent) to {}: {} files, {} in {:.1}s",
        r.point.resource,
        rep.consistency,
        to.display(),
        f.files,
        bytes(f.bytes),
        r.restore_s
    );
    if let Some(p) = &rep.launch_json {
        eprintln!("launch spec: {}", p.display());
    }
    if let Some(s) = &r.started {
        eprintln!(
            "started (pid {}), healthy after {:.1}s; output in {}; stop it with `lifeboat instance stop {}`",
            s.pid,
            s.started_in_s,
            s.log.display(),
            to.display()
        );
    }
}

pub fn run(g: &Global, cmd: InstanceCmd) -> Result<ExitCode> {
    match cmd {
        InstanceCmd::Stop { dir } => {
            let dir = std::path::absolute(&dir)?;
            let s = lifeboat_instance::supervise::stop(&dir)?;
            if g.json {
                print_json(&s)?;
            } else if !g.quiet {
                if s.was_running {
                    eprintln!(
                        "stopped pid {}{}",
                        s.pid,
                        if s.killed {
                            " (killed: it ignored SIGTERM for 10 s)"
                        } else {
                            ""
                        }
                    );
                } else {
                    eprintln!("pid {} had already ended", s.pid);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
