//! A physical point rolled forward: its chain restored as a data directory,
//! then the binlog archive replayed into a private server of our own on
//! that directory, which is stopped cleanly before the directory is handed
//! over.
//!
//! ```text
//! restore_physical(tip) ─▶ DIR prepared
//! mariadbd --datadir DIR --skip-networking --skip-grant-tables
//!          --socket PRIVATE/s   (PRIVATE: a 0700 directory of ours)
//! mariadb-binlog … | mariadb --socket PRIVATE/s
//!          --init-command='FLUSH PRIVILEGES'  (pitr::replay_skipping_grants:
//!          the binlog's CREATE USER / GRANT apply, the session keeps all)
//! SHUTDOWN; wait for the exit ─▶ DIR starts with any mariadbd
//! ```
//! The private server takes no TCP connection and its socket sits in a
//! directory only we can enter, so skipping the grant tables opens nothing
//! to anyone else; it dies with us (`setpriv --pdeathsig`). A replay that
//! fails removes the directory: it holds neither the point nor the asked
//! moment.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering::Relaxed;

use lifeboat_protector::{
    Reading, RestoreError, RestoreJob, Restored, Stage, Target, TargetKind, watched,
};
use lifeboat_vault::Vault;

use crate::catalog::Catalog;
use crate::error::{MysqlError, Result};
use crate::pitr::{Plan, ReplayReport};
use crate::server::Dsn;

/// How long the private server may take to accept connections (crash
/// recovery of a prepared directory is short; a cold disk is not).
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// How long its clean shutdown may take (dirty pages are flushed).
const STOP_TIMEOUT: Duration = Duration::from_secs(600);

/// The `mariadbd` binary (`/usr/sbin` is not on every user's PATH).
pub fn server_binary() -> PathBuf {
    ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("mariadbd"))
}

/// A `mariadbd` of our own on a restored data directory, reachable only
/// through a socket in a private directory.
pub struct ScratchServer {
    child: Option<Child>,
    private: tempfile::TempDir,
    datadir: PathBuf,
}

impl ScratchServer {
    /// Starts it on `datadir` (its socket, logs and temporary files in a
    /// private directory made below `work`) and waits until it accepts
    /// connections.
    pub fn start(datadir: &Path, work: &Path) -> Result<ScratchServer> {
        let private = private_dir(work)?;
        let p = private.path();
        let tmp = p.join("tmp");
        std::fs::create_dir(&tmp).map_err(|e| MysqlError::io("create", &tmp, e))?;
        let mut cmd = crate::spool::dies_with_us(&server_binary());
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--socket={}", p.join("s").display()))
            .arg(format!("--pid-file={}", p.join("pid").display()))
            .arg(format!("--log-error={}", p.join("error.log").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--skip-networking",
                "--skip-grant-tables",
                "--skip-slave-start",
                "--innodb-buffer-pool-size=512M",
                // A crash loses the scratch run, which starts again from
                // the point: durability per commit buys nothing here.
                "--innodb-flush-log-at-trx-commit=0",
            ]);
        if rustix::process::geteuid().is_root() {
            cmd.arg("--user=root");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| MysqlError::Tool {
                program: server_binary().display().to_string(),
                reason: format!(
                    "cannot start it ({e}): rolling a physical point forward runs a server on it; apt-get install mariadb-server"
                ),
            })?;
        let mut s = ScratchServer {
            child: Some(child),
            private,
            datadir: datadir.to_path_buf(),
        };
        s.wait_ready()?;
        Ok(s)
    }

    /// Root through the private socket (the grant tables are skipped).
    pub fn dsn(&self) -> Dsn {
        Dsn {
            user: "root".into(),
            password: None,
            host: "localhost".into(),
            port: 3306,
            socket: Some(self.private.path().join("s").display().to_string()),
        }
    }

