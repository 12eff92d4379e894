//! Throw-away MariaDB servers for tests: each has its own data directory,
//! socket and free TCP port on 127.0.0.1, binlog on (row format) unless asked
//! otherwise, and is stopped when dropped. Needs Debian's `mariadb-server`
//! and `mariadb-client` (installed by `scripts/test`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start a server.
#[derive(Debug, Clone)]
pub struct MariaDbOptions {
    /// Write a binary log (row format).
    pub binlog: bool,
    /// `server_id` of the server.
    pub server_id: u32,
    /// More options for `mariadbd` (`--skip-name-resolve`).
    pub args: Vec<String>,
    /// A data directory there already (a restored one) to start on
    /// instead of a new one; it is not removed when the server drops.
    pub datadir: Option<PathBuf>,
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        MariaDbOptions {
            binlog: true,
            server_id: 1,
            args: Vec::new(),
            datadir: None,
        }
    }
}

/// A running throw-away server.
#[derive(Debug)]
pub struct MariaDb {
    dir: tempfile::TempDir,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
    opts: MariaDbOptions,
}

/// `mariadbd` from PATH, or Debian's /usr/sbin/mariadbd when sbin is not on PATH.
fn server_binary() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("mariadbd"))
                .find(|f| f.exists())
        })
        .unwrap_or_default();
    in_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/mariadbd"))
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl MariaDb {
    /// Starts a server with binlog on.
    pub fn start() -> MariaDb {
        MariaDb::start_with(&MariaDbOptions::default())
    }

    /// Starts a server; panics with the server's error log if it does not come up.
    pub fn start_with(opts: &MariaDbOptions) -> MariaDb {
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-mariadb-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        // Its own temporary directory: servers bootstrapping side by side in
        // the shared /tmp have been seen to trip over each other's temp tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let fresh = opts.datadir.is_none();
        if fresh {
            let out = Command::new("mariadb-install-db")
                .args([
                    "--no-defaults",
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ])
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--tmpdir={}", tmp.display()))
                .output()
                .expect("mariadb-install-db (apt-get install mariadb-server)");
            assert!(
                out.status.success(),
                "mariadb-install-db: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut db = MariaDb {
            dir,
            port: free_port(),
            child: None,
            opts: opts.clone(),
        };
        db.spawn();
        // install-db creates anonymous users that shadow TCP logins of others.
        if fresh {
            db.sql("DELETE FROM mysql.global_priv WHERE User=''; FLUSH PRIVILEGES;");
        }
        db
    }

    /// Starts `mariadbd` on this server's data directory and port; waits until it answers.
    fn spawn(&mut self) {
        let data = (self.opts.datadir.clone()).unwrap_or_else(|| self.dir.path().join("data"));
        let mut cmd = Command::new(server_binary());
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!(
                "--tmpdir={}",
                self.dir.path().join("tmp").display()
            ))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mysqld.pid").display()
            ))
            .arg(format!(
                "--log-error={}",
                self.dir.path().join("err.log").display()
            ))
            .arg(format!("--server-id={}", self.opts.server_id))
            .arg("--user=root")
            .arg("--innodb-buffer-pool-size=64M")
            .arg("--innodb-log-file-size=48M");
        cmd.args(&self.opts.args);
        if self.opts.binlog {
            cmd.arg(format!(
                "--log-bin={}",
                self.dir.path().join("binlog").display()
            ))
            .arg("--binlog-format=ROW");
        }
        self.child = Some(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mariadbd"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.try_sql("SELECT 1").is_ok() {
                break;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mariadbd exited ({st}):\n{}", self.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not come up:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a stopped (or killed) server again on the same data directory and
    /// port, as an operator would after an outage; stops it first if running.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// The directory holding data, socket, logs and binlogs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A DSN for root over TCP.
    pub fn root_dsn(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// `CHECKSUM TABLE table`'s checksum (empty when the table is missing).
    pub fn checksum(&self, table: &str) -> String {
        self.sql(&format!("CHECKSUM TABLE {table}"))
            .split('\t')
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// The server's error log.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("err.log")).unwrap_or_default()
    }

    /// Runs SQL as root through the `mariadb` client; tab-separated rows, no header.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .map_err(|e| format!("mariadb client: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs SQL as root; panics on failure.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {sql}\n{e}"))
    }

    /// Stops the server (SIGTERM, then SIGKILL after 20 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.wait();
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}
