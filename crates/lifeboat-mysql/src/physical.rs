//! Physical points of a MariaDB server: its files as `mariadb-backup` copies
//! them, streamed into the vault, and restored as a data directory.
//!
//! ```text
//! backup:  refuse a server that is not on this host (its files are read here)
//!          incremental asked? base = the resource's newest physical point the
//!          server continues (same server, whole chain, LSN reached) → else full
//!          mariadb-backup --backup --stream=mbstream [--incremental-lsn=<base's
//!          lsn.to>] ──pipe──▶ mbstream reader
//!              each file's payloads ──▶ its own chunker thread ──▶ BackupWriter
//!              (content-defined chunks: unchanged InnoDB pages deduplicate)
//!          tool exit ≠ 0, a cut or damaged stream, a signal → no point
//!          tree /backup/<the backup's files>; meta: server, LSN range
//!          (xtrabackup_checkpoints), binlog coordinates (xtrabackup_binlog_info),
//!          the base's id for an incremental point
//! restore: the chain (full point … the point asked for, `chain::chain_of`)
//!          an empty or missing DIR ← the full point's files, each incremental's
//!          into a private directory beside it, blobs fetched pack by pack in
//!          parallel and written in place → mariadb-backup --prepare, then
//!          --prepare --incremental-dir for each incremental in order
//!          → DIR is a data directory `mariadbd --datadir DIR` starts on;
//!          any failure removes what was written
//! ```
//! Points are of their own kind, [`crate::KIND_PHYSICAL`]: everything that
//! loads a `mysql` point logically (restore, `--at`, recoveries) never meets
//! one, and software that does not know the kind refuses to restore it (the
//! format's rule for unknown kinds). Their `meta` records the binlog
//! coordinates in the shape a logical snapshot's does, so the archive's
//! catalog can roll them forward.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_vault::tree::{Node, NodeKind, Tree};
use lifeboat_vault::{BackupWriter, Id, RecoveryPoint, Summary, Vault};
use serde::{Deserialize, Serialize};

use crate::error::{MysqlError, Result};
use crate::server::{Dsn, ServerInfo, Session};
use crate::snapshot::{Coordinates, Counters};

mod base;
mod chain;
mod extract;
pub mod mbstream;
mod stream;
mod tool;

pub use chain::{
    ChainCheck, INCREMENTAL, Link, base_id, bases_needed, chain_of, chain_problems, check_rules,
};
pub use extract::{
    INCOMPLETE, PhysicalRestoreOptions, PhysicalRestoreReport, mark_complete, mark_incomplete,
    remove_written, restore_physical,
};
pub use tool::default_tool;

use stream::{Stored, Streamed};

/// Name of the root tree's directory holding the backup's files.
pub const BACKUP_DIR: &str = "backup";

/// How to take a physical point.
#[derive(Debug, Clone)]
pub struct PhysicalOptions {
    /// Resource name (default `mysql:HOST:PORT`, as logical snapshots).
    pub resource: Option<String>,
    /// Tags of the point.
    pub tags: Vec<String>,
    /// Files mariadb-backup copies in parallel.
    pub parallel: usize,
    /// zstd level (`None`: the vault's default).
    pub compression: Option<i32>,
    /// The `mariadb-backup` program.
    pub tool: PathBuf,
    /// Full or incremental (by LSN, on the resource's newest physical point).
    pub incremental: Incremental,
}

/// Whether a physical point is full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Incremental {
    /// Always a full point.
    #[default]
    Never,
    /// Incremental on the resource's newest physical point in the vault
    /// (a full one when there is none the server can continue from).
    OnNewest,
    /// Incremental on the newest physical point while the chain's full
    /// point is younger than this, else a new full point.
    FullEvery(std::time::Duration),
}

impl Default for PhysicalOptions {
    fn default() -> Self {
        PhysicalOptions {
            resource: None,
            tags: Vec::new(),
            parallel: crate::default_parallel(),
            compression: Some(1),
            tool: default_tool(),
            incremental: Incremental::Never,
        }
    }
}