    fn log_tail(&self) -> String {
        let log = self.private.path().join("error.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    fn wait_ready(&mut self) -> Result<()> {
        let socket = self.private.path().join("s");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Ok(());
            }
            let child = self.child.as_mut().expect("running");
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let why = match exited {
                    Some(st) => format!("exited ({st}) before it accepted connections"),
                    None => format!(
                        "did not accept connections within {} s",
                        START_TIMEOUT.as_secs()
                    ),
                };
                return Err(MysqlError::Tool {
                    program: "mariadbd".into(),
                    reason: format!(
                        "a server on the restored data directory {} {why} (is the server of this host older than the point's?):\n{}",
                        self.datadir.display(),
                        self.log_tail()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Shuts it down cleanly (every page flushed) and waits for its exit.
    pub fn stop(mut self) -> Result<()> {
        let mut child = self.child.take().expect("running");
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(st)) if st.success() => return Ok(()),
                Ok(Some(st)) => {
                    return Err(MysqlError::Tool {
                        program: "mariadbd".into(),
                        reason: format!(
                            "the server on {} ended with {st} while shutting down:\n{}",
                            self.datadir.display(),
                            self.log_tail()
                        ),
                    });
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(MysqlError::Tool {
                        program: "mariadbd".into(),
                        reason: format!(
                            "the server on {} did not shut down within {} s",
                            self.datadir.display(),
                            STOP_TIMEOUT.as_secs()
                        ),
                    });
                }
            }
        }
    }
}

impl Drop for ScratchServer {
    /// A server left running by an error is killed: it must not outlive
    /// the restore that started it.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A private (0700) directory below `work` whose socket path fits a unix
/// socket's limit; else one in the system's temporary directory. Private
/// it must be: the server's socket (mode 0777) skips the grant tables, so
/// whoever can enter the directory is its superuser.
fn private_dir(work: &Path) -> Result<tempfile::TempDir> {
    let make = |dir: &Path| crate::physical::private_tempdir("lifeboat-roll-", Some(dir));
    let d = make(work)?;
    if d.path().join("s").as_os_str().len() < 100 {
        return Ok(d);
    }
    make(&std::env::temp_dir())
}

/// Rolls the data directory `datadir` (the plan's physical point, restored
/// and prepared) forward along the plan's binlog in a private server, then
/// stops that server. On failure the caller removes the directory.
pub fn roll_forward(
    vault: &Vault,
    catalog: &Catalog,
    plan: &Plan,
    datadir: &Path,
    work: &Path,
) -> Result<ReplayReport> {
    // Killed before the end, the directory says so (a server would start).
    crate::physical::mark_incomplete(datadir)?;
    let server = ScratchServer::start(datadir, work)?;
    let replayed = crate::pitr::replay_skipping_grants(vault, catalog, plan, &server.dsn(), work)?;
    server.stop()?;
    crate::physical::mark_complete(datadir)?;
    Ok(replayed)
}

/// A physical restore's options (the restore job's JSON).
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PhysicalRestoreSettings {
    /// Where a roll forward keeps its private server's socket and the
    /// binlog it replays (default: the system's temporary directory).
    pub work: Option<PathBuf>,
}

/// A physical point through the protector interface: its chain restored
/// into the directory the target names (empty or missing) and prepared
/// ([`Stage::Loaded`]), then, when asked, rolled forward in a private
/// server ([`Stage::RolledForward`]). Any failure removes the directory's
/// new contents: nothing half-restored is left to start a server on.
pub(crate) fn restore_job(job: &RestoreJob) -> std::result::Result<Restored, RestoreError> {
    use crate::protector::restore_error;
    let Target::Directory(datadir) = &job.target else {
        return Err(job.wrong_target(TargetKind::Directory));
    };
    let s: PhysicalRestoreSettings = job.options()?;
    let (vault, id, point) = (job.vault, job.id, job.point);
    let meta = crate::physical::physical_meta(id, point).map_err(restore_error)?;
    // Refused before anything is written when the archive cannot take it there.
    let roll = match job.roll_forward {
        Some(to) => Some(
            crate::pitr::plan_at(vault, id, point, crate::pitr::Base::Physical(meta), to)
                .map_err(restore_error)?,
        ),
        None => None,
    };
    let existed = datadir.exists();
    let opts = crate::physical::PhysicalRestoreOptions {
        datadir: datadir.clone(),
        tool: crate::physical::default_tool(),
    };
    let counters = crate::Counters::default();
    let read = || Reading {
        unit: "files",
        items: counters.chunks_done.load(Relaxed),
        items_total: Some(counters.chunks_total.load(Relaxed)).filter(|n| *n > 0),
        bytes: counters.bytes.load(Relaxed),
        bytes_total: None,
    };
    let rep = watched(job.watch, &read, || {
        crate::physical::restore_physical(vault, id, point, &opts, &counters)
    })
    .map_err(restore_error)?;
    job.watch.stage_ended(Stage::Loaded);
    let mut report = serde_json::to_value(&rep).unwrap_or_default();
    let mut data_time = Some(rep.consistent_at);
    if let Some((catalog, plan, reach)) = roll {
        let work = s.work.unwrap_or_else(std::env::temp_dir);
        match roll_forward(vault, &catalog, &plan, datadir, &work) {
            Ok(replayed) => {
                report["replay"] = serde_json::to_value(&replayed).unwrap_or_default();
                data_time = Some(reach);
            }
            Err(e) => {
                crate::physical::remove_written(datadir, !existed);
                return Err(RestoreError::RollForward(format!(
                    "{e}; the restored data directory {} was removed",
                    datadir.display()
                )));
            }
        }
        job.watch.stage_ended(Stage::RolledForward);
    }
    Ok(Restored {
        items: rep.files,
        bytes: rep.bytes,
        summary: format!(
            "{} files, {} bytes, prepared (extract {:.1} s, prepare {:.1} s)",
            rep.files, rep.bytes, rep.extract_s, rep.prepare_s
        ),
        data_time,
        warnings: Vec::new(),
        not_restored: Vec::new(),
        errors: Vec::new(),
        report,
    })
}

/// `MAJOR.MINOR` of a server version (`10.11.19-MariaDB-0+deb12u1` → `10.11`).
fn series(version: &str) -> Option<String> {
    let mut it = version.split(['.', '-']);
    let (major, minor) = (it.next()?, it.next()?);
    (major.chars().all(|c| c.is_ascii_digit()) && minor.chars().all(|c| c.is_ascii_digit()))
        .then(|| format!("{major}.{minor}"))
}

/// The version of this host's `mariadbd` (`--version`), once.
fn local_version() -> Option<String> {
    static V: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let out = std::process::Command::new(server_binary())
            .arg("--version")
            .output()
            .ok()?;
        // `mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu …`
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let at = text.find("Ver ")? + 4;
        text[at..].split_whitespace().next().map(str::to_string)
    })
    .clone()
}

