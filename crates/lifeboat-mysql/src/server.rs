//! Reaching a server: DSNs, connections, what the server is, and turning
//! driver errors into [`MysqlError`]s that say what to do.
//!
//! Each worker thread owns a small current-thread tokio runtime and its own
//! connection ([`Session`]); the vault's blocking API is called from the same
//! thread between queries, never from inside the runtime.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row};

use crate::error::{MysqlError, Result};

/// How long to wait for a TCP connection and the login.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a server is and who to log in as.
#[derive(Clone, PartialEq, Eq)]
pub struct Dsn {
    /// User name.
    pub user: String,
    /// Password (from the DSN or `LIFEBOAT_MYSQL_PASSWORD`).
    pub password: Option<String>,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Unix socket, used instead of TCP when given.
    pub socket: Option<String>,
}

impl std::fmt::Debug for Dsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Dsn {
    /// The DSN with the password left out: safe for messages and points.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mysql://{}@{}:{}", self.user, self.host, self.port)?;
        if let Some(s) = &self.socket {
            write!(f, "?socket={s}")?;
        }
        Ok(())
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Dsn {
    /// Parses `mysql://USER[:PASSWORD]@HOST[:PORT][/][?socket=/path]`; the
    /// password may instead come from `LIFEBOAT_MYSQL_PASSWORD`.
    pub fn parse(text: &str) -> Result<Dsn> {
        let redacted = redact(text);
        let bad = |reason: &str| MysqlError::BadDsn {
            dsn: redacted.clone(),
            reason: reason.to_string(),
        };
        let rest = text
            .strip_prefix("mysql://")
            .or_else(|| text.strip_prefix("mariadb://"))
            .ok_or_else(|| bad("it must start with mysql://"))?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (auth, hostport) = main
            .rsplit_once('@')
            .ok_or_else(|| bad("no user: write mysql://USER@HOST"))?;
        let hostport = hostport.trim_end_matches('/');
        if hostport.contains('/') {
            return Err(bad(
                "a database in the DSN is not used: choose databases with --databases",
            ));
        }
        let (user, password) = match auth.split_once(':') {
            Some((u, p)) => (
                u,
                Some(percent_decode(p).ok_or_else(|| bad("bad %-escape in the password"))?),
            ),
            None => (auth, None),
        };
        let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
        if user.is_empty() {
            return Err(bad("empty user"));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad(&format!("port {p:?} is not a number")))?,
            ),
            None => (hostport, 3306),
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let mut socket = None;
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("socket", v)) => socket = Some(v.to_string()),
                _ => {
                    let key = kv.split_once('=').map_or(kv, |(k, _)| k);
                    return Err(bad(&format!("unknown parameter {key:?} (known: socket)")));
                }
            }
        }
        let password = password.or_else(|| std::env::var("LIFEBOAT_MYSQL_PASSWORD").ok());
        Ok(Dsn {
            user,
            password,
            host: host.to_string(),
            port,
            socket,
        })
    }

    /// The default resource name of this server: `mysql:HOST:PORT`.
    pub fn resource(&self) -> String {
        format!("mysql:{}:{}", self.host, self.port)
    }

    /// The account as SQL, for GRANT hints: `'user'@'%'`.
    pub fn account(&self) -> String {
        format!("'{}'@'%'", self.user.replace('\'', "''"))
    }

    fn opts(&self) -> Opts {
        let b = OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(self.password.clone())
            .prefer_socket(self.socket.is_some())
            .socket(self.socket.clone())
            .stmt_cache_size(0)
            .max_allowed_packet(Some(1 << 30));
        b.into()
    }
}

/// The DSN text with any password replaced by `***`.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = ["mysql://", "mariadb://"]
        .iter()
        .find_map(|s| text.strip_prefix(s).map(|r| (*s, r)))
    else {
        return text.to_string();
    };
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let main = match main.rsplit_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((u, _)) => format!("{u}:***@{host}"),
            None => main.to_string(),
        },
        None => main.to_string(),
    };
    // Only a socket's value is said: any other parameter may be a secret.
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| match kv.split_once('=') {
                Some(("socket", _)) | None => kv.to_string(),
                Some((k, _)) => format!("{k}=***"),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}{main}?{q}"),
        None => format!("{scheme}{main}"),
    }
}

/// Which kind of server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// MariaDB.
    Mariadb,
    /// Oracle MySQL (or Percona).
    Mysql,
}

/// What a server is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServerInfo {
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// `@@version`.
    pub version: String,
    /// `@@server_id`.
    pub server_id: u64,
    /// Whether the binary log is on.
    pub log_bin: bool,
    /// `@@binlog_format`.
    pub binlog_format: String,
}

