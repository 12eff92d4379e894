//! `lifeboat backup mysql`, `lifeboat restore mysql`, `lifeboat archive mysql`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use lifeboat_mysql::{
    ArchiveEvent, ArchiveOptions, Catalog, Counters, Dsn, RestoreOptions, SnapshotOptions, Target,
};

use crate::common::{Global, Progress, bytes, parse_duration, print_json};

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
    pub(crate) server: ServerArgs,
    /// A physical point: the server's files as `mariadb-backup` copies them, streamed
    /// into the vault (MariaDB on this host; restored with `restore mysql --physical`,
    /// far faster than a logical point for big databases). Whole server only.
    #[arg(long, conflicts_with_all = ["databases", "users", "chunk_mib"])]
    pub(crate) physical: bool,
    /// With --physical: an incremental point (only the InnoDB pages changed since
    /// the resource's newest physical point, by LSN), chained to that point; a full
    /// point when there is none the server can continue from.
    #[arg(long, requires = "physical")]
    pub(crate) incremental: bool,
    /// With --physical: incremental points while the chain's full point is younger
    /// than this (e.g. 1d, 12h), else a new full point.
    #[arg(long, value_name = "DURATION", requires = "physical", value_parser = parse_duration)]
    pub(crate) full_every: Option<std::time::Duration>,
    /// Only these databases (comma-separated; default: every user database).
    #[arg(long, value_delimiter = ',')]
    pub(crate) databases: Option<Vec<String>>,
    /// Also back up users and their grants.
    #[arg(long)]
    pub(crate) users: bool,
    /// Connections dumping in parallel (default: one per core, 2 to 8).
    #[arg(long, default_value_t = lifeboat_mysql::default_parallel())]
    pub(crate) parallel: usize,
    /// Cut tables bigger than this (MiB) into key ranges dumped in parallel.
    #[arg(long, default_value_t = 64)]
    pub(crate) chunk_mib: u64,
    /// Resource name (default: mysql:HOST:PORT); points of one resource form its history.
    #[arg(long)]
    pub(crate) resource: Option<String>,
    /// Tag the point (repeatable).
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// zstd level for the dump (1: about the ratio of 3 on row data for a third
    /// less CPU, which the database server needs too).
    #[arg(long, default_value_t = 1)]
    pub(crate) compression: i32,
    #[command(flatten)]
    pub(crate) retention: crate::cmd_retention::RetentionArgs,
}

/// `restore mysql`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Point: a snapshot's id or unique prefix, or `latest`. With --at, any point of
    /// the resource (or `latest`): the newest snapshot before that time is used.
    pub(crate) point: String,
    /// Server: mysql://USER[:PASSWORD]@HOST[:PORT][?socket=/path]; the password may
    /// instead be in LIFEBOAT_MYSQL_PASSWORD.
    #[arg(long, env = "LIFEBOAT_MYSQL_DSN", required_unless_present = "physical")]
    dsn: Option<String>,
    /// Restore a physical point (`backup mysql --physical`) as a data directory:
    /// its files into --datadir, then `mariadb-backup --prepare` there; `mariadbd
    /// --datadir DIR` starts on it as it is. With --at, the newest physical point
    /// before that moment, rolled forward through the binlog archive in a private
    /// server that is stopped again.
    #[arg(long, requires = "datadir", conflicts_with_all = ["databases", "renames", "force", "users", "write_binlog"])]
    pub(crate) physical: bool,
    /// With --physical: the data directory to make (empty or missing; removed
    /// again when the restore fails).
    #[arg(long, requires = "physical")]
    pub(crate) datadir: Option<std::path::PathBuf>,
    /// Point in time: RFC 3339 (e.g. 2026-11-25T10:00:00Z), `latest` (everything
    /// archived), a GTID (0-1-123, inclusive) or FILE:POS. Replays the archived binlog.
    #[arg(long, value_parser = parse_target)]
    pub(crate) at: Option<Target>,
    /// Only these databases of the point (comma-separated).
    #[arg(long, value_delimiter = ',')]
    databases: Option<Vec<String>>,
    /// Restore database OLD as NEW (repeatable).
    #[arg(long = "rename", value_parser = parse_rename)]
    renames: Vec<(String, String)>,
    /// Replace target databases that are not empty.
    #[arg(long)]
    force: bool,
    /// Sessions loading in parallel (default: one per core, 2 to 8).
    #[arg(long, default_value_t = lifeboat_mysql::default_parallel())]
    parallel: usize,
    /// Also restore users and grants.
    #[arg(long)]
    users: bool,
    /// Write the restored rows into the target's binary log (off by default: faster).
    #[arg(long)]
    write_binlog: bool,
    /// With `latest`: the newest snapshot of this resource.
    #[arg(long)]
    pub(crate) resource: Option<String>,
}