/// The InnoDB log sequence numbers of a physical point (`xtrabackup_checkpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lsn {
    /// `from_lsn`: 0 for a full backup (the base LSN of an incremental one).
    pub from: u64,
    /// `to_lsn`: the checkpoint the copy started from.
    pub to: u64,
    /// `last_lsn`: the end of the redo log copied.
    pub last: u64,
}

/// What a `mysql-physical` point records in its `meta`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhysicalMeta {
    /// Layout version of mysql-physical points (1).
    pub format: u32,
    /// Always `physical` (a logical snapshot's mode is `logical`).
    pub mode: String,
    /// `full-backuped` or `incremental` (from `xtrabackup_checkpoints`).
    pub backup_type: String,
    /// For an incremental point, the full hex id of the point it is taken
    /// on (its `lsn.from` is that point's `lsn.to`); absent for a full point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The tool and its version, e.g. `mariadb-backup 10.11.19-MariaDB`.
    pub tool: String,
    /// The server.
    pub server: ServerInfo,
    /// Where it was reached (no password).
    pub dsn: String,
    /// The server's data directory.
    pub datadir: String,
    /// Binlog coordinates the copy is consistent at (absent when binary logging is off).
    pub binlog: Option<Coordinates>,
    /// The server's clock (UTC) when the copy had ended: no later than
    /// this, the data is the state at `binlog`.
    pub consistent_at: DateTime<Utc>,
    /// The LSN range.
    pub lsn: Lsn,
    /// Files in the point.
    pub files: u64,
}

/// The result of a physical backup.
#[derive(Debug)]
pub struct PhysicalResult {
    /// The new point's id.
    pub id: Id,
    /// The point.
    pub point: RecoveryPoint,
    /// Its meta.
    pub meta: PhysicalMeta,
    /// Things the user should know.
    pub warnings: Vec<String>,
}

/// The meta of a `mysql-physical` point.
pub fn physical_meta(id: &Id, point: &RecoveryPoint) -> Result<PhysicalMeta> {
    if point.kind != crate::KIND_PHYSICAL {
        return Err(MysqlError::BadPoint {
            point: id.short(),
            reason: format!(
                "it is a `{}` point, not a physical database point (see `lifeboat points list`; a `mysql` point restores without --physical)",
                point.kind
            ),
        });
    }
    serde_json::from_value(point.meta.clone()).map_err(|e| MysqlError::BadPoint {
        point: id.short(),
        reason: format!("unreadable physical point meta: {e}"),
    })
}

/// Refuses a server whose files are not on this host: a TCP DSN to another host.
pub fn refuse_remote(dsn: &Dsn) -> Result<()> {
    let h = dsn.host.trim_start_matches('[').trim_end_matches(']');
    let local = dsn.socket.is_some()
        || h == "localhost"
        || h == "::1"
        || h.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback());
    if local {
        return Ok(());
    }
    Err(MysqlError::Usage(format!(
        "{dsn}: a physical backup copies the server's files, so it runs on the database host and reaches the server over its socket or localhost; {} is another host. Run it there, or take a logical backup from here (without --physical)",
        dsn.host
    )))
}

