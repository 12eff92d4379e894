//! Point-in-time recovery: a snapshot, then the archived binlog replayed.
//!
//! ```text
//! target: a time T, `latest`, a GTID, or FILE:POS
//! plan:   the newest snapshot consistent at or before the target whose binlog
//!         chain (see catalog) reaches it; otherwise say which windows exist
//! load:   the snapshot (restore.rs)
//! replay: write the chain's binlog files into a private temporary directory;
//!         mariadb-binlog --start-position=<snapshot pos> [stop] FILES | mariadb
//!         stop = --stop-datetime=ceil(T) (the binlog stamps events in whole
//!         seconds: every event stamped before T is applied, none at or after),
//!         or the position where the GTID's transaction ends, or FILE:POS
//! ```
//! The replay is a prefix of the binlog in commit order, so the result is the
//! database exactly as it was at one moment of the source's history.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use lifeboat_vault::{Id, RecoveryPoint, Vault};
use serde::Serialize;

use crate::binlog::{file_number, scan, types};
use crate::catalog::{Catalog, Chain};
use crate::error::{MysqlError, Result};
use crate::restore::RestoreOptions;
use crate::server::Dsn;
use crate::snapshot::SnapshotMeta;

mod base;
pub use base::{Base, Modes};

/// What to recover to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A moment (server clock, UTC).
    Time(DateTime<Utc>),
    /// Everything archived.
    Latest,
    /// Up to and including the transaction with this GTID (`domain-server-seq`).
    Gtid(String),
    /// Up to (not including) the event at this position.
    Position(String, u64),
}

impl Target {
    /// Parses RFC 3339, `latest`, `D-S-N` or `FILE:POS`.
    pub fn parse(s: &str) -> Result<Target> {
        if s == "latest" {
            return Ok(Target::Latest);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Target::Time(t.with_timezone(&Utc)));
        }
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            return Ok(Target::Gtid(s.to_string()));
        }
        if let Some((f, p)) = s.rsplit_once(':')
            && file_number(f).is_some()
            && let Ok(p) = p.parse()
        {
            return Ok(Target::Position(f.to_string(), p));
        }
        Err(MysqlError::Usage(format!(
            "--at {s:?}: expected an RFC 3339 time (2026-11-25T10:00:00Z), `latest`, a GTID (0-1-123) or FILE:POS (binlog.000042:1234)"
        )))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Time(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
            Target::Latest => write!(f, "latest"),
            Target::Gtid(g) => write!(f, "GTID {g}"),
            Target::Position(file, p) => write!(f, "{file}:{p}"),
        }
    }
}

/// The chosen snapshot and binlog.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The point to load (a logical snapshot, or a physical chain's tip).
    pub snapshot: (Id, RecoveryPoint),
    /// Its meta.
    pub base: Base,
    /// The archive from its coordinates.
    pub chain: Chain,
    /// What to stop at.
    pub target: Target,
}

impl Plan {
    /// The logical snapshot's meta (`None` for a physical base).
    pub fn logical(&self) -> Option<&SnapshotMeta> {
        match &self.base {
            Base::Logical(m) => Some(m),
            Base::Physical(_) => None,
        }
    }
}

fn gtid_seq(g: &str) -> Option<(u64, u64)> {
    let mut it = g.split('-');
    let d = it.next()?.parse().ok()?;
    let _server: u64 = it.next()?.parse().ok()?;
    let n = it.next()?.parse().ok()?;
    Some((d, n))
}

/// Sequence number of `domain` in a GTID position list (`0-1-5,1-2-9`).
fn seq_in(list: &str, domain: u64) -> Option<u64> {
    list.split(',')
        .filter_map(|g| gtid_seq(g.trim()))
        .find(|(d, _)| *d == domain)
        .map(|(_, n)| n)
}

/// Chooses the logical snapshot and chain for `target`.
pub fn plan(c: &Catalog, target: &Target) -> Result<Plan> {
    plan_from(c, target, Modes::Logical)
}

/// The points of `modes` that can start a plan, newest consistency first
/// (a physical point before a logical one as recent).
fn bases(c: &Catalog, modes: Modes) -> Vec<(Id, RecoveryPoint, Base)> {
    let mut out: Vec<(Id, RecoveryPoint, Base)> = Vec::new();
    if modes != Modes::Physical {
        out.extend(
            c.snapshots
                .iter()
                .map(|(id, p, m)| (*id, p.clone(), Base::Logical(m.clone()))),
        );
    }
    if modes != Modes::Logical {
        out.extend(
            c.physical
                .iter()
                .map(|(id, p, m)| (*id, p.clone(), Base::Physical(m.clone()))),
        );
    }
    out.sort_by_key(|(_, _, b)| (b.consistent_at(), matches!(b, Base::Physical(_))));
    out.reverse();
    out
}