/// A malformed `--at` is a usage error (exit 2) that lists the accepted forms.
fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s).map_err(|e| e.to_string())
}

fn parse_rename(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => Err(format!("expected OLD=NEW, got {s:?}")),
    }
}

pub(crate) fn progress(g: &Global, c: &Arc<Counters>, verb: &'static str) -> Progress {
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

/// `archive mysql`.
#[derive(clap::Args, Debug)]
pub struct ArchiveArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Seal what arrived into the vault at least this often (the most a failure
    /// can lose, plus the follower's own delay of milliseconds); an idle server
    /// gets a "caught up" mark this often, so its restorable time keeps up.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    seal_interval: std::time::Duration,
    /// Replace the seal points by one rollup point this often.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    rollup_interval: std::time::Duration,
    /// Directory in which the binlog follower's private spool is made, fresh for
    /// each run (0700, files 0600; default: $TMPDIR). Refused when it is a symbolic
    /// link, another user's, or writable by others without the sticky bit.
    #[arg(long)]
    spool: Option<std::path::PathBuf>,
    /// Server id the follower uses as a replica (default: derived from the resource).
    #[arg(long)]
    replica_id: Option<u32>,
    /// Resource name (default: mysql:HOST:PORT, as `backup mysql`).
    #[arg(long)]
    resource: Option<String>,
    /// Retention of every seal and rollup point the archive writes.
    #[command(flatten)]
    retention: crate::cmd_retention::RetentionArgs,
}

/// `archive`.
#[derive(clap::Subcommand, Debug)]
pub enum ArchiveCmd {
    /// Follow a MySQL/MariaDB server's binary log into the vault, continuously
    /// (until SIGINT/SIGTERM), for point-in-time recovery.
    Mysql(ArchiveArgs),
}

/// Runs `archive mysql`.
pub fn archive(g: &Global, cmd: ArchiveCmd) -> Result<ExitCode> {
    let ArchiveCmd::Mysql(a) = cmd;
    // Spooled binlogs are row changes in plain text: whatever this process
    // and its follower create is for this user only.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let dsn = Dsn::parse(&a.server.dsn)?;
    let v = g.open()?;
    a.retention.apply(&v)?;
    let mut opts = ArchiveOptions {
        resource: a.resource,
        seal_interval: a.seal_interval,
        // An idle server's "caught up" mark on each check, as a busy one's.
        heartbeat: a.seal_interval,
        rollup_interval: a.rollup_interval,
        replica_id: a.replica_id,
        ..ArchiveOptions::default()
    };
    if let Some(s) = a.spool {
        opts.spool = s;
    }
    let stop = crate::common::stop_flag()?;
    let _span =
        tracing::info_span!("job", kind = "archive", protector = "mysql", server = %dsn).entered();
    let json = g.json;
    let quiet = g.quiet;
    let mut on_event = |e: &ArchiveEvent| {
        if json {
            println!("{}", serde_json::to_string(e).expect("events serialize"));
            return;
        }
        match e {
            ArchiveEvent::Started {
                resource,
                file,
                pos,
            } if !quiet => {
                eprintln!("archiving the binlog of {resource} from {file}:{pos} (Ctrl-C stops)");
            }
            ArchiveEvent::Gap { detail } => eprintln!("GAP: {detail}"),
            ArchiveEvent::Reconnecting { error, retry_in_s } => {
                eprintln!(
                    "warning: the server went away ({error}); following again in {retry_in_s:.0}s"
                )
            }
            ArchiveEvent::Sealed {
                bytes: b,
                file,
                end,
                last_time,
                ..
            } if !quiet && *b > 0 => {
                eprintln!(
                    "sealed {} up to {file}:{end}{}",
                    bytes(*b),
                    last_time
                        .map(|t| format!(" (events to {})", t.format("%H:%M:%S")))
                        .unwrap_or_default()
                );
            }
            ArchiveEvent::RolledUp { point, replaced } if !quiet => {
                eprintln!("rolled {replaced} seal points up into {}", &point[..8]);
            }
            _ => {}
        }
    };
    lifeboat_mysql::archive(&v, &dsn, &opts, &stop, &mut on_event)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `backup mysql`.
pub fn backup(g: &Global, a: BackupArgs) -> Result<ExitCode> {
    if a.physical {
        return crate::cmd_mysql_physical::backup(g, a);
    }
    let dsn = Dsn::parse(&a.server.dsn)?;
    let v = g.open()?;
    a.retention.apply(&v)?;
    let opts = SnapshotOptions {
        databases: a.databases,
        users: a.users,
        parallel: a.parallel,
        chunk_bytes: a.chunk_mib.max(1) * 1024 * 1024,
        resource: a.resource,
        tags: a.tags,
        compression: Some(a.compression),
    };
    let counters = Arc::new(Counters::default());
    let bar = progress(g, &counters, "dumped");
    let _span =
        tracing::info_span!("job", kind = "backup", protector = "mysql", server = %dsn).entered();
    let res = match crate::common::interruptible(bar, || {
        lifeboat_mysql::snapshot(&v, &dsn, &opts, &counters)
    })? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
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
            let at = crate::cmd_mysql::coordinates_text(res.meta.binlog.as_ref());
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
    Ok(crate::common::finished(&res.warnings))
}

/// Runs `restore mysql`.
pub fn restore(g: &Global, a: RestoreArgs) -> Result<ExitCode> {
    if a.physical {
        return crate::cmd_mysql_physical::restore(g, a);
    }
    let dsn = Dsn::parse(
        a.dsn
            .as_deref()
            .expect("clap requires --dsn without --physical"),
    )?;
    let v = g.open()?;
    // A reader's shared lock, before anything loads the index: a prune
    // running meanwhile defers deleting what this restore may read.
    let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "restore")?;
    let (catalog, plan) = match &a.at {
        Some(t) => {
            // Any point names the resource; the plan picks the snapshot.
            let resource = match &a.resource {
                Some(r) => r.clone(),
                None if a.point == "latest" => {
                    lifeboat_mysql::catalog::find_snapshot(&v, "latest", None)?
                        .1
                        .resource
                }
                None => v.find_point(&a.point, None)?.1.resource,
            };
            let c = Catalog::load(&v, &resource)?;
            let p = lifeboat_mysql::pitr::plan(&c, t)?;
            (Some(c), Some(p))
        }
        None => (None, None),
    };
    let (id, point) = match &plan {
        Some(p) => p.snapshot.clone(),
        None => {
            let snapshot = &[lifeboat_mysql::KIND_SNAPSHOT];
            let (id, _) = crate::pick::select(&v, &a.point, snapshot, a.resource.as_deref())?;
            lifeboat_mysql::catalog::find_snapshot(&v, &id.to_hex(), None)?
        }
    };
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
    // The replay runs once the loaded databases are in place, before the old
    // tables are dropped: a replay that fails puts the targets back as they were.
    let mut replay = None;
    let rep = lifeboat_mysql::restore_then(&v, &id, &point, &dsn, &opts, &counters, &mut |_| {
        if let (Some(c), Some(p)) = (&catalog, &plan) {
            let tmp = std::env::temp_dir();
            replay = Some(lifeboat_mysql::pitr::replay(&v, c, p, &dsn, &opts, &tmp)?);
        }
        Ok(())
    })?;
    drop(bar);
    if g.json {
        let mut j = serde_json::to_value(&rep)?;
        j["point"] = id.to_hex().into();
        j["replay"] = serde_json::to_value(&replay)?;
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
            if let Some(r) = &replay {
                eprintln!(
                    "replayed the archived binlog from {} to {} ({} files)",
                    r.from,
                    r.to,
                    r.files.len()
                );
            }
        }
    }
    Ok(crate::common::finished(&rep.warnings))
}

/// Binlog coordinates as a person reads them: `FILE:POS (GTID G)`, or
/// `no binlog`.
pub(crate) fn coordinates_text(c: Option<&lifeboat_mysql::snapshot::Coordinates>) -> String {
    match c {
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
    }
}
