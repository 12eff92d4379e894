//! The continuous binlog archive (its running state in archive/state.rs,
//! the follower and its spool in spool.rs).
//!
//! ```text
//! check: binary logging on, the login may list binlogs (BINLOG MONITOR)
//! resume: roll up seal points a previous run left; start where the archive's
//!         head is (or, for a new archive, at the newest snapshot's binlog file,
//!         else the server's oldest); head file purged on the server → GAP, said
//!         loudly, recorded before the next segment, archiving goes on
//! follow: `mariadb-binlog --read-from-remote-server --raw --stop-never` writes
//!         the server's binlog files, byte-identical, into a private spool
//!         directory (spool.rs: fresh, 0700, files 0600; one that is removed or
//!         replaced under the archive stops it with an error, never a gap)
//! loop (every 100 ms):
//!     read what the follower appended; cut at whole events; note times, GTIDs
//!     every seal interval: write a seal point with what arrived (and, when
//!         SHOW MASTER STATUS shows nothing newer, a "caught up through" mark;
//!         an idle server gets a point with only that mark on each check, so
//!         its newest restorable second trails the present by about the seal
//!         interval, as a busy server's does)
//!     every rollup interval: one rollup point replaces the seal points; the
//!         vault session (and its lock) is renewed so prunes are not held up
//!     the follower exits (server restart, network): read what it wrote,
//!         reconnect with back-off, follow again from the same file
//! stop (SIGINT/SIGTERM): seal, roll up, exit
//! ```
//! Restarting the archive loses nothing: the vault holds where it stopped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_vault::{BackupWriter, Vault};
use serde::Serialize;

use crate::binlog::file_number;
use crate::catalog::Catalog;
use crate::error::{MysqlError, Result};
use crate::segment::write_rollup;
use crate::server::{Dsn, Session, text};
use crate::spool::{Follower, Spool};

mod state;
use state::State;

/// How the archive runs.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// Resource name (default `mysql:HOST:PORT`, as snapshots).
    pub resource: Option<String>,
    /// Seal what arrived at least this often.
    pub seal_interval: Duration,
    /// Replace seal points by one rollup point this often.
    pub rollup_interval: Duration,
    /// … or when the seals hold this many bytes.
    pub rollup_bytes: usize,
    /// Seals up to this size travel inside the point.
    pub inline_max: usize,
    /// With nothing new from the server, write a point with only the
    /// "caught up" mark at most this often (default: every check, the seal
    /// interval: an idle database's restorable time trails the present by
    /// about a second; the rollups fold these points like any seal).
    pub heartbeat: Duration,
    /// Where the follower's private spool directory is made (a fresh one
    /// each run, see spool.rs).
    pub spool: PathBuf,
    /// Server id the follower uses as a replica (default: derived from the resource).
    pub replica_id: Option<u32>,
    /// The binlog follower program.
    pub follower: PathBuf,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            resource: None,
            seal_interval: Duration::from_secs(1),
            rollup_interval: Duration::from_secs(300),
            rollup_bytes: 16 << 20,
            inline_max: 1 << 20,
            heartbeat: Duration::from_secs(1),
            spool: std::env::temp_dir(),
            replica_id: None,
            follower: PathBuf::from("mariadb-binlog"),
        }
    }
}

/// What the archive reports as it runs (one JSON line each with `--json`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ArchiveEvent {
    /// Following began (again).
    Started {
        /// Resource.
        resource: String,
        /// File followed from.
        file: String,
        /// Position archiving resumes at.
        pos: u64,
    },
    /// Binlogs were purged before they were archived.
    Gap {
        /// What is missing.
        detail: String,
    },
    /// A seal point was written.
    Sealed {
        /// Point id.
        point: String,
        /// Bytes in it.
        bytes: u64,
        /// Archived up to this file…
        file: String,
        /// …and position.
        end: u64,
        /// Newest event time in it.
        last_time: Option<DateTime<Utc>>,
        /// Newest GTID in it.
        last_gtid: Option<String>,
        /// Caught up with the server at this time.
        through: Option<DateTime<Utc>>,
        /// When the point was written.
        sealed_at: DateTime<Utc>,
        /// How long writing it took (ms): the point object and, under
        /// retention on an S3 bucket with Object Lock, its object retention.
        write_ms: f64,
    },
    /// Seal points were replaced by one rollup point.
    RolledUp {
        /// Point id.
        point: String,
        /// Seal points replaced.
        replaced: usize,
    },
    /// The server went away; following again after a pause.
    Reconnecting {
        /// Why.
        error: String,
        /// Seconds until the next try.
        retry_in_s: f64,
    },
}