/// Takes a physical point of the server at `dsn` (on this host) into `vault`:
/// `counters.bytes` counts the bytes streamed, `chunks_done` the files stored.
/// A failure writes no point.
pub fn backup_physical(
    vault: &Vault,
    dsn: &Dsn,
    opts: &PhysicalOptions,
    counters: &Counters,
) -> Result<PhysicalResult> {
    let started = Instant::now();
    let time = Utc::now();
    refuse_remote(dsn)?;
    let mut s = Session::connect(dsn)?;
    let info = s.info()?;
    let datadir = s
        .value("read the data directory", "SELECT @@datadir")?
        .unwrap_or_default();
    let lsn = match opts.incremental {
        Incremental::Never => None,
        _ => current_lsn(&mut s),
    };
    s.close();
    if !Path::new(&datadir).is_dir() {
        return Err(MysqlError::Usage(format!(
            "{dsn}: the server's data directory {datadir} is not on this host: a physical backup copies the server's files, so it runs on the database host. Run it there, or take a logical backup (without --physical)"
        )));
    }
    let resource = opts.resource.clone().unwrap_or_else(|| dsn.resource());
    let mut warnings = Vec::new();
    let now = base::Now {
        server: &info,
        datadir: &datadir,
        lsn,
        time,
    };
    let base = base::choose(vault, &resource, opts.incremental, &now, &mut warnings)?;
    let work = private_tempdir("lifeboat-physical-", None)?;
    let target = work.path().join("target");
    std::fs::create_dir(&target).map_err(|e| MysqlError::io("create", &target, e))?;
    let log = work.path().join("mariadb-backup.log");
    let mut writer = BackupWriter::start(vault, "backup")?;
    if let Some(level) = opts.compression {
        writer = writer.with_compression(level);
    }
    let from = base.as_ref().map(|b| b.lsn);
    let streamed = run_backup(&writer, dsn, opts, from, &target, &log, counters)?;
    let mut meta = describe(&streamed, info, dsn, datadir, &mut warnings)?;
    if let Some(b) = &base {
        link_to_base(&mut meta, b, &opts.tool)?;
    }
    let (root, dirs) = save_trees(&writer, &streamed.files)?;
    let mut point = RecoveryPoint::new(&resource, crate::KIND_PHYSICAL, root);
    point.time = time;
    point.tags = opts.tags.clone();
    // The base as the vault's own link too: a copy rewrites `parent` to the
    // copy of the base in the other vault (never the meta).
    point.parent = base.as_ref().map(|b| b.id);
    point.paths = vec![meta.datadir.clone()];
    let size: u64 = streamed.files.values().map(|f| f.size).sum();
    let st = writer.stats();
    point.summary = Summary {
        files: streamed.files.len() as u64,
        dirs,
        size,
        bytes_read: size,
        bytes_new: st.bytes_new.load(Ordering::Relaxed),
        bytes_stored: st.bytes_stored.load(Ordering::Relaxed),
        blobs_new: st.blobs_new.load(Ordering::Relaxed),
        duration_s: started.elapsed().as_secs_f64(),
    };
    point.meta = serde_json::to_value(&meta).expect("meta serializes");
    if let Some(b) = &base {
        // A base forgotten while the copy ran would leave a broken chain.
        if let Err(e) = vault.read_point(&b.id) {
            return Err(MysqlError::BadPoint {
                point: b.id.short(),
                reason: format!(
                    "the base of this incremental backup went while it ran ({e}): no point was written; run the backup again"
                ),
            });
        }
    }
    let id = writer.commit(&point)?;
    Ok(PhysicalResult {
        id,
        point,
        meta,
        warnings,
    })
}

/// Records `base` in the meta of an incremental copy made on it, once the
/// tool's own record says it is one from the base's LSN.
fn link_to_base(meta: &mut PhysicalMeta, b: &base::Base, tool: &Path) -> Result<()> {
    if meta.backup_type != INCREMENTAL || meta.lsn.from != b.lsn {
        return Err(MysqlError::Tool {
            program: format!("{} --backup", tool.display()),
            reason: format!(
                "asked for an incremental backup from LSN {}, it made a {} one from {}; no point was written",
                b.lsn, meta.backup_type, meta.lsn.from
            ),
        });
    }
    meta.base = Some(b.id.to_hex());
    Ok(())
}

/// Runs the tool and stores its stream; the tool is ended whatever happens.
fn run_backup(
    writer: &BackupWriter<'_>,
    dsn: &Dsn,
    opts: &PhysicalOptions,
    from: Option<u64>,
    target: &Path,
    log: &Path,
    counters: &Counters,
) -> Result<Streamed> {
    let mut child = tool::start_backup(&opts.tool, dsn, opts.parallel, from, target, log)?;
    let out = child.stdout.take().expect("piped");
    let streamed = stream::store_stream(writer, out, counters);
    if streamed.is_err() && child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| MysqlError::Tool {
        program: opts.tool.display().to_string(),
        reason: format!("waiting for it failed: {e}"),
    })?;
    let failed = |detail: String| MysqlError::Tool {
        program: format!("{} --backup", opts.tool.display()),
        reason: format!("{detail}; no point was written"),
    };
    match streamed {
        Err(MysqlError::Interrupted) => Err(MysqlError::Interrupted),
        Err(e @ MysqlError::Vault(_)) => Err(e),
        // The stream broke because the tool failed: its own words say why.
        Err(e) if !status.success() && status.code().is_some() => {
            Err(failed(format!("{status}: {} ({e})", tool::tail(log))))
        }
        Err(e) => Err(e),
        Ok(_) if !status.success() => Err(failed(format!("{status}: {}", tool::tail(log)))),
        Ok(s) => Ok(s),
    }
}

