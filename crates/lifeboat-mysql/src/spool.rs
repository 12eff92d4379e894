//! The binlog follower and its spool: plaintext row changes on local disk,
//! so a directory no other user can read, plant or move.
//!
//! ```text
//! parent   --spool DIR (created 0700 when missing), else $TMPDIR; refused when
//!          it is a symbolic link, owned by another user (root may own it), or
//!          writable by others without the sticky bit (/tmp has it)
//! spool    PARENT/lifeboat-binlog-spool-<replica id>-<random>: made fresh by
//!          mkdir 0700 (an existing name is never used), removed at the end
//! runs     spool/run-N (mkdir 0700, never an existing one), one per follower
//! files    0600 (the follower's are set so as soon as the archive opens them;
//!          the directory already keeps them from other users)
//! checks   every turn of the archive: the spool and the current run are still
//!          the directories made (same device and inode); otherwise the
//!          archive fails, naming the spool, instead of missing what the
//!          follower writes elsewhere
//! ```

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::archive::ArchiveOptions;
use crate::error::{MysqlError, Result};
use crate::server::Dsn;

/// A private spool directory, removed when dropped.
#[derive(Debug)]
pub struct Spool {
    dir: tempfile::TempDir,
    identity: (u64, u64),
}

fn refused(path: &Path, reason: impl Into<String>) -> MysqlError {
    MysqlError::Spool {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    m.is_dir().then(|| (m.dev(), m.ino()))
}

/// Checks (and makes, when missing) the directory spools are made in.
fn check_parent(parent: &Path) -> Result<()> {
    if std::fs::symlink_metadata(parent).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| MysqlError::io("create spool directory", parent, e))?;
    }
    let m = std::fs::symlink_metadata(parent)
        .map_err(|e| MysqlError::io("inspect spool directory", parent, e))?;
    if m.file_type().is_symlink() {
        return Err(refused(
            parent,
            "is a symbolic link; give the real directory (--spool), one only this user can write",
        ));
    }
    if !m.is_dir() {
        return Err(refused(parent, "is not a directory"));
    }
    let me = rustix::process::geteuid().as_raw();
    if m.uid() != me && m.uid() != 0 {
        return Err(refused(
            parent,
            format!(
                "is owned by uid {}, not by this user (uid {me}) or root: another user could read or move the spooled binlog; use a directory of your own (--spool)",
                m.uid()
            ),
        ));
    }
    let mode = m.mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(refused(
            parent,
            format!(
                "is writable by other users (mode {:04o}) without the sticky bit: they could move the spool away; chmod go-w it or use another (--spool)",
                mode & 0o7777
            ),
        ));
    }
    Ok(())
}

impl Spool {
    /// Makes a fresh private spool in `parent` (see the module).
    pub fn create(parent: &Path, replica_id: u32) -> Result<Spool> {
        check_parent(parent)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("lifeboat-binlog-spool-{replica_id}-"))
            .rand_bytes(8)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(|e| MysqlError::io("create spool directory in", parent, e))?;
        let identity = identity(dir.path())
            .ok_or_else(|| refused(dir.path(), "vanished as soon as it was made"))?;
        Ok(Spool { dir, identity })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes `run-N` (0700; an existing one is refused) and returns it with its identity.
    pub fn run_dir(&self, n: u32) -> Result<(PathBuf, (u64, u64))> {
        self.check()?;
        let p = self.path().join(format!("run-{n}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .map_err(|e| MysqlError::io("create spool directory", &p, e))?;
        let id = identity(&p).ok_or_else(|| refused(&p, "vanished as soon as it was made"))?;
        Ok((p, id))
    }

    /// Fails when the spool is no longer the directory made.
    pub fn check(&self) -> Result<()> {
        if identity(self.path()) != Some(self.identity) {
            return Err(gone(self.path()));
        }
        Ok(())
    }
}

/// The error for a spool directory removed, moved or replaced under the archive.
pub(crate) fn gone(path: &Path) -> MysqlError {
    refused(
        path,
        "was removed, moved or replaced while the archive ran, so what the follower wrote after the last seal may never reach the vault; the archive stops instead of leaving a gap. Start it again: it resumes where the vault's archive ends",
    )
}

/// Creates a new private (0600) file.
pub(crate) fn private_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| MysqlError::io("create", path, e))
}

/// Makes a file the follower wrote private (0600).
pub(crate) fn make_private(f: &std::fs::File, path: &Path) -> Result<()> {
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| MysqlError::io("make private", path, e))
}