/// Chooses the point of `modes` and the chain for `target`: the newest
/// one consistent at or before it whose archive reaches it.
pub fn plan_from(c: &Catalog, target: &Target, modes: Modes) -> Result<Plan> {
    let not = |reason: String| MysqlError::NotRestorable {
        resource: c.resource.clone(),
        at: target.to_string(),
        reason,
    };
    let candidates = bases(c, modes);
    let windows = || {
        let w = c.windows_of(
            candidates
                .iter()
                .map(|(_, _, b)| (b.coordinates(), b.consistent_at())),
        );
        if w.is_empty() {
            let what = match modes {
                Modes::Logical => "snapshot",
                Modes::Physical => "physical point",
                Modes::Any => "snapshot or physical point",
            };
            format!("the vault holds no {what} of it")
        } else {
            let v: Vec<String> = w
                .iter()
                .map(|w| format!("{} .. {}", w.from.to_rfc3339(), w.to.to_rfc3339()))
                .collect();
            format!("restorable windows: {}", v.join("; "))
        }
    };
    for (id, p, base) in &candidates {
        let Some(co) = base.coordinates() else {
            continue;
        };
        let (reach, chain) = c.reach_from(Some(co), base.consistent_at());
        let chain = chain.unwrap_or_default();
        if chain.files.is_empty() {
            continue;
        }
        let ok = match target {
            Target::Time(t) => base.consistent_at() <= *t && reach >= *t,
            Target::Latest => true,
            Target::Gtid(g) => {
                let (d, n) = gtid_seq(g).ok_or_else(|| not("malformed GTID".into()))?;
                let before = co.gtid.as_deref().and_then(|l| seq_in(l, d)).unwrap_or(0) <= n;
                let reached = chain
                    .last_gtid
                    .as_deref()
                    .and_then(gtid_seq)
                    .is_some_and(|(_, m)| m >= n);
                before && reached
            }
            Target::Position(f, pos) => {
                let after = (file_number(f), *pos) >= (file_number(&co.file), co.pos);
                let within = chain.files.iter().any(|(cf, end)| cf == f && pos <= end);
                after && within
            }
        };
        if ok {
            return Ok(Plan {
                snapshot: (*id, p.clone()),
                base: base.clone(),
                chain,
                target: target.clone(),
            });
        }
    }
    Err(not(windows()))
}

/// The plan that rolls point `id` (of meta `base`) forward to `to`: the
/// catalog, the plan and the time the data will reach; refused when the
/// archive cannot take this point there.
pub fn plan_at(
    vault: &Vault,
    id: &Id,
    point: &RecoveryPoint,
    base: Base,
    to: lifeboat_protector::RollForward,
) -> Result<(Catalog, Plan, DateTime<Utc>)> {
    use lifeboat_protector::RollForward;
    let catalog = Catalog::load(vault, &point.resource)?;
    let target = match to {
        RollForward::Latest => Target::Latest,
        RollForward::To(t) => Target::Time(t),
    };
    let at = base.consistent_at();
    let (reach, chain) = catalog.reach_from(base.coordinates(), at);
    let chain = chain.unwrap_or_default();
    let reason = match to {
        _ if chain.files.is_empty() => Some(format!(
            "point {} has no archived binlog after it to roll forward with",
            id.short()
        )),
        RollForward::To(t) if at > t || reach < t => Some(format!(
            "point {} can be rolled forward from {} to {}",
            id.short(),
            at.to_rfc3339(),
            reach.to_rfc3339()
        )),
        _ => None,
    };
    if let Some(reason) = reason {
        return Err(MysqlError::NotRestorable {
            resource: point.resource.clone(),
            at: target.to_string(),
            reason,
        });
    }
    let reached = match to {
        RollForward::Latest => reach,
        RollForward::To(t) => t,
    };
    let plan = Plan {
        snapshot: (*id, point.clone()),
        base,
        chain,
        target,
    };
    Ok((catalog, plan, reached))
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Binlog files replayed (in part).
    pub files: Vec<String>,
    /// Position replay started at.
    pub from: String,
    /// Where it stopped.
    pub to: String,
    /// Bytes of binlog handed to the server (from the start position to
    /// the files' ends; a stop inside the last file is not subtracted).
    pub bytes: u64,
    /// Wall time.
    pub duration_s: f64,
}

/// One `mariadb-binlog | mariadb` pass: events of one database (all when
/// `None`; `mariadb-binlog` filters by the name in the binlog, before its
/// rewrites), databases renamed.
struct Pass {
    database: Option<String>,
    rewrites: Vec<(String, String)>,
}