/// Reads what the backup's own files say about it.
fn describe(
    s: &Streamed,
    server: ServerInfo,
    dsn: &Dsn,
    datadir: String,
    warnings: &mut Vec<String>,
) -> Result<PhysicalMeta> {
    let text = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| s.describing.get(*n))
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let checkpoints =
        text(&["xtrabackup_checkpoints", "mariadb_backup_checkpoints"]).ok_or_else(|| {
            MysqlError::Tool {
            program: "mariadb-backup".into(),
            reason:
                "the backup holds no xtrabackup_checkpoints: it is incomplete; no point was written"
                    .into(),
        }
        })?;
    let kv = key_values(&checkpoints);
    let num = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let lsn = Lsn {
        from: num("from_lsn"),
        to: num("to_lsn"),
        last: num("last_lsn"),
    };
    let binlog = text(&["mariadb_backup_binlog_info", "xtrabackup_binlog_info"])
        .and_then(|t| parse_binlog_info(&t));
    if binlog.is_none() && server.log_bin {
        warnings.push(
            "binlog coordinates unknown: this point cannot start a point-in-time recovery".into(),
        );
    }
    let info = text(&["mariadb_backup_info", "xtrabackup_info"]).unwrap_or_default();
    let tool_version = key_values(&info)
        .get("tool_version")
        .cloned()
        .unwrap_or_default();
    Ok(PhysicalMeta {
        format: 1,
        mode: "physical".into(),
        backup_type: kv.get("backup_type").cloned().unwrap_or_default(),
        base: None,
        tool: format!("mariadb-backup {tool_version}").trim().to_string(),
        consistent_at: server_now(dsn),
        server,
        dsn: dsn.to_string(),
        datadir,
        binlog,
        lsn,
        files: s.files.len() as u64,
    })
}

/// The server's current InnoDB LSN (`Innodb_lsn_current`), if it says.
fn current_lsn(s: &mut Session) -> Option<u64> {
    s.value(
        "read the current LSN",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_LSN_CURRENT'",
    )
    .ok()
    .flatten()
    .and_then(|v| v.trim().parse().ok())
}

/// The server's clock now (UTC), read after the copy ended; this host's
/// clock if the server does not answer (it is on this host).
fn server_now(dsn: &Dsn) -> DateTime<Utc> {
    Session::connect(dsn)
        .and_then(|mut s| {
            let v = s.value("read the server's clock", "SELECT UTC_TIMESTAMP(6)");
            s.close();
            v
        })
        .ok()
        .flatten()
        .and_then(|t| crate::snapshot::parse_server_time(&t))
        .unwrap_or_else(Utc::now)
}

/// `key = value` lines.
fn key_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `FILE<TAB>POS[<TAB>GTID]`, as mariadb-backup writes its binlog info.
pub fn parse_binlog_info(text: &str) -> Option<Coordinates> {
    let mut f = text.lines().next()?.split('\t');
    let file = f.next()?.trim().to_string();
    let pos = f.next()?.trim().parse().ok()?;
    let gtid = f
        .next()
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty());
    (!file.is_empty()).then_some(Coordinates { file, pos, gtid })
}

