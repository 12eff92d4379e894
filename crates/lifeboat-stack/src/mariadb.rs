//! The embedded default's database server: a `mariadbd` with its own data
//! directory, socket, port, binlog and error log under one directory, run as
//! the invoking user (`--user`, which mariadbd needs when that is root).
//! Binlog is on from the start, so that the recovered site can be archived
//! at once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{self, Proc};
use crate::{Result, StackError};

/// How long a server may take to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A server's directory and what is in it.
#[derive(Debug, Clone)]
pub struct Server {
    /// `ROOT/mysql/NAME`.
    pub dir: PathBuf,
}

fn user() -> String {
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// The `mariadbd` binary (`/usr/sbin` is not on every user's PATH).
fn server_binary() -> PathBuf {
    for p in ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("mariadbd")
}

impl Server {
    /// The server under `dir`.
    pub fn new(dir: PathBuf) -> Server {
        Server { dir }
    }

    /// Its data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Its unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    /// Its error log.
    pub fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    /// A DSN for root over TCP on `port`.
    pub fn dsn(port: u16) -> String {
        format!("mysql://root@127.0.0.1:{port}")
    }

    /// Creates the data directory with `mariadb-install-db` unless it holds
    /// one already; true when it was created.
    pub fn provision(&self) -> Result<bool> {
        if self.data().join("mysql").is_dir() {
            return Ok(false);
        }
        if self.socket().as_os_str().len() > 100 {
            return Err(StackError::Refused(format!(
                "the socket path {} is too long for a unix socket (over 100 bytes): use a shorter site root",
                self.socket().display()
            )));
        }
        let tmp = self.dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| StackError::io("create", &tmp, e))?;
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--user={}", user()))
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .output()
            .map_err(|e| {
                StackError::Process(format!(
                    "cannot run mariadb-install-db ({e}): install MariaDB (apt-get install mariadb-server mariadb-client)"
                ))
            })?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(self.data());
            return Err(StackError::Process(format!(
                "mariadb-install-db failed for {}: {}",
                self.data().display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(true)
    }

    /// Starts `mariadbd` on 127.0.0.1:`port` and waits until it accepts connections.
    pub fn start(&self, port: u16) -> Result<Proc> {
        self.start_on("127.0.0.1", port)
    }

    /// Starts `mariadbd` on `host`:`port` and waits until it accepts connections.
    pub fn start_on(&self, host: &str, port: u16) -> Result<Proc> {
        let mut cmd = Command::new(server_binary());
        cmd.arg("--no-defaults")
            .arg(format!("--user={}", user()))
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--tmpdir={}", self.dir.join("tmp").display()))
            .arg(format!("--port={port}"))
            .arg(format!("--bind-address={host}"))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", self.error_log().display()))
            .arg(format!("--log-bin={}", self.dir.join("binlog").display()))
            .arg("--binlog-format=ROW")
            .arg(format!("--server-id={}", 1 + port as u32))
            .arg("--innodb-buffer-pool-size=64M");
        let (proc, mut child) = process::spawn(cmd, &self.dir.join("mariadbd.out"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return Ok(proc);
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(StackError::Process(format!(
                    "mariadbd in {} exited ({st}) before it accepted connections:\n{}",
                    self.dir.display(),
                    process::tail(&self.error_log(), 15)
                )));
            }
            if Instant::now() > deadline {
                proc.stop(Duration::from_secs(5));
                return Err(StackError::Process(format!(
                    "mariadbd in {} did not accept connections within {} s:\n{}",
                    self.dir.display(),
                    START_TIMEOUT.as_secs(),
                    process::tail(&self.error_log(), 15)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs SQL as root through the socket (the `mariadb` client).
    pub fn sql(&self, sql: &str) -> Result<String> {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .map_err(|e| {
                StackError::Process(format!(
                    "cannot run the mariadb client ({e}): apt-get install mariadb-client"
                ))
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(StackError::Process(format!(
                "SQL on {} failed: {}",
                self.socket().display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// After a fresh install: no anonymous users (they shadow TCP logins).
    pub fn secure(&self) -> Result<()> {
        self.sql("DELETE FROM mysql.global_priv WHERE User=''; FLUSH PRIVILEGES;")
            .map(|_| ())
    }
}