fn replica_id(resource: &str) -> u32 {
    let h = fnv1a(resource.as_bytes());
    (1 << 30) | (h & 0x3fff_ffff)
}

/// FNV-1a, enough to spread replica ids.
fn fnv1a(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &c| {
        (h ^ c as u32).wrapping_mul(0x0100_0193)
    })
}

fn binary_logs(s: &mut Session) -> Result<Vec<String>> {
    s.column(
        "list the binary logs (SHOW BINARY LOGS)",
        "SHOW BINARY LOGS",
    )
}

fn master_status(s: &mut Session) -> Result<Option<(String, u64)>> {
    let r = s.rows("read the binlog position", "SHOW MASTER STATUS")?;
    Ok(r.into_iter().next().map(|row| {
        (
            text(row.first().cloned().flatten()),
            text(row.get(1).cloned().flatten()).parse().unwrap_or(0),
        )
    }))
}

/// Fails when the server's binlog numbering went backwards (RESET MASTER):
/// its new files would carry the names of archived ones with other contents.
fn check_not_reset(resource: &str, server: &[String], archived: &str) -> Result<()> {
    let newest = server.iter().filter_map(|f| file_number(f)).max();
    match (newest, file_number(archived)) {
        (Some(n), Some(a)) if n < a => Err(MysqlError::Usage(format!(
            "the binary log of {resource} was reset (RESET MASTER): the server's newest file is number {n}, the archive already holds {archived}. Archive it as a new resource (--resource NAME, then `lifeboat backup mysql --resource NAME`), so the new files are not mistaken for the old"
        ))),
        _ => Ok(()),
    }
}

/// Where to start: (file, offset, gap).
fn start_position(c: &Catalog, server: &[String]) -> (String, u64, Option<String>) {
    let oldest = server.first().cloned().unwrap_or_default();
    if let Some(h) = c.head() {
        if server.contains(&h.file) {
            return (h.file.clone(), h.end, None);
        }
        let detail = format!(
            "the archive ends in {} at byte {}, but the server no longer has that file (its oldest binlog is {oldest}); anything written after that point and before {oldest} is lost to point-in-time recovery",
            h.file, h.end
        );
        return (oldest, 0, Some(detail));
    }
    for (_, _, m) in c.snapshots.iter().rev() {
        if let Some(co) = &m.binlog
            && server.contains(&co.file)
        {
            return (co.file.clone(), 0, None);
        }
    }
    (oldest, 0, None)
}

/// Checks the server, claims the resource's archive (one at a time), rolls
/// up the seal points a previous run left and finds where to start; returns
/// the control session and the archive's state.
fn begin<'v>(
    vault: &'v Vault,
    dsn: &Dsn,
    resource: &str,
    on_event: &mut dyn FnMut(&ArchiveEvent),
) -> Result<(Session, State<'v>)> {
    let mut control = Session::connect(dsn)?;
    let info = control.info()?;
    if !info.log_bin {
        return Err(MysqlError::BinlogOff {
            server: dsn.to_string(),
        });
    }
    if !info.binlog_format.eq_ignore_ascii_case("ROW") {
        tracing::warn!(
            "binlog_format is {} on {dsn}: point-in-time recovery is exact only with ROW (SET GLOBAL binlog_format = ROW and in my.cnf)",
            info.binlog_format
        );
    }
    let server_files = binary_logs(&mut control)?;
    // One archive per resource: a second would store every event twice. The
    // claim makes "none runs, so this one starts" atomic among contenders.
    let kind = format!("archive {resource}");
    let claim = match lifeboat_vault::lock::claim_sole(vault.storage(), &kind)? {
        Ok(c) => c,
        Err((_, l)) => {
            return Err(MysqlError::Usage(format!(
                "another binlog archive of {resource} is running (on {}, pid {}, since {}); stop it first",
                l.host,
                l.pid,
                l.created.to_rfc3339()
            )));
        }
    };
    lifeboat_vault::testhook::pause("archive-checked");
    let catalog = Catalog::load(vault, resource)?;
    let writer = BackupWriter::start(vault, &kind)?;
    claim.release()?;
    // Seal points a previous run left are rolled up first.
    if let Some(id) = write_rollup(&writer, resource, &catalog.seals)? {
        on_event(&ArchiveEvent::RolledUp {
            point: id.to_hex(),
            replaced: catalog.seals.len(),
        });
    }
    if let Some(h) = catalog.head() {
        check_not_reset(resource, &server_files, &h.file)?;
    }
    let (file, offset, gap) = start_position(&catalog, &server_files);
    if let Some(g) = &gap {
        tracing::error!("GAP in the binlog archive of {resource}: {g}");
        on_event(&ArchiveEvent::Gap { detail: g.clone() });
    }
    let st = State {
        vault,
        resource: resource.to_string(),
        server_id: info.server_id,
        writer,
        seals: Vec::new(),
        seal_bytes: 0,
        file,
        buf: Vec::new(),
        buf_start: offset,
        pending: Vec::new(),
        opened: None,
        gap,
        through: None,
        through_written: None,
        last_point: Instant::now(),
        first_seal: None,
        idle_rollup: None,
    };
    Ok((control, st))
}