/// Writes the trees: `/backup/<path>` for every file; returns the root and
/// the number of directories.
fn save_trees(writer: &BackupWriter<'_>, files: &BTreeMap<String, Stored>) -> Result<(Id, u64)> {
    #[derive(Default)]
    struct Dir<'a> {
        dirs: BTreeMap<&'a str, Dir<'a>>,
        files: Vec<(&'a str, &'a Stored)>,
    }
    fn save(writer: &BackupWriter<'_>, d: &Dir<'_>, count: &mut u64) -> Result<Id> {
        let mut nodes = Vec::new();
        for (name, sub) in &d.dirs {
            nodes.push(dir_node(name, save(writer, sub, count)?));
            *count += 1;
        }
        for (name, f) in &d.files {
            let mut n = Node {
                kind: NodeKind::File,
                mode: 0o100640,
                size: f.size,
                content: f.content.clone(),
                ..Node::default()
            };
            n.set_name_bytes(name.as_bytes());
            if stream::is_blocked(name) {
                n.attrs
                    .insert("block_size".into(), stream::BLOCK.to_string());
            }
            nodes.push(n);
        }
        nodes.sort_by_key(|a| a.name_bytes());
        Ok(writer.save_tree(&Tree { nodes })?)
    }
    let mut top = Dir::default();
    for (path, f) in files {
        let parts: Vec<&str> = path.split('/').collect();
        let (name, parents) = parts.split_last().expect("a path has a name");
        let mut d = &mut top;
        for p in parents {
            d = d.dirs.entry(p).or_default();
        }
        d.files.push((name, f));
    }
    let mut dirs = 1;
    let backup = save(writer, &top, &mut dirs)?;
    let root = writer.save_tree(&Tree {
        nodes: vec![dir_node(BACKUP_DIR, backup)],
    })?;
    Ok((root, dirs))
}

/// A private (0700) temporary directory in `dir`, else in the system's
/// temporary directory; removed when dropped.
pub(super) fn private_tempdir(prefix: &str, dir: Option<&Path>) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let mut b = tempfile::Builder::new();
    b.prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700));
    match dir {
        Some(d) => b.tempdir_in(d).map_err(|e| MysqlError::io("create", d, e)),
        None => b
            .tempdir()
            .map_err(|e| MysqlError::io("create", std::env::temp_dir(), e)),
    }
}

fn dir_node(name: &str, subtree: Id) -> Node {
    let mut n = Node {
        kind: NodeKind::Dir,
        mode: 0o40750,
        subtree: Some(subtree),
        ..Node::default()
    };
    n.set_name_bytes(name.as_bytes());
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_binlog_info_and_refuses_remote_servers() {
        let c = parse_binlog_info("binlog.000001\t1234\t0-1-5\n").unwrap();
        assert_eq!(
            (c.file.as_str(), c.pos, c.gtid.as_deref()),
            ("binlog.000001", 1234, Some("0-1-5"))
        );
        let c = parse_binlog_info("binlog.000002\t4\n").unwrap();
        assert_eq!(c.gtid, None);
        assert!(parse_binlog_info("").is_none());
        let dsn = |s: &str| Dsn::parse(s).unwrap();
        for ok in [
            "mysql://root@127.0.0.1:3306",
            "mysql://root@localhost",
            "mysql://root@db.example?socket=/run/mysqld/mysqld.sock",
        ] {
            refuse_remote(&dsn(ok)).unwrap();
        }
        let e = refuse_remote(&dsn("mysql://root@db.example:3306")).unwrap_err();
        assert!(e.to_string().contains("runs on the database host"), "{e}");
    }

    #[test]
    fn innodb_tablespaces_are_told_from_other_files() {
        for t in ["ibdata1", "shop/orders.ibd", "undo001", "ibdata12"] {
            assert!(stream::is_tablespace(t), "{t}");
        }
        for o in [
            "ib_logfile0",
            "shop/notes.MAD",
            "shop/orders.frm",
            "undo",
            "ibdata1.bak",
        ] {
            assert!(!stream::is_tablespace(o), "{o}");
        }
        // An incremental point's page files are stored in blocks too.
        for b in [
            "shop/orders.ibd.delta",
            "ibdata1.delta",
            "undo002.delta",
            "shop/new.new",
        ] {
            assert!(stream::is_blocked(b), "{b}");
        }
        for o in [
            "shop/orders.ibd.meta",
            "ib_logfile0",
            "shop/orders.frm.delta",
        ] {
            assert!(!stream::is_blocked(o), "{o}");
        }
    }
}