/// Replays the plan's binlog into the server at `dsn` (after the snapshot was loaded).
pub fn replay(
    vault: &Vault,
    c: &Catalog,
    plan: &Plan,
    dsn: &Dsn,
    opts: &RestoreOptions,
    work: &Path,
) -> Result<ReplayReport> {
    let mut passes: Vec<Pass> = match &opts.databases {
        Some(list) => list
            .iter()
            .map(|d| Pass {
                database: Some(d.clone()),
                rewrites: opts.renames.clone(),
            })
            .collect(),
        None => Vec::new(),
    };
    if passes.is_empty() {
        passes.push(Pass {
            database: None,
            rewrites: opts.renames.clone(),
        });
    }
    replay_passes(vault, c, plan, dsn, opts.write_binlog, passes, work, None)
}

/// Replays the plan's whole binlog into a private server started with
/// `--skip-grant-tables` (a roll forward's): the replay's session first
/// loads the grant tables (`FLUSH PRIVILEGES`, as `--init-command`), so
/// that the account changes in the binlog (`CREATE USER`, `GRANT`,
/// `ALTER USER`) apply — a server skipping them refuses every one — while
/// the session keeps the privileges it was given.
pub(crate) fn replay_skipping_grants(
    vault: &Vault,
    c: &Catalog,
    plan: &Plan,
    dsn: &Dsn,
    work: &Path,
) -> Result<ReplayReport> {
    let pass = Pass {
        database: None,
        rewrites: Vec::new(),
    };
    let init = Some("FLUSH PRIVILEGES");
    replay_passes(vault, c, plan, dsn, false, vec![pass], work, init)
}

/// Where the transaction of GTID `g` ends in the binlog `files`: (file
/// index, offset of the next GTID event or the file's end); none when `g`
/// is not there.
fn gtid_end(files: &[std::path::PathBuf], g: &str) -> Result<Option<(usize, u64)>> {
    for (i, path) in files.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|e| MysqlError::io("read", path, e))?;
        let (events, _) = scan(&bytes, 0).map_err(|e| MysqlError::Tool {
            program: "binlog".into(),
            reason: format!("{}: {e}", path.display()),
        })?;
        let mut seen = false;
        for e in &events {
            let is_gtid = matches!(e.kind, types::MARIADB_GTID | types::MYSQL_GTID);
            if seen && is_gtid {
                return Ok(Some((i, e.offset)));
            }
            if e.gtid.as_deref() == Some(g) {
                seen = true;
            }
        }
        if seen {
            return Ok(Some((i, bytes.len() as u64)));
        }
    }
    Ok(None)
}

/// Replays the plan's binlog once per pass, from the snapshot's coordinates
/// up to the plan's target (`init`: SQL the client's session runs first).
#[allow(clippy::too_many_arguments)]
fn replay_passes(
    vault: &Vault,
    c: &Catalog,
    plan: &Plan,
    dsn: &Dsn,
    write_binlog: bool,
    passes: Vec<Pass>,
    work: &Path,
    init: Option<&str>,
) -> Result<ReplayReport> {
    let started = std::time::Instant::now();
    let co = plan
        .base
        .coordinates()
        .cloned()
        .expect("planned snapshots have coordinates");
    let index = vault.load_index()?;
    // Private (0700): the binlog is decrypted there, and the client's errors
    // quote its statements.
    let dir = crate::physical::private_tempdir("lifeboat-pitr-", Some(work))?;
    // Only the files up to the target's.
    let mut chain = plan.chain.clone();
    let mut stop: Vec<String> = Vec::new();
    let to = match &plan.target {
        Target::Time(t) => {
            let secs = t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0);
            let ceil = DateTime::from_timestamp(secs, 0).expect("valid time");
            stop.push(format!(
                "--stop-datetime={}",
                ceil.format("%Y-%m-%d %H:%M:%S")
            ));
            format!("first event stamped at or after {}", ceil.to_rfc3339())
        }
        Target::Latest => {
            let (f, e) = chain.files.last().cloned().unwrap_or_default();
            format!("{f}:{e} (end of the archive)")
        }
        Target::Position(f, p) => {
            let keep = chain
                .files
                .iter()
                .position(|(cf, _)| cf == f)
                .expect("planned");
            chain.files.truncate(keep + 1);
            stop.push(format!("--stop-position={p}"));
            format!("{f}:{p}")
        }
        Target::Gtid(g) => {
            // Find where the GTID's transaction ends: the next GTID event, or the file's end.
            let files = c.materialize(vault, &index, &chain, dir.path())?;
            let found = gtid_end(&files, g)?;
            let (i, pos) = found.ok_or_else(|| MysqlError::NotRestorable {
                resource: c.resource.clone(),
                at: plan.target.to_string(),
                reason: "that GTID is not in the archived binlog after the snapshot".into(),
            })?;
            chain.files.truncate(i + 1);
            stop.push(format!("--stop-position={pos}"));
            format!("{}:{pos} (end of GTID {g})", chain.files[i].0)
        }
    };
    let files = c.materialize(vault, &index, &chain, dir.path())?;
    let bytes = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum::<u64>()
        .saturating_sub(co.pos);
    for pass in passes {
        let mut cmd = Command::new("mariadb-binlog");
        cmd.arg("--no-defaults")
            .arg(format!("--start-position={}", co.pos))
            .args(&stop)
            .env("TZ", "UTC");
        if !write_binlog {
            cmd.arg("--disable-log-bin");
        }
        for (from, to) in &pass.rewrites {
            cmd.arg(format!("--rewrite-db={from}->{to}"));
        }
        if let Some(d) = &pass.database {
            cmd.arg(format!("--database={d}"));
        }
        cmd.args(&files);
        pipe_into_server(cmd, dsn, dir.path(), init)?;
    }
    Ok(ReplayReport {
        files: chain.files.iter().map(|(f, _)| f.clone()).collect(),
        from: format!("{}:{}", co.file, co.pos),
        to,
        bytes,
        duration_s: started.elapsed().as_secs_f64(),
    })
}