/// The follower's side of an archive: how it is started (again), and the
/// back-off between tries.
struct Following<'a> {
    dsn: &'a Dsn,
    opts: &'a ArchiveOptions,
    stop: &'a AtomicBool,
    resource: &'a str,
    /// The server id the follower uses as a replica.
    replica: u32,
    spool: Spool,
    /// Followers started so far.
    run: u32,
    backoff: Duration,
}

impl Following<'_> {
    /// Starts a follower from the state's current file.
    fn spawn(&mut self, st: &State<'_>) -> Result<Follower> {
        self.run += 1;
        Follower::spawn(
            self.dsn,
            self.opts,
            self.replica,
            &self.spool,
            self.run,
            &st.file,
        )
    }

    /// Tells that following began (again).
    fn started(&self, st: &State<'_>, on_event: &mut dyn FnMut(&ArchiveEvent)) {
        on_event(&ArchiveEvent::Started {
            resource: self.resource.to_string(),
            file: st.file.clone(),
            pos: st.buf_start,
        });
    }

    /// The follower exited: says why, seals what arrived, waits out the
    /// back-off, connects again and follows from the same file (or, when the
    /// server purged it meanwhile, from its oldest with a gap). Returns
    /// whether it follows again (false: stopping, or the server does not
    /// answer yet; the caller looks again at once).
    fn restart(
        &mut self,
        st: &mut State<'_>,
        follower: &mut Follower,
        control: &mut Option<Session>,
        on_event: &mut dyn FnMut(&ArchiveEvent),
    ) -> Result<bool> {
        let (dsn, resource) = (self.dsn, self.resource);
        let log = follower.log();
        if log.contains("REPLICATION SLAVE") || log.contains("Access denied") {
            return Err(MysqlError::Privilege {
                server: dsn.to_string(),
                what: "following the binlog".into(),
                grant: "REPLICATION SLAVE".into(),
                user: dsn.account(),
                detail: log.trim().to_string(),
            });
        }
        let error = log
            .lines()
            .last()
            .unwrap_or("the follower exited")
            .to_string();
        let backoff = self.backoff;
        on_event(&ArchiveEvent::Reconnecting {
            error: error.clone(),
            retry_in_s: backoff.as_secs_f64(),
        });
        tracing::warn!("binlog follower stopped ({error}); following again in {backoff:?}");
        // Seal what we have while we wait.
        st.seal(false, self.opts, on_event)?;
        let deadline = Instant::now() + backoff;
        while Instant::now() < deadline && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.backoff = (backoff * 2).min(Duration::from_secs(10));
        if self.stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        *control = None;
        let Ok(mut c) = Session::connect(dsn) else {
            return Ok(false);
        };
        let Ok(files) = binary_logs(&mut c) else {
            return Ok(false);
        };
        *control = Some(c);
        check_not_reset(resource, &files, &st.file)?;
        if !files.contains(&st.file) {
            let (file, _, _) = start_position(&Catalog::default(), &files);
            let detail = format!(
                "{} was purged on the server while the archive could not follow it (archived up to byte {}); continuing at {file}",
                st.file, st.buf_start
            );
            tracing::error!("GAP in the binlog archive of {resource}: {detail}");
            on_event(&ArchiveEvent::Gap {
                detail: detail.clone(),
            });
            st.gap = Some(detail);
            st.file = file;
            st.buf_start = 0;
        }
        st.buf.clear(); // the new follower writes the file again from its start
        *follower = self.spawn(st)?;
        self.backoff = Duration::from_secs(1);
        self.started(st, on_event);
        Ok(true)
    }
}

