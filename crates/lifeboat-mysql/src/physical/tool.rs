//! Running `mariadb-backup`: its backup streamed to our stdin side of a
//! pipe, its prepare in place; its messages kept in a log file so that
//! neither side blocks on a full pipe, and their end quoted when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{MysqlError, Result};
use crate::server::Dsn;

/// What to install when the tool is missing.
const PACKAGE: &str = "install it with: apt-get install mariadb-backup (Debian/Ubuntu; of the same version as the server)";

/// The tool as a command (with `setpriv --pdeathsig` when available, so a
/// killed Lifeboat does not leave it running).
fn command(tool: &Path) -> Result<Command> {
    if !crate::spool::installed(tool) {
        return Err(MysqlError::Tool {
            program: tool.display().to_string(),
            reason: format!("not found: a physical backup or restore needs it; {PACKAGE}"),
        });
    }
    Ok(crate::spool::dies_with_us(tool))
}

fn spawn_error(tool: &Path, e: std::io::Error) -> MysqlError {
    MysqlError::Tool {
        program: tool.display().to_string(),
        reason: format!("cannot start it: {e}; {PACKAGE}"),
    }
}

/// Starts `mariadb-backup --backup --stream=mbstream` against `dsn`, its
/// stdout piped to us and its messages into `log`; `work` is its target
/// directory (it keeps only small temporary files there while streaming).
/// With `from`, an incremental backup of the pages changed after that LSN.
pub(super) fn start_backup(
    tool: &Path,
    dsn: &Dsn,
    parallel: usize,
    from: Option<u64>,
    work: &Path,
    log: &Path,
) -> Result<Child> {
    let mut cmd = command(tool)?;
    cmd.arg("--backup").arg("--stream=mbstream");
    if let Some(lsn) = from {
        cmd.arg(format!("--incremental-lsn={lsn}"));
    }
    cmd.arg(format!("--target-dir={}", work.display()))
        .arg(format!("--parallel={}", parallel.max(1)))
        .arg(format!("--user={}", dsn.user));
    match &dsn.socket {
        Some(s) => cmd.arg(format!("--socket={s}")),
        None => cmd
            .arg(format!("--host={}", dsn.host))
            .arg(format!("--port={}", dsn.port)),
    };
    // The password through the environment, never the command line.
    match &dsn.password {
        Some(p) => cmd.env("MYSQL_PWD", p),
        None => cmd.env_remove("MYSQL_PWD"),
    };
    let err = std::fs::File::create(log).map_err(|e| MysqlError::io("create", log, e))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .map_err(|e| spawn_error(tool, e))
}

/// Runs `mariadb-backup --prepare --target-dir DIR` (messages into `log`);
/// with `incremental`, `--incremental-dir INC`: applies that incremental
/// backup to the prepared DIR.
pub(super) fn prepare(
    tool: &Path,
    dir: &Path,
    incremental: Option<&Path>,
    log: &Path,
) -> Result<()> {
    let mut cmd = command(tool)?;
    let err = std::fs::File::create(log).map_err(|e| MysqlError::io("create", log, e))?;
    cmd.arg("--prepare")
        .arg(format!("--target-dir={}", dir.display()));
    if let Some(inc) = incremental {
        cmd.arg(format!("--incremental-dir={}", inc.display()));
    }
    let st = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .status()
        .map_err(|e| spawn_error(tool, e))?;
    if !st.success() {
        return Err(MysqlError::Tool {
            program: match incremental {
                Some(inc) => format!(
                    "{} --prepare --incremental-dir={}",
                    tool.display(),
                    inc.display()
                ),
                None => format!("{} --prepare", tool.display()),
            },
            reason: format!("{st}: {}", tail(log)),
        });
    }
    Ok(())
}

/// The last lines of a tool's log, for an error message.
pub(super) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(6);
    let t = lines[from..].join(" | ");
    if t.is_empty() {
        "(it wrote no message)".into()
    } else {
        t
    }
}

/// The tool: `LIFEBOAT_MARIADB_BACKUP` when set (a build matching the
/// server's series outside PATH, say), else `mariadb-backup` from PATH.
pub fn default_tool() -> PathBuf {
    std::env::var_os("LIFEBOAT_MARIADB_BACKUP")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("mariadb-backup"))
}
