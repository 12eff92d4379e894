//! The embedded job store: one SQLite file in the state directory
//! (rusqlite, bundled), WAL, migrations by `PRAGMA user_version`.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    DURATION_BUCKETS, Job, JobEnd, JobFilter, JobGroup, JobStore, JobSummary, NewJob, status,
};
use crate::{ControlError, Result};

/// Schema migrations, applied in order; `PRAGMA user_version` is how many ran.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        resource TEXT,
        plan TEXT,
        trigger TEXT NOT NULL,
        vault TEXT,
        status TEXT NOT NULL,
        started TEXT NOT NULL,
        ended TEXT,
        bytes INTEGER,
        point TEXT,
        error TEXT,
        log TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL,
        pid_start TEXT NOT NULL
    );
    CREATE INDEX jobs_resource ON jobs(resource, started);
    CREATE INDEX jobs_status ON jobs(status);",
    // 2: live progress of running jobs (read by the API's event stream).
    "ALTER TABLE jobs ADD COLUMN progress TEXT;
    CREATE INDEX jobs_pid ON jobs(pid);",
    // 3: a drill's or recovery's whole report (the log keeps only its end).
    "ALTER TABLE jobs ADD COLUMN report TEXT;",
];

/// The embedded store: one SQLite file in the state directory.
pub struct SqliteStore {
    pub(super) conn: Connection,
    path: String,
}