/// Where the server's binlog is (file, position), with the time asked; none
/// without a control session or an answer.
fn ask_position(control: &mut Option<Session>) -> Option<(DateTime<Utc>, (String, u64))> {
    let asked = Utc::now();
    control
        .as_mut()
        .and_then(|c| master_status(c).ok().flatten())
        .map(|s| (asked, s))
}

/// Follows the server's binary log into the vault until `stop` is set.
pub fn archive(
    vault: &Vault,
    dsn: &Dsn,
    opts: &ArchiveOptions,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(&ArchiveEvent),
) -> Result<()> {
    let resource = opts.resource.clone().unwrap_or_else(|| dsn.resource());
    let (control, mut st) = begin(vault, dsn, &resource, on_event)?;
    let replica = opts.replica_id.unwrap_or_else(|| replica_id(&resource));
    let mut fl = Following {
        dsn,
        opts,
        stop,
        resource: &resource,
        replica,
        spool: Spool::create(&opts.spool, replica)?,
        run: 0,
        backoff: Duration::from_secs(1),
    };
    let mut follower = fl.spawn(&st)?;
    fl.started(&st, on_event);
    let mut last_seal = Instant::now();
    let mut control = Some(control);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let exited = follower.child.try_wait().ok().flatten().is_some();
        // Where the server is, asked before reading the spool: if we then have
        // at least that much, everything before `asked` is archived.
        let tick = stopping || last_seal.elapsed() >= opts.seal_interval;
        let status = if tick {
            ask_position(&mut control)
        } else {
            None
        };
        // The spool is still ours (what the follower writes elsewhere is lost).
        fl.spool.check()?;
        follower.check()?;
        // Read the current file; move on when the follower has started the next.
        st.catch_up(&follower.dir)?;
        if let Some((asked, position)) = status {
            st.mark_through(asked, position);
        }
        if tick {
            st.seal(stopping, opts, on_event)?;
            st.rollup(stopping, opts, on_event)?;
            last_seal = Instant::now();
        }
        if stopping {
            st.writer.finish()?;
            return Ok(());
        }
        if exited && !fl.restart(&mut st, &mut follower, &mut control, on_event)? {
            continue;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Segment;
    use lifeboat_vault::Id;

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_reset_binlog_is_refused() {
        let server = files(&["binlog.000001", "binlog.000002"]);
        assert!(check_not_reset("r", &server, "binlog.000002").is_ok());
        assert!(check_not_reset("r", &server, "binlog.000001").is_ok());
        let e = check_not_reset("r", &server, "binlog.000042").unwrap_err();
        assert!(e.to_string().contains("RESET MASTER"), "{e}");
    }

    #[test]
    fn starts_at_the_head_or_marks_a_gap() {
        let empty = Catalog::default();
        let server = files(&["binlog.000003", "binlog.000004"]);
        assert_eq!(
            start_position(&empty, &server),
            ("binlog.000003".to_string(), 0, None)
        );
        let seg = |file: &str, end| crate::catalog::Archived {
            seg: Segment {
                file: file.into(),
                start: 0,
                end,
                first_time: None,
                last_time: None,
                last_gtid: None,
                gap_before: None,
                inline: None,
                node: None,
            },
            point: Id::default(),
            tree: Id::default(),
        };
        let mut c = Catalog::default();
        c.segments.push(seg("binlog.000004", 900));
        assert_eq!(
            start_position(&c, &server),
            ("binlog.000004".to_string(), 900, None)
        );
        let mut c = Catalog::default();
        c.segments.push(seg("binlog.000002", 500));
        let (f, pos, gap) = start_position(&c, &server);
        assert_eq!((f.as_str(), pos), ("binlog.000003", 0));
        assert!(gap.unwrap().contains("binlog.000002"));
    }
}