/// Whether this host can restore a physical point taken from a server of
/// `version`: `mariadb-backup` is here and this host's `mariadbd` is of the
/// same series (`MAJOR.MINOR`: a prepared directory is started by the
/// server that wrote it, or one of its own series). Else why not, with what
/// to install.
pub fn usable_here(version: &str) -> std::result::Result<(), String> {
    let tool = crate::physical::default_tool();
    if !crate::spool::installed(&tool) {
        return Err(format!(
            "this host has no {} (apt-get install mariadb-backup, of the point's server series {})",
            tool.display(),
            series(version).unwrap_or_else(|| version.to_string())
        ));
    }
    let want = series(version);
    match local_version() {
        None => Err(
            "this host has no mariadbd to start a physical point (apt-get install mariadb-server)"
                .into(),
        ),
        Some(here) if series(&here) == want && want.is_some() => Ok(()),
        Some(here) => Err(format!(
            "the point was taken from MariaDB {version} and this host's server is {here}: a physical point starts only on its own series ({})",
            want.unwrap_or_else(|| version.to_string())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_s_series_is_major_and_minor() {
        assert_eq!(
            series("10.11.19-MariaDB-0+deb12u1").as_deref(),
            Some("10.11")
        );
        assert_eq!(series("11.4.2-MariaDB").as_deref(), Some("11.4"));
        assert_eq!(series("8.0.36").as_deref(), Some("8.0"));
        assert_eq!(series("garbage"), None);
    }

    /// The private server's socket skips the grant tables: its directory
    /// is no one else's to enter (umask or not).
    #[test]
    fn the_private_server_s_directory_is_the_user_s_alone() {
        use std::os::unix::fs::PermissionsExt;
        let work = tempfile::tempdir().unwrap();
        let d = private_dir(work.path()).unwrap();
        let mode = std::fs::metadata(d.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    #[test]
    fn a_point_of_another_series_is_not_usable_here() {
        let Some(here) = local_version() else { return };
        let err = usable_here("5.5.68-MariaDB").unwrap_err();
        assert!(err.contains("5.5.68") && err.contains(&here), "{err}");
    }
}