/// A command for `program` that the kernel kills when the thread that
/// started it ends, however it ends (an archive killed by SIGKILL, or by
/// the OOM killer, never leaves a follower running on, connected to the
/// server and writing into a spool nobody reads): `setpriv --pdeathsig
/// KILL`, util-linux's, where it is installed (the workspace has no
/// `unsafe` for a `pre_exec` of its own). The archive runs its follower
/// from the thread that calls it, which outlives it.
pub(crate) fn dies_with_us(program: &Path) -> Command {
    static SETPRIV: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let setpriv = SETPRIV.get_or_init(|| {
        ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    });
    // A follower that is not there is said as before (by the spawn).
    match setpriv.as_ref().filter(|_| installed(program)) {
        Some(sp) => {
            let mut c = Command::new(sp);
            c.args(["--pdeathsig", "KILL", "--"]).arg(program);
            c
        }
        None => {
            tracing::warn!(
                "setpriv (util-linux) is not installed: a follower outlives an archive that is killed with SIGKILL"
            );
            Command::new(program)
        }
    }
}

/// Whether `program` is there: the file a path names, else a file of that
/// name in a `PATH` directory.
pub(crate) fn installed(program: &Path) -> bool {
    if program.components().count() > 1 {
        program.is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
    }
}

/// The running `mariadb-binlog` follower and its run directory in the spool.
pub(crate) struct Follower {
    pub(crate) child: Child,
    pub(crate) dir: PathBuf,
    /// The run directory's device and inode.
    identity: (u64, u64),
}

impl Follower {
    pub(crate) fn spawn(
        dsn: &Dsn,
        opts: &ArchiveOptions,
        id: u32,
        spool: &Spool,
        run: u32,
        file: &str,
    ) -> Result<Follower> {
        let (dir, identity) = spool.run_dir(run)?;
        let dir = dir.as_path();
        let err = private_file(&dir.join("follower.log"))?;
        let mut cmd = dies_with_us(&opts.follower);
        cmd.arg("--no-defaults")
            .arg("--read-from-remote-server")
            .arg(format!("--host={}", dsn.host))
            .arg(format!("--port={}", dsn.port))
            .arg(format!("--user={}", dsn.user))
            .arg("--raw")
            .arg("--stop-never")
            .arg(format!("--stop-never-slave-server-id={id}"))
            .arg(format!("--result-file={}/", dir.display()))
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        if let Some(s) = &dsn.socket {
            cmd.arg(format!("--socket={s}"));
        }
        match &dsn.password {
            Some(p) => cmd.env("MYSQL_PWD", p),
            None => cmd.env_remove("MYSQL_PWD"),
        };
        let child = cmd.spawn().map_err(|e| MysqlError::Tool {
            program: opts.follower.display().to_string(),
            reason: format!("{e} (install the MariaDB client: apt-get install mariadb-client)"),
        })?;
        Ok(Follower {
            child,
            dir: dir.to_path_buf(),
            identity,
        })
    }

    /// Fails when the run directory is no longer the one made.
    pub(crate) fn check(&self) -> Result<()> {
        match std::fs::symlink_metadata(&self.dir) {
            Ok(m) if m.is_dir() && (m.dev(), m.ino()) == self.identity => Ok(()),
            _ => Err(gone(&self.dir)),
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("follower.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop();
        if self.check().is_ok() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_private_spool_in_a_checked_parent() {
        let t = tempfile::tempdir().unwrap();
        let parent = t.path().join("p");
        let s = Spool::create(&parent, 7).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&parent), 0o700);
        assert_eq!(mode(s.path()), 0o700);
        let (run, _) = s.run_dir(1).unwrap();
        assert_eq!(mode(&run), 0o700);
        assert!(
            s.run_dir(1).is_err(),
            "an existing run directory is refused"
        );
        s.check().unwrap();
        let other = Spool::create(&parent, 7).unwrap();
        assert_ne!(other.path(), s.path());

        std::fs::rename(s.path(), t.path().join("moved")).unwrap();
        std::fs::create_dir(s.path()).unwrap();
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("removed, moved or replaced"), "{e}");

        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Spool::create(&open, 7).unwrap_err().to_string();
        assert!(e.contains("writable by other users"), "{e}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        Spool::create(&open, 7).unwrap();

        let link = t.path().join("link");
        std::os::unix::fs::symlink(&parent, &link).unwrap();
        let e = Spool::create(&link, 7).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
    }
}