impl SqliteStore {
    /// Opens (creating and migrating) the store at `path`, then marks jobs of
    /// dead processes `interrupted`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let p = path.display().to_string();
        let err = |source| ControlError::Store {
            path: p.clone(),
            source,
        };
        let mut conn = Connection::open(path).map_err(err)?;
        // Private like the state directory: the history names hosts, paths and errors.
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        // Switching a new file to WAL needs a lock that SQLite does not wait
        // for with the busy timeout: a daemon and a `jobs run` opening a new
        // store at once would see "database is locked". Retry for as long.
        let started = std::time::Instant::now();
        loop {
            let mode: rusqlite::Result<String> =
                conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0));
            match mode {
                Ok(_) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && started.elapsed() < std::time::Duration::from_secs(10) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(err(e)),
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // Migrate under a write lock (BEGIN IMMEDIATE), reading the version
        // inside it: processes that open a new store at once migrate it once.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version as usize > MIGRATIONS.len() {
            return Err(ControlError::Refused(format!(
                "job store {p} has schema version {version}, newer than this lifeboat knows ({}); upgrade lifeboat",
                MIGRATIONS.len()
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(m).map_err(err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        let s = SqliteStore { conn, path: p };
        s.mark_interrupted()?;
        Ok(s)
    }

    /// The store's error for a failed SQLite call.
    pub(super) fn err(&self, source: rusqlite::Error) -> ControlError {
        ControlError::Store {
            path: self.path.clone(),
            source,
        }
    }
}

/// Whether the process that runs `job` is still that process (pid and start time).
pub fn job_process_alive(store: &SqliteStore, job: &Job) -> Result<bool> {
    let start: Option<String> = store
        .conn
        .query_row("SELECT pid_start FROM jobs WHERE id = ?1", [job.id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| store.err(e))?;
    Ok(start.is_some_and(|s| process_start(job.pid).is_some_and(|now| now == s)))
}

/// A process's start time (field 22 of /proc/PID/stat), to tell a reused
/// pid; readable until the process is reaped (a zombie's too).
pub fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19).map(str::to_string)
}

/// A job from a row of [`COLUMNS`].
pub(super) fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let time = |s: String| {
        DateTime::parse_from_rfc3339(&s)
            .map(|d| d.with_timezone(&Utc))
            .ok()
    };
    Ok(Job {
        id: r.get(0)?,
        kind: r.get(1)?,
        resource: r.get(2)?,
        plan: r.get(3)?,
        trigger: r.get(4)?,
        vault: r.get(5)?,
        status: r.get(6)?,
        started: time(r.get(7)?).unwrap_or_default(),
        ended: r.get::<_, Option<String>>(8)?.and_then(time),
        bytes: r.get::<_, Option<i64>>(9)?.map(|b| b as u64),
        point: r.get(10)?,
        error: r.get(11)?,
        log: r.get(12)?,
        pid: r.get(13)?,
        progress: r.get(14)?,
        report: r.get(15)?,
    })
}

/// The columns [`row_to_job`] reads, in its order.
pub(super) const COLUMNS: &str = "id, kind, resource, plan, trigger, vault, status, started, ended, bytes, point, error, log, pid, progress, report";

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl JobStore for SqliteStore {
    fn start(&self, j: &NewJob) -> Result<i64> {
        let pid = std::process::id();
        self.conn
            .execute(
                "INSERT INTO jobs (kind, resource, plan, trigger, vault, status, started, pid, pid_start)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![j.kind, j.resource, j.plan, j.trigger, j.vault, status::RUNNING, now(), pid, process_start(pid).unwrap_or_default()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    fn finish(&self, id: i64, end: &JobEnd) -> Result<()> {
        let mut log = end.log.clone();
        if log.len() > 4096 {
            let cut = log.len() - 4096;
            let cut = (cut..log.len())
                .find(|i| log.is_char_boundary(*i))
                .unwrap_or(log.len());
            log = log[cut..].to_string();
        }
        self.conn
            .execute(
                "UPDATE jobs SET status = ?2, ended = ?3, bytes = ?4, point = ?5, error = ?6, log = ?7, report = ?8 WHERE id = ?1",
                params![id, end.status, now(), end.bytes.map(|b| b as i64), end.point, end.error, log, end.report],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn get(&self, id: i64) -> Result<Option<Job>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                row_to_job,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn list(&self, f: &JobFilter) -> Result<Vec<Job>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM jobs
                 WHERE (?1 IS NULL OR resource = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR plan = ?3)
                 ORDER BY id DESC LIMIT ?4"
            ))
            .map_err(|e| self.err(e))?;
        let limit = f.limit.map(|l| l as i64).unwrap_or(-1);
        let rows = stmt
            .query_map(params![f.resource, f.status, f.plan, limit], row_to_job)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    fn set_progress(&self, id: i64, progress: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE jobs SET progress = ?2 WHERE id = ?1",
                params![id, progress],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn set_process(&self, id: i64, pid: u32) -> Result<()> {
        self.conn
            .execute(
                "UPDATE jobs SET pid = ?2, pid_start = ?3 WHERE id = ?1",
                params![id, pid, process_start(pid).unwrap_or_default()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn jobs_of_process(&self, pid: u32, start: &str) -> Result<Vec<Job>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE pid = ?1 AND pid_start = ?2 ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![pid, start], row_to_job)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    fn summary(&self) -> Result<JobSummary> {
        let e = |e| self.err(e);
        let buckets: Vec<String> = DURATION_BUCKETS
            .iter()
            .map(|b| format!("SUM(d <= {b})"))
            .collect();
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT COALESCE(resource, ''), kind, status, COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(d), 0), {}
                 FROM (SELECT resource, kind, status, bytes,
                              MAX(0, (julianday(ended) - julianday(started)) * 86400.0) AS d
                       FROM jobs WHERE ended IS NOT NULL)
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                buckets.join(", ")
            ))
            .map_err(e)?;
        let groups = stmt
            .query_map([], |r| {
                Ok(JobGroup {
                    resource: r.get(0)?,
                    kind: r.get(1)?,
                    status: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                    bytes: r.get::<_, i64>(4)? as u64,
                    duration_sum_s: r.get(5)?,
                    buckets: (0..DURATION_BUCKETS.len())
                        .map(|i| r.get::<_, i64>(6 + i).map(|n| n as u64))
                        .collect::<rusqlite::Result<_>>()?,
                })
            })
            .map_err(e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(e)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT resource, MAX(ended) FROM jobs
                 WHERE status = 'succeeded' AND kind = 'backup' AND resource IS NOT NULL
                 GROUP BY resource ORDER BY resource",
            )
            .map_err(e)?;
        let last_success = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(e)?
            .into_iter()
            .filter_map(|(res, t)| {
                DateTime::parse_from_rfc3339(&t)
                    .ok()
                    .map(|t| (res, t.with_timezone(&Utc)))
            })
            .collect();
        let mut stmt = self
            .conn
            .prepare("SELECT kind, COUNT(*) FROM jobs WHERE status = 'running' GROUP BY kind ORDER BY kind")
            .map_err(e)?;
        let running = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(e)?;
        Ok(JobSummary {
            groups,
            last_success,
            running,
        })
    }

    fn mark_interrupted(&self) -> Result<usize> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, pid, pid_start, kind FROM jobs WHERE status = ?1")
            .map_err(|e| self.err(e))?;
        let running: Vec<(i64, u32, String, String)> = stmt
            .query_map([status::RUNNING], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))?;
        let mut n = 0;
        for (id, pid, start, kind) in running {
            if process_start(pid).is_some_and(|s| s == start) {
                continue; // still running
            }
            n += self
                .conn
                .execute(
                    "UPDATE jobs SET status = ?2, ended = ?3, error = ?4 WHERE id = ?1 AND status = 'running'",
                    params![id, status::INTERRUPTED, now(), interrupted_why(&kind, pid)],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(n)
    }
}

/// Why a job of kind `kind` whose process (`pid`) is gone was
/// interrupted, and what that left, in the job's words.
fn interrupted_why(kind: &str, pid: u32) -> String {
    let left = match kind {
        "backup" => "; no recovery point was written by it",
        "restore" => "; what it restored may be incomplete: run the restore again",
        "drill" => {
            "; its scratch stack, whatever of it came up, is torn down by the next drill in its site (started 10 s or more after this one ended)"
        }
        "recover" => {
            "; the stack may be partly recovered: see `lifeboat stack status`, then run the recovery again"
        }
        _ => "",
    };
    format!("the process running it (pid {pid}) ended before the job did (killed or crashed){left}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon and a `jobs run` started together open a new store at once
    /// (seen in the demo: `serve` died with "database is locked").
    #[test]
    fn many_openers_of_a_new_store_at_once_all_succeed() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("jobs.sqlite");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        SqliteStore::open(&path).map(|_| ())
                    })
                })
                .collect();
            for h in handles {
                if let Err(e) = h.join().unwrap() {
                    panic!("round {round}: {e}");
                }
            }
        }
    }

    #[test]
    fn records_and_lists_and_marks_dead_processes() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("jobs.sqlite")).unwrap();
        let new = NewJob {
            kind: "backup".into(),
            resource: Some("etc".into()),
            plan: Some("daily".into()),
            trigger: "manual".into(),
            vault: Some("main".into()),
        };
        let a = s.start(&new).unwrap();
        let b = s
            .start(&NewJob {
                resource: Some("db".into()),
                ..new.clone()
            })
            .unwrap();
        s.finish(
            a,
            &JobEnd {
                status: status::SUCCEEDED.into(),
                bytes: Some(5),
                point: Some("ab".into()),
                ..JobEnd::default()
            },
        )
        .unwrap();
        assert_eq!(s.get(a).unwrap().unwrap().status, "succeeded");
        s.set_progress(b, r#"{"bytes":7}"#).unwrap();
        assert_eq!(
            s.get(b).unwrap().unwrap().progress.as_deref(),
            Some(r#"{"bytes":7}"#)
        );
        let sum = s.summary().unwrap();
        assert_eq!(sum.groups.len(), 1, "{sum:?}");
        assert_eq!((sum.groups[0].count, sum.groups[0].bytes), (1, 5));
        assert_eq!(
            sum.groups[0].buckets[0], 1,
            "a job of a few ms is within 1 s"
        );
        assert_eq!(sum.last_success[0].0, "etc");
        assert_eq!(sum.running, [("backup".to_string(), 1)]);
        let me = std::process::id();
        let mine = s.jobs_of_process(me, &process_start(me).unwrap()).unwrap();
        assert_eq!(mine.iter().map(|j| j.id).collect::<Vec<_>>(), [a, b]);
        // A reused pid (same pid, another start time) has none of them.
        assert!(s.jobs_of_process(me, "1").unwrap().is_empty());
        assert_eq!(
            s.list(&JobFilter {
                resource: Some("db".into()),
                ..Default::default()
            })
            .unwrap()
            .len(),
            1
        );
        assert_eq!(s.mark_interrupted().unwrap(), 0, "this process is alive");
        // A job of a dead process (pid 0 with no start time never matches a live one).
        s.conn
            .execute(
                "UPDATE jobs SET pid = 999999999, pid_start = 'x' WHERE id = ?1",
                [b],
            )
            .unwrap();
        drop(s);
        let s = SqliteStore::open(&d.path().join("jobs.sqlite")).unwrap();
        let j = s.get(b).unwrap().unwrap();
        assert_eq!(j.status, "interrupted");
        let why = j.error.unwrap();
        assert!(
            why.ends_with("no recovery point was written by it"),
            "{why}"
        );
        let listed = s.list(&JobFilter::default()).unwrap();
        assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), [b, a]);
    }

    /// An interrupted job says what its kind left behind: a drill never
    /// speaks of recovery points.
    #[test]
    fn an_interrupted_job_says_what_its_kind_left() {
        assert!(interrupted_why("drill", 7).contains("scratch stack"));
        assert!(!interrupted_why("drill", 7).contains("recovery point"));
        assert!(interrupted_why("restore", 7).contains("run the restore again"));
        assert!(
            interrupted_why("archive", 7)
                .ends_with("(pid 7) ended before the job did (killed or crashed)")
        );
    }

    #[test]
    fn a_report_is_kept_whole_while_the_log_keeps_its_end() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("jobs.sqlite")).unwrap();
        let id = s
            .start(&NewJob {
                kind: "drill".into(),
                resource: Some("shop".into()),
                plan: None,
                trigger: "manual".into(),
                vault: None,
            })
            .unwrap();
        let report = format!("{{\"steps\": \"{}\"}}", "x".repeat(20_000));
        s.finish(
            id,
            &JobEnd {
                status: status::SUCCEEDED.into(),
                log: format!("first\n{}last\n", "é".repeat(5_000)),
                report: Some(report.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        let j = s.get(id).unwrap().unwrap();
        assert_eq!(j.report.as_deref(), Some(report.as_str()));
        assert!(
            j.log.len() <= 4096 && j.log.ends_with("last\n"),
            "{}",
            j.log.len()
        );
    }

    #[test]
    fn a_store_of_the_first_schema_gains_the_progress_column() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("jobs.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO jobs (kind, trigger, status, started, pid, pid_start)
                 VALUES ('backup', 'manual', 'succeeded', '2026-01-01T00:00:00Z', 1, 'x')",
                [],
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let j = s.get(1).unwrap().unwrap();
        assert_eq!((j.status.as_str(), j.progress), ("succeeded", None));
        let v: i64 = s
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
    }
}
