//! `lifeboat backup mysql`, `lifeboat restore mysql`, `lifeboat archive mysql`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use lifeboat_mysql::{Counters, Dsn, RestoreOptions, SnapshotOptions};

use crate::common::{Global, Progress, bytes, print_json};

/// Flags naming the server.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Server: mysql://USER[:PASSWORD]@HOST[:PORT][?socket=/path]; the password may
    /// instead be in LIFEBOAT_MYSQL_PASSWORD.
    #[arg(long, env = "LIFEBOAT_MYSQL_DSN")]
    pub dsn: String,
}

/// `backup mysql`.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Only these databases (comma-separated; default: every user database).
    #[arg(long, value_delimiter = ',')]
    databases: Option<Vec<String>>,
    /// Also back up users and their grants.
    #[arg(long)]
    users: bool,
    /// Connections dumping in parallel.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Cut tables bigger than this (MiB) into key ranges dumped in parallel.
    #[arg(long, default_value_t = 64)]
    chunk_mib: u64,
    /// Resource name (default: mysql:HOST:PORT); points of one resource form its history.
    #[arg(long)]
    resource: Option<String>,
    /// Tag the point (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
}

/// `restore mysql`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Point: a snapshot's id or unique prefix, or `latest`. With --at, any point of
    /// the resource (or `latest`): the newest snapshot before that time is used.
    point: String,
    #[command(flatten)]
    server: ServerArgs,
    /// Point in time: RFC 3339 (e.g. 2026-11-25T10:00:00Z), `latest` (everything
    /// archived), a GTID (0-1-123, inclusive) or FILE:POS. Replays the archived binlog.
    #[arg(long)]
    at: Option<String>,
    /// Only these databases of the point (comma-separated).
    #[arg(long, value_delimiter = ',')]
    databases: Option<Vec<String>>,
    /// Restore database OLD as NEW (repeatable).
    #[arg(long = "rename", value_parser = parse_rename)]
    renames: Vec<(String, String)>,
    /// Replace target databases that are not empty.
    #[arg(long)]
    force: bool,
    /// Sessions loading in parallel.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Also restore users and grants.
    #[arg(long)]
    users: bool,
    /// Write the restored rows into the target's binary log (off by default: faster).
    #[arg(long)]
    write_binlog: bool,
    /// With `latest`: the newest snapshot of this resource.
    #[arg(long)]
    resource: Option<String>,
}

fn parse_rename(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => Err(format!("expected OLD=NEW, got {s:?}")),
    }
}

fn progress(g: &Global, c: &Arc<Counters>, verb: &'static str) -> Progress {
    let c = c.clone();
    Progress::start(g.progress(), move || {
        format!(
            "{} rows, {} {verb}, chunk {}/{}",
            c.rows.load(Ordering::Relaxed),
            bytes(c.bytes.load(Ordering::Relaxed)),
            c.chunks_done.load(Ordering::Relaxed),
            c.chunks_total.load(Ordering::Relaxed)
        )
    })
}

/// Runs `backup mysql`.
pub fn backup(g: &Global, a: BackupArgs) -> Result<ExitCode> {
    let dsn = Dsn::parse(&a.server.dsn)?;
    let v = g.open()?;
    let opts = SnapshotOptions {
        databases: a.databases,
        users: a.users,
        parallel: a.parallel,
        chunk_bytes: a.chunk_mib.max(1) * 1024 * 1024,
        resource: a.resource,
        tags: a.tags,
    };
    let counters = Arc::new(Counters::default());
    let bar = progress(g, &counters, "dumped");
    let _span =
        tracing::info_span!("job", kind = "backup", protector = "mysql", server = %dsn).entered();
    let res = lifeboat_mysql::snapshot(&v, &dsn, &opts, &counters)?;
    drop(bar);
    for w in &res.warnings {
        eprintln!("warning: {w}");
    }
    let s = &res.point.summary;
    if g.json {
        print_json(&serde_json::json!({
            "id": res.id.to_hex(),
            "resource": res.point.resource,
            "databases": res.meta.databases,
            "tables": res.meta.tables,
            "rows": res.meta.rows,
            "binlog": res.meta.binlog,
            "consistent_at": res.meta.consistent_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "method": res.meta.method,
            "size": s.size,
            "bytes_new": s.bytes_new,
            "bytes_stored": s.bytes_stored,
            "duration_s": s.duration_s,
            "warnings": res.warnings,
        }))?;
    } else {
        if !g.quiet {
            let at = match &res.meta.binlog {
                Some(c) => format!(
                    "{}:{}{}",
                    c.file,
                    c.pos,
                    c.gtid
                        .as_ref()
                        .map(|g| format!(" (GTID {g})"))
                        .unwrap_or_default()
                ),
                None => "no binlog".into(),
            };
            eprintln!(
                "{} databases, {} tables, {} rows, {} dumped; new {}, stored {} in {:.1}s; consistent at {at}",
                res.meta.databases.len(),
                res.meta.tables,
                res.meta.rows,
                bytes(s.size),
                bytes(s.bytes_new),
                bytes(s.bytes_stored),
                s.duration_s
            );
        }
        println!("{}", res.id);
    }
    Ok(if res.warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Runs `restore mysql`.
pub fn restore(g: &Global, a: RestoreArgs) -> Result<ExitCode> {
    let dsn = Dsn::parse(&a.server.dsn)?;
    let v = g.open()?;
    let (id, point) = lifeboat_mysql::catalog::find_snapshot(&v, &a.point, a.resource.as_deref())?;
    let opts = RestoreOptions {
        databases: a.databases,
        renames: a.renames,
        force: a.force,
        parallel: a.parallel,
        users: a.users,
        write_binlog: a.write_binlog,
    };
    let counters = Arc::new(Counters::default());
    let bar = progress(g, &counters, "loaded");
    let _span =
        tracing::info_span!("job", kind = "restore", protector = "mysql", server = %dsn).entered();
    let rep = lifeboat_mysql::restore(&v, &id, &point, &dsn, &opts, &counters)?;
    drop(bar);
    if g.json {
        let mut j = serde_json::to_value(&rep)?;
        j["point"] = id.to_hex().into();
        print_json(&j)?;
    } else {
        for w in &rep.warnings {
            eprintln!("warning: {w}");
        }
        if !g.quiet {
            eprintln!(
                "restored point {} into {dsn}: {} databases, {} tables, {} rows ({}), {} views/routines/triggers/events in {:.1}s",
                id.short(),
                rep.databases.len(),
                rep.tables,
                rep.rows,
                bytes(rep.bytes),
                rep.objects,
                rep.duration_s
            );
        }
    }
    Ok(if rep.warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