/// Runs `producer | mariadb` against the server, failing with both programs'
/// messages (kept in files under `dir`, so neither can block on a full pipe);
/// `init` runs first in the client's session.
fn pipe_into_server(
    mut producer: Command,
    dsn: &Dsn,
    dir: &Path,
    init: Option<&str>,
) -> Result<()> {
    let tool = |program: &str, e: std::io::Error| MysqlError::Tool {
        program: program.to_string(),
        reason: format!("{e} (install the MariaDB client: apt-get install mariadb-client)"),
    };
    let log = |name: &str| -> Result<std::fs::File> {
        let p = dir.join(name);
        std::fs::File::create(&p).map_err(|e| MysqlError::io("create", &p, e))
    };
    let mut p = producer
        .stdout(Stdio::piped())
        .stderr(log("binlog.err")?)
        .spawn()
        .map_err(|e| tool("mariadb-binlog", e))?;
    let mut client = Command::new("mariadb");
    client
        .arg("--no-defaults")
        .arg("--binary-mode")
        .arg(format!("--host={}", dsn.host))
        .arg(format!("--port={}", dsn.port))
        .arg(format!("--user={}", dsn.user));
    if let Some(s) = &dsn.socket {
        client.arg(format!("--socket={s}"));
    }
    if let Some(sql) = init {
        client.arg(format!("--init-command={sql}"));
    }
    match &dsn.password {
        Some(pw) => client.env("MYSQL_PWD", pw),
        None => client.env_remove("MYSQL_PWD"),
    };
    let spawned = client
        .stdin(p.stdout.take().expect("piped"))
        .stdout(Stdio::null())
        .stderr(log("client.err")?)
        .spawn();
    // Our copy of the pipe's read end goes with the command: a client that
    // stops early must end the producer (EPIPE), not leave it blocked.
    drop(client);
    let mut c = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = p.kill();
            let _ = p.wait();
            return Err(tool("mariadb", e));
        }
    };
    let cs = c.wait().map_err(|e| tool("mariadb", e))?;
    let ps = p.wait().map_err(|e| tool("mariadb-binlog", e))?;
    let read = |name: &str| {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(dir.join(name)) {
            let _ = f.read_to_string(&mut s);
        }
        s.trim().to_string()
    };
    if !cs.success() {
        return Err(MysqlError::Tool {
            program: "mariadb (replaying the binlog)".into(),
            reason: format!(
                "{} — the replay stopped before the requested point",
                read("client.err")
            ),
        });
    }
    if !ps.success() {
        return Err(MysqlError::Tool {
            program: "mariadb-binlog".into(),
            reason: read("binlog.err"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(Target::parse("latest").unwrap(), Target::Latest);
        assert!(matches!(
            Target::parse("2026-11-25T10:00:00.5Z").unwrap(),
            Target::Time(_)
        ));
        assert_eq!(
            Target::parse("0-1-123").unwrap(),
            Target::Gtid("0-1-123".into())
        );
        assert_eq!(
            Target::parse("binlog.000042:1234").unwrap(),
            Target::Position("binlog.000042".into(), 1234)
        );
        for bad in ["yesterday", "0-1", "binlog:12", "2026-13-01T00:00:00Z"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(seq_in("0-1-5,1-2-9", 1), Some(9));
        assert_eq!(seq_in("0-1-5", 3), None);
    }
}
