//! The embedded default's database server: a `mariadbd` with its own data
//! directory, socket, port, binlog and error log under one directory, run as
//! the invoking user (`--user`, which mariadbd needs when that is root).
//! Binlog is on from the start, so that the recovered site can be archived
//! at once.
//!
//! No passwordless root: the data directory is made with root reachable only
//! through the unix socket by the OS user that runs it (`unix_socket`), and
//! once the server runs, root gets a password (a generated secret, or the
//! one the file declares for the resource) — kept in the stack's state
//! (`ROOT/stacks/STACK/secrets/`, 0600), handed to the client in its
//! environment (`MYSQL_PWD`), never on a command line. SQL goes to the client
//! on its standard input, so a password in it is never an argument either.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_config::{Config, ResourceKind};

use crate::process::{self, Proc};
use crate::state::RootPassword;
use crate::{Result, StackError};

/// How long a server may take to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A server's directory and what is in it.
#[derive(Clone)]
pub struct Server {
    /// `ROOT/mysql/NAME`.
    pub dir: PathBuf,
    /// Root's password, once it has one (`None`: a server made before
    /// passwords, or not yet secured: root through the socket as the OS user).
    pub password: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Server({})", self.dir.display())
    }
}

/// A new secret for root: 32 hex digits from the OS's random source
/// (URL-safe: it goes into the DSN an application is given).
pub fn generate_password() -> String {
    let mut b = [0u8; 16];
    lifeboat_vault::crypto::fill_random(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `'text'` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
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

impl Server {
    /// The server under `dir`.
    pub fn new(dir: PathBuf) -> Server {
        Server {
            dir,
            password: None,
        }
    }

    /// The same server, with root's password.
    pub fn with_password(mut self, password: Option<String>) -> Server {
        self.password = password;
        self
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

    /// A DSN for root over TCP on `port`, without the password (what is
    /// shown and recorded).
    pub fn dsn(port: u16) -> String {
        format!("mysql://root@127.0.0.1:{port}")
    }

    /// Creates the data directory with `mariadb-install-db` unless it holds
    /// one already; true when it was created.
    pub fn provision(&self) -> Result<bool> {
        self.forget_interrupted_restore()?;
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
                // root through the socket as the OS user only, until `secure`
                // gives it a password: never a passwordless root over TCP.
                "--auth-root-authentication-method=socket",
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

    /// Removes a data directory that a killed physical restore left (its
    /// mark is in it): neither the point nor the moment asked for, it is
    /// never started on.
    pub fn forget_interrupted_restore(&self) -> Result<()> {
        let data = self.data();
        if !data.join(lifeboat_mysql::physical::INCOMPLETE).exists() {
            return Ok(());
        }
        tracing::warn!(
            "{}: a physical restore of it was interrupted; removed, it is restored again",
            data.display()
        );
        std::fs::remove_dir_all(&data).map_err(|e| StackError::io("remove", &data, e))
    }

    /// Starts `mariadbd` on 127.0.0.1:`port` and waits until it accepts connections.
    pub fn start(&self, port: u16) -> Result<Proc> {
        self.start_on("127.0.0.1", port)
    }

    /// Starts `mariadbd` on `host`:`port` and waits until it accepts connections.
    pub fn start_on(&self, host: &str, port: u16) -> Result<Proc> {
        self.start_with(host, port, None)
    }

    /// Starts `mariadbd` on `host`:`port`, first running `init` (SQL, one
    /// statement a line) before it takes any connection, and waits until
    /// it accepts connections. The SQL is in a file only we can read for as
    /// long as the start takes.
    pub fn start_with(&self, host: &str, port: u16, init: Option<&str>) -> Result<Proc> {
        let init_file = self.dir.join("init.sql");
        let _ = std::fs::remove_file(&init_file);
        if let Some(sql) = init {
            let tmp = self.dir.join(".init.sql.tmp");
            lifeboat_instance::launch::write_private(&init_file, &tmp, sql.as_bytes())
                .map_err(|(op, at, e)| StackError::io(op, &at, e))?;
        }
        struct Remove<'p>(&'p Path);
        impl Drop for Remove<'_> {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(self.0);
            }
        }
        let _removed = Remove(&init_file);
        let mut cmd = Command::new(lifeboat_mysql::rollforward::server_binary());
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
        if init.is_some() {
            cmd.arg(format!("--init-file={}", init_file.display()));
        }
        let (proc, mut child) = process::spawn(cmd, &self.dir.join("mariadbd.out"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if greets(&self.socket()) {
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

    /// Runs SQL through the socket (the `mariadb` client, the SQL on its
    /// standard input): as root with its password when it has one (in the
    /// client's environment), else as the OS user (`unix_socket`).
    pub fn sql(&self, sql: &str) -> Result<String> {
        let mut cmd = Command::new("mariadb");
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-N", "-B"])
            .env_remove("MYSQL_PWD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &self.password {
            Some(pw) => cmd.arg("-uroot").env("MYSQL_PWD", pw),
            None => cmd.arg(format!("-u{}", user())),
        };
        let cannot = |e: std::io::Error| {
            StackError::Process(format!(
                "cannot run the mariadb client ({e}): apt-get install mariadb-client"
            ))
        };
        let mut child = cmd.spawn().map_err(cannot)?;
        let fed = child.stdin.take().expect("piped").write_all(sql.as_bytes());
        let out = child.wait_with_output().map_err(cannot)?;
        fed.map_err(cannot)?;
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

    /// After a fresh install: root gets `password` (over TCP it is the only
    /// way in; through the socket the OS user still may), `login` (a user
    /// other than root the file declares for the resource, with its
    /// password) is made with every privilege, and no anonymous users are
    /// left (they shadow TCP logins). Returns the server as root now logs in.
    pub fn secure(self, password: &str, login: Option<(&str, &str)>) -> Result<Server> {
        self.sql(&secure_sql(password, login))?;
        Ok(self.with_password(Some(password.to_string())))
    }
}

/// Whether the server on `socket` greets a client: it has created its
/// socket *and* serves connections. A server creates the socket before it
/// runs its `--init-file`, and serves only after: a bare connect would say
/// ready while the init file is still to be read.
fn greets(socket: &Path) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(1))
}

/// The SQL that secures a server (one statement a line, as an init file
/// wants them): root gets `password` (through the socket the OS user still
/// may log in), `login` (a user other than root the file declares, with its
/// password) every privilege, and no anonymous user is left. Root is made
/// when the server has none (a restored directory may not).
pub fn secure_sql(password: &str, login: Option<(&str, &str)>) -> String {
    // Passwords never reach the binlog (and so never the archive):
    // a recovered server gets them again from the stack.
    let pw = literal(password);
    let mut sql = format!(
        "SET SESSION sql_log_bin = 0;\nCREATE USER IF NOT EXISTS root@localhost;\nALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD({pw}) OR unix_socket ACCOUNT UNLOCK;\nGRANT ALL PRIVILEGES ON *.* TO root@localhost WITH GRANT OPTION;\n"
    );
    // A restored data directory may hold root under other hosts (an
    // install's root@127.0.0.1 and root@::1 without a password, a root@%
    // with the old site's): the same password for each that is there.
    for host in ["127.0.0.1", "::1", "%"] {
        sql.push_str(&format!(
            "ALTER USER IF EXISTS root@{} IDENTIFIED BY {pw};\n",
            literal(host)
        ));
    }
    if let Some((u, upw)) = login.filter(|(u, _)| *u != "root") {
        let (u, upw) = (literal(u), literal(upw));
        sql.push_str(&format!(
            "CREATE USER IF NOT EXISTS {u}@localhost IDENTIFIED BY {upw};\nALTER USER {u}@localhost IDENTIFIED BY {upw};\nGRANT ALL PRIVILEGES ON *.* TO {u}@localhost WITH GRANT OPTION;\n"
        ));
    }
    sql.push_str("DELETE FROM mysql.global_priv WHERE User='';\nFLUSH PRIVILEGES;\n");
    sql
}

/// The application's own account the file declares for database `name`
/// (`app = { user, database, password_file }`), with its password read.
pub(crate) fn app_account(
    cfg: &Config,
    name: &str,
) -> Result<Option<(lifeboat_config::model::AppAccount, String)>> {
    let Some(ResourceKind::Mysql { app: Some(app), .. }) = cfg.resources.get(name).map(|r| &r.kind)
    else {
        return Ok(None);
    };
    let pw = lifeboat_control::secret::read(
        &app.password,
        &format!("the application account of `{name}`"),
    )
    .map_err(|e| StackError::Refused(e.to_string()))?;
    let pw = String::from_utf8(pw).map_err(|_| {
        StackError::Refused(format!(
            "the application account of `{name}`: its password is not UTF-8 text"
        ))
    })?;
    Ok(Some((app.clone(), pw)))
}

impl Server {
    /// Makes the application's own account (or brings it to what the file
    /// declares), and its database when there is none: its password, and
    /// every privilege on its database and none beyond — it cannot touch `mysql.*`, and `read_only` binds it.
    /// A restored snapshot's account of that name keeps its other hosts.
    /// Not written to the binlog: the password never reaches the archive
    /// (every recovery makes the account again).
    pub fn ensure_app_account(
        &self,
        app: &lifeboat_config::model::AppAccount,
        password: &str,
    ) -> Result<()> {
        let (u, pw) = (literal(&app.user), literal(password));
        // `_` (and `%`) are wildcards in a GRANT's database name: escaped,
        // the grant covers this database only (`wiki_db`, not `wikiXdb`).
        let db = format!(
            "`{}`",
            app.database
                .replace('`', "``")
                .replace('_', "\\_")
                .replace('%', "\\%")
        );
        // Its database too, when the server has none of that name yet (an
        // application that connects to it would fail its health check):
        // in the binlog, as any schema change, so a replay makes it.
        let name = format!("`{}`", app.database.replace('`', "``"));
        self.sql(&format!(
            "CREATE DATABASE IF NOT EXISTS {name};\n\
             SET SESSION sql_log_bin = 0;\n\
             CREATE USER IF NOT EXISTS {u}@'%' IDENTIFIED BY {pw};\n\
             ALTER USER {u}@'%' IDENTIFIED BY {pw};\n\
             GRANT ALL PRIVILEGES ON {db}.* TO {u}@'%';\n"
        ))
        .map(|_| ())
        .map_err(|e| StackError::Process(format!("the application account {}@'%': {e}", app.user)))
    }
}

/// Reads every secret database member `name` will need in `site` (its
/// application account's password; in its own site, its declared root
/// password), so that a missing file or one every local user can read
/// stops a stack before anything of it starts, not half-way.
pub(crate) fn secrets_readable(cfg: &Config, name: &str, site: &str) -> Result<()> {
    if let Some(r) = cfg.resources.get(name)
        && let ResourceKind::Mysql {
            dsn,
            password: Some(source),
            ..
        } = &r.kind
        && r.site.as_deref() == Some(site)
    {
        lifeboat_control::secret::mysql_dsn(name, dsn, &Some(source.clone()))
            .map_err(StackError::Refused)?;
    }
    app_account(cfg, name).map(|_| ())
}

/// Gives a new server's root its password: in the resource's own site, the
/// one the file declares for it (`password_env`/`password_file`) when its
/// DSN logs in as root (another user the DSN names is made with it, every
/// privilege); else a generated secret. Kept in the stack's state.
pub(crate) fn secure_new(
    cfg: &Config,
    name: &str,
    own_site: bool,
    server: Server,
) -> Result<RootPassword> {
    let (root, login) = root_for(cfg, name, own_site)?;
    let login = login.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    server.secure(&root, login)?;
    Ok(RootPassword(root))
}

/// The root password a new server of member `name` gets (see
/// [`secure_new`]), and the declared login to make beside it.
pub(crate) fn root_for(
    cfg: &Config,
    name: &str,
    own_site: bool,
) -> Result<(String, Option<(String, String)>)> {
    let declared = match cfg.resources.get(name).map(|r| &r.kind) {
        Some(ResourceKind::Mysql {
            dsn,
            password: Some(source),
            ..
        }) if own_site => {
            let d = lifeboat_control::secret::mysql_dsn(name, dsn, &Some(source.clone()))
                .map_err(StackError::Refused)?;
            d.password.map(|p| (d.user, p))
        }
        _ => None,
    };
    let root = match &declared {
        Some((user, pw)) if user == "root" => pw.clone(),
        _ => generate_password(),
    };
    if own_site && declared.is_none() {
        tracing::warn!(
            "resource `{name}` declares no password: its new server's root got a generated one, kept in the stack's state (ROOT/stacks/STACK/secrets/{name}.password); name that file in the resource's `password_file` so that its plans and binlog archive can log in"
        );
    }
    Ok((root, declared))
}