/// A connection with its own runtime, used from one thread.
pub struct Session {
    rt: tokio::runtime::Runtime,
    conn: Option<Conn>,
    /// The server, for messages.
    pub server: String,
    account: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({})", self.server)
    }
}

/// Turns a driver error into a protector error.
pub fn sql_error(server: &str, account: &str, what: &str, e: mysql_async::Error) -> MysqlError {
    match &e {
        mysql_async::Error::Server(se) => match se.code {
            1045 => MysqlError::Auth {
                server: server.to_string(),
                reason: se.message.clone(),
            },
            1227 | 1044 | 1142 | 1143 | 1370 => {
                let grant = needed_grant(&se.message, what);
                MysqlError::Privilege {
                    server: server.to_string(),
                    what: what.to_string(),
                    grant,
                    user: account.to_string(),
                    detail: se.message.clone(),
                }
            }
            _ => MysqlError::Sql {
                server: server.to_string(),
                what: what.to_string(),
                reason: format!("{} (error {})", se.message, se.code),
                lost: false,
            },
        },
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => MysqlError::Sql {
            server: server.to_string(),
            what: what.to_string(),
            reason: format!("{e} (the connection was lost: is the server still running?)"),
            lost: true,
        },
        _ => MysqlError::Sql {
            server: server.to_string(),
            what: what.to_string(),
            reason: e.to_string(),
            lost: false,
        },
    }
}

/// The grant a "denied" message asks for, in GRANT syntax.
fn needed_grant(message: &str, what: &str) -> String {
    // "Access denied; you need (at least one of) the RELOAD privilege(s) for this operation"
    if let Some(i) = message.find("the ")
        && let Some(j) = message[i..].find(" privilege")
    {
        let p = &message[i + 4..i + j];
        if !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_uppercase() || c == ' ' || c == ',')
        {
            return p.to_string();
        }
    }
    if what.contains("binlog") {
        "REPLICATION SLAVE, BINLOG MONITOR".into()
    } else {
        "SELECT, SHOW VIEW, TRIGGER, EVENT, RELOAD".into()
    }
}

impl Session {
    /// Connects (with a timeout) and sets the session up for dumping and
    /// loading: UTC, no conversion of results, binary-safe.
    pub fn connect(dsn: &Dsn) -> Result<Session> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| MysqlError::io("start runtime", "", e))?;
        let server = dsn.to_string();
        let opts = dsn.opts();
        let conn = rt.block_on(async {
            match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
                Ok(r) => r.map_err(|e| match e {
                    mysql_async::Error::Server(ref se) if se.code == 1045 => MysqlError::Auth {
                        server: server.clone(),
                        reason: se.message.clone(),
                    },
                    other => MysqlError::Connect {
                        server: server.clone(),
                        reason: format!(
                            "{other} (is the server running and reachable at that address?)"
                        ),
                    },
                }),
                Err(_) => Err(MysqlError::Connect {
                    server: server.clone(),
                    reason: format!(
                        "no answer within {}s (check host, port and firewall)",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                }),
            }
        })?;
        let mut s = Session {
            rt,
            conn: Some(conn),
            server,
            account: dsn.account(),
        };
        s.exec(
            "set up the session",
            "SET SESSION time_zone = '+00:00', character_set_client = binary, \
             character_set_connection = binary, character_set_results = NULL, \
             sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', \
             net_read_timeout = 3600, net_write_timeout = 3600, wait_timeout = 86400",
        )?;
        Ok(s)
    }

    /// The account, quoted for SQL (for GRANT hints).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Runs statements, discarding results.
    pub fn exec(&mut self, what: &str, sql: &str) -> Result<()> {
        let Session { rt, conn, .. } = self;
        let c = conn.as_mut().expect("connection present");
        rt.block_on(c.query_drop(sql))
            .map_err(|e| sql_error(&self.server, &self.account, what, e))
    }

    /// Runs a query, returning all rows as raw values (`None` = NULL).
    pub fn rows(&mut self, what: &str, sql: &str) -> Result<Vec<Vec<Option<Vec<u8>>>>> {
        let Session { rt, conn, .. } = self;
        let c = conn.as_mut().expect("connection present");
        let rows: Vec<Row> = rt
            .block_on(c.query(sql))
            .map_err(|e| sql_error(&self.server, &self.account, what, e))?;
        Ok(rows.into_iter().map(raw_row).collect())
    }

    /// Runs a query and returns the first column of each row as text.
    pub fn column(&mut self, what: &str, sql: &str) -> Result<Vec<String>> {
        Ok(self
            .rows(what, sql)?
            .into_iter()
            .map(|r| text(r.into_iter().next().flatten()))
            .collect())
    }

    /// Runs a query returning one value (`None` when NULL or no row).
    pub fn value(&mut self, what: &str, sql: &str) -> Result<Option<String>> {
        Ok(self
            .rows(what, sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The connection, for async work run with [`Session::block_on`].
    pub fn raw(&mut self) -> (&tokio::runtime::Runtime, &mut Conn) {
        let Session { rt, conn, .. } = self;
        (rt, conn.as_mut().expect("connection present"))
    }

    /// What the server is.
    pub fn info(&mut self) -> Result<ServerInfo> {
        let r = self.rows(
            "read server variables",
            "SELECT @@version, @@server_id, @@log_bin, @@binlog_format",
        )?;
        let row = r.into_iter().next().unwrap_or_default();
        let get = |i: usize| text(row.get(i).cloned().flatten());
        let version = get(0);
        Ok(ServerInfo {
            flavor: if version.to_ascii_lowercase().contains("mariadb") {
                Flavor::Mariadb
            } else {
                Flavor::Mysql
            },
            server_id: get(1).parse().unwrap_or(0),
            log_bin: get(2) == "1",
            binlog_format: get(3),
            version,
        })
    }

    /// Closes the connection politely.
    pub fn close(mut self) {
        if let Some(c) = self.conn.take() {
            let _ = self.rt.block_on(c.disconnect());
        }
    }
}

/// A text-protocol value as bytes (`None` = NULL). The text protocol only
/// ever yields bytes or NULL (typed values come from the binary protocol,
/// which dumps do not use).
pub(crate) fn field(v: &Option<mysql_async::Value>) -> Option<&[u8]> {
    match v {
        None | Some(mysql_async::Value::NULL) => None,
        Some(mysql_async::Value::Bytes(b)) => Some(b),
        Some(other) => unreachable!("a text-protocol result holds {other:?}"),
    }
}

pub(crate) fn raw_row(row: Row) -> Vec<Option<Vec<u8>>> {
    row.unwrap_raw()
        .into_iter()
        .map(|v| match v {
            None | Some(mysql_async::Value::NULL) => None,
            Some(mysql_async::Value::Bytes(b)) => Some(b),
            Some(other) => Some(other.as_sql(true).into_bytes()),
        })
        .collect()
}

/// Bytes as text (lossy), NULL as empty.
pub fn text(v: Option<Vec<u8>>) -> String {
    v.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Quotes an identifier: `name` → `` `name` ``.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts_dsns() {
        let d = Dsn::parse("mysql://app:s%40cret@db.example:3307").unwrap();
        assert_eq!(
            (
                d.user.as_str(),
                d.password.as_deref(),
                d.host.as_str(),
                d.port
            ),
            ("app", Some("s@cret"), "db.example", 3307)
        );
        assert_eq!(d.to_string(), "mysql://app@db.example:3307");
        assert_eq!(d.resource(), "mysql:db.example:3307");
        assert_eq!(Dsn::parse("mysql://root@h").unwrap().port, 3306);
        let s = Dsn::parse("mysql://root@localhost?socket=/run/m.sock").unwrap();
        assert_eq!(s.socket.as_deref(), Some("/run/m.sock"));
        for bad in [
            "postgres://a@b",
            "mysql://host:1",
            "mysql://a@h:x",
            "mysql://a@h/db",
            "mysql://a@h?ssl=1",
        ] {
            assert!(Dsn::parse(bad).is_err(), "{bad} must be refused");
        }
        let e = Dsn::parse("mysql://u:topsecret@h:x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("topsecret"), "{e}");
        assert_eq!(redact("mysql://u:pw@h:1"), "mysql://u:***@h:1");
        assert_eq!(redact("mysql://u:p/w@x@h:1"), "mysql://u:***@h:1");
        assert_eq!(
            redact("mariadb://u@h:1?socket=/s&password=x"),
            "mariadb://u@h:1?socket=/s&password=***"
        );
        let e = Dsn::parse("mysql://u@h:1?password=hunter2")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn names_the_missing_grant() {
        assert_eq!(
            needed_grant(
                "Access denied; you need (at least one of) the RELOAD privilege(s) for this operation",
                "snapshot"
            ),
            "RELOAD"
        );
        assert_eq!(
            needed_grant("denied", "read the binlog"),
            "REPLICATION SLAVE, BINLOG MONITOR"
        );
    }
}
