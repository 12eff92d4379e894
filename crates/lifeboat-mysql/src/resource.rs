//! A mysql resource as `lifeboat.toml` declares it: its keys and their
//! checks (the protector's `ResourceSettings`), the settings its backups
//! read, and the continuous jobs they declare (the binlog archive).

use serde::de::IgnoredAny;

use lifeboat_protector::{
    BackupError, Follow, FollowJob, Key, Problem, ResourceSettings, Schema, Shape, Table,
    read_settings,
};

use crate::protector::MysqlProtector;

/// What a database's `archive` declares: its vault and its copies
/// (`archive = true`: neither).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ArchiveSettings {
    #[serde(default)]
    vault: Option<String>,
    #[serde(default)]
    copy_to: Vec<String>,
}

/// The keys of a database's settings its continuous jobs read.
#[derive(serde::Deserialize)]
struct FollowSettings {
    dsn: String,
    /// `true`, `false`, a table, or none.
    #[serde(default)]
    archive: serde_json::Value,
}

/// The binlog archive of `job`'s database (`lifeboat archive mysql`), its
/// password given in `LIFEBOAT_MYSQL_PASSWORD`, its spool the job's.
pub(crate) fn archive_follows(job: &FollowJob) -> Result<Vec<Follow>, BackupError> {
    let s: FollowSettings =
        serde_json::from_value(job.settings.clone()).map_err(|e| BackupError::Settings {
            resource: job.resource.to_string(),
            why: e.to_string(),
        })?;
    let archive = match s.archive {
        serde_json::Value::Null | serde_json::Value::Bool(false) => return Ok(Vec::new()),
        serde_json::Value::Bool(true) => ArchiveSettings::default(),
        table => serde_json::from_value(table).map_err(|e| BackupError::Settings {
            resource: job.resource.to_string(),
            why: format!("archive: {e}"),
        })?,
    };
    let args = [
        "archive",
        "mysql",
        "--dsn",
        &s.dsn,
        "--resource",
        job.resource,
        "--spool",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(job.spool.display().to_string());
    Ok(vec![Follow {
        job: lifeboat_protector::ARCHIVE,
        point_kind: crate::KIND_BINLOG,
        args,
        secret_env: Some("LIFEBOAT_MYSQL_PASSWORD"),
        vault: archive.vault,
        copy_to: archive.copy_to,
    }])
}

// --- `[resource.NAME]` of kind `mysql`: its keys and their checks ---

/// A database resource's settings (`[resource.NAME]` of kind `mysql`; its
/// password comes as the job's secret; its archive is the daemon's to run).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    pub(crate) dsn: String,
    #[serde(default, rename = "password")]
    _password: Option<IgnoredAny>,
    #[serde(default, rename = "archive")]
    _archive: Option<ArchiveSettings>,
    #[serde(default)]
    recover_listen: Option<String>,
    #[serde(default)]
    recover_socket: Option<String>,
    #[serde(default)]
    app: Option<AppSettings>,
    /// `logical` (the default) or `physical`.
    #[serde(default)]
    pub(crate) mode: Option<String>,
    /// Physical: how old the chain's full point may grow before the next
    /// point is a full one again (a duration as the file writes it).
    #[serde(default)]
    pub(crate) full_every: Option<String>,
}

/// How a database resource's points are taken (`mode` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// SQL rows read through a session (`mysql` points): any server, any host.
    Logical,
    /// The server's files by `mariadb-backup` (`mysql-physical` points), on
    /// the database host; `Some`: incremental points on the newest until
    /// the chain's full point is this old.
    Physical(Option<std::time::Duration>),
}

impl Settings {
    /// The mode the file declares: `Err` with the problem when it is none
    /// of the two, or when `full_every` is no duration or needs `physical`.
    pub(crate) fn mode(&self) -> Result<Mode, Problem> {
        let full_every = match self.full_every.as_deref() {
            None => None,
            Some(v) => Some(lifeboat_vault::duration::parse(v).map_err(|e| {
                Problem::at(
                    "full_every",
                    e,
                    "write a duration such as `full_every = \"24h\"` or `\"7d\"`",
                )
            })?),
        };
        match self.mode.as_deref() {
            None | Some("logical") if full_every.is_some() => Err(Problem::at(
                "full_every",
                "`full_every` is for physical points only (incremental ones chained to a full point); this resource's mode is logical",
                "add `mode = \"physical\"`, or remove `full_every`",
            )),
            None | Some("logical") => Ok(Mode::Logical),
            Some("physical") => Ok(Mode::Physical(full_every)),
            Some(m) => Err(Problem::at(
                "mode",
                format!("`{m}` is not a mode: `logical` or `physical`"),
                "write `mode = \"logical\"` (SQL rows, the default) or `mode = \"physical\"` (the server's files by mariadb-backup, on the database host)",
            )),
        }
    }
}

/// `app = { user, database, password_env | password_file }`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AppSettings {
    #[serde(default)]
    user: String,
    #[serde(default)]
    database: String,
    #[serde(default, rename = "password")]
    _password: Option<IgnoredAny>,
}

/// `archive = true` or `archive = { vault, copy_to }`.
const ARCHIVE: Table = Table {
    what: "an archive",
    the: "the archive",
    keys: &[
        Key::new(
            "vault",
            Shape::String,
            "the vault it seals into (default: the plan's)",
        ),
        Key::new("copy_to", Shape::Strings, "vaults it is copied into"),
    ],
};

/// `app = { user, database, password_env | password_file }`.
const APP: Table = Table {
    what: "an application account",
    the: "the application account",
    keys: &[
        Key::new("user", Shape::String, "the account's user name").required("add `user = \"…\"`"),
        Key::new("database", Shape::String, "the database it owns")
            .required("add `database = \"…\"`"),
        Key::new("password_env", Shape::Secret, "its password's variable"),
        Key::new("password_file", Shape::Secret, "its password's file").required(
            "add `password_file = \"/PATH\"` (its first line) or `password_env = \"VAR\"`: the application's configuration holds the same password",
        ),
    ],
};

/// The keys of a database resource.
const KEYS: &[Key] = &[
    Key::new(
        "dsn",
        Shape::String,
        "mysql://user@host:port, no password in it",
    )
    .required("add `dsn = \"mysql://user@host:3306\"`"),
    Key::new(
        "password_env",
        Shape::Secret,
        "the database password's variable",
    ),
    Key::new(
        "password_file",
        Shape::Secret,
        "the database password's file",
    ),
    Key::new(
        "archive",
        Shape::Switch(&ARCHIVE),
        "the continuous binlog archive",
    )
    .want("true, false or `{ vault = \"NAME\" }`"),
    Key::new(
        "recover_listen",
        Shape::String,
        "host:port its server listens on when provisioned elsewhere",
    ),
    Key::new(
        "recover_socket",
        Shape::String,
        "a unix socket the recovered server also answers on",
    ),
    Key::new(
        "app",
        Shape::Table(&APP),
        "the application's own account on a stack's server",
    )
    .want("`{ user = \"NAME\", database = \"DB\", password_file = \"/PATH\" }`"),
    Key::new(
        "mode",
        Shape::String,
        "`logical` (SQL rows, the default) or `physical` (the server's files, on its host)",
    ),
    Key::new(
        "full_every",
        Shape::String,
        "physical: incremental points until the chain's full point is this old (absent: all full)",
    ),
];

/// `host:port` of a `recover_listen` value: an IP address or `localhost`
/// (served on 127.0.0.1), and a port from 1 to 65535.
pub fn listen_addr(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not `host:port`"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{port}` is not a port (1 to 65535)"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host {
        "localhost" => Ok(("127.0.0.1".into(), port)),
        h if h.parse::<std::net::IpAddr>().is_ok() => Ok((h.to_string(), port)),
        h => Err(format!(
            "`{h}` is not an IP address: the recovered server binds an address of this host"
        )),
    }
}

/// A DSN's problems: not `mysql://`, or a password in it.
fn dsn_problems(dsn: &str) -> Vec<Problem> {
    let Some(rest) = dsn
        .strip_prefix("mysql://")
        .or_else(|| dsn.strip_prefix("mariadb://"))
    else {
        let why = format!("`{dsn}` is not a mysql:// DSN");
        return vec![Problem::at("dsn", why, "write `mysql://user@host:3306`")];
    };
    // Split as `Dsn::parse` splits it: the query first, then the last `@`
    // (a password may hold `/` or `@`).
    let main = rest.split_once('?').map_or(rest, |(m, _)| m);
    if main
        .rsplit_once('@')
        .is_some_and(|(auth, _)| auth.contains(':'))
    {
        return vec![Problem::at(
            "dsn",
            "the DSN holds a password",
            "remove `:password` from the DSN and set `password_env` or `password_file`",
        )];
    }
    match crate::Dsn::parse(dsn) {
        Ok(_) => Vec::new(),
        Err(e) => vec![Problem::at(
            "dsn",
            e.to_string(),
            "write `mysql://user@host:3306` (a socket: `?socket=/path`)",
        )],
    }
}

/// Where a recovered server listens: an address of this host, a socket path.
fn pinned_problems(s: &Settings) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(Err(e)) = s.recover_listen.as_deref().map(listen_addr) {
        out.push(Problem::at("recover_listen", e, "write the address the application's configuration names, e.g. `recover_listen = \"127.0.0.1:3306\"`"));
    }
    let socket = s.recover_socket.as_deref().and_then(|v| {
        if !v.starts_with('/') {
            Some(format!("`{v}` is not an absolute path"))
        } else if v.len() > 100 {
            Some(format!(
                "`{v}` is too long for a unix socket (over 100 bytes)"
            ))
        } else {
            None
        }
    });
    if let Some(why) = socket {
        out.push(Problem::at("recover_socket", why, "write the socket path the application's configuration names, e.g. `recover_socket = \"/run/mysqld/mysqld.sock\"`"));
    }
    out
}

/// The application's user and database: plain names, not root's, not the
/// server's own schemas (all privileges there are root's).
fn app_problems(app: &AppSettings) -> Vec<Problem> {
    let mut out = Vec::new();
    for (k, what, n) in [
        ("user", "user", &app.user),
        ("database", "database", &app.database),
    ] {
        let plain = !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let system = k == "database"
            && ["mysql", "sys", "performance_schema", "information_schema"]
                .contains(&n.to_ascii_lowercase().as_str());
        if !plain || system || (k == "user" && n == "root") {
            let not = if k == "user" {
                ", not root"
            } else {
                ", not one of the server's own (mysql, sys, performance_schema, information_schema)"
            };
            out.push(Problem::at(
                &format!("app.{k}"),
                format!("`{n}` cannot be the application's {what}"),
                format!("write a {what} of letters, digits, `_` and `-`{not}"),
            ));
        }
    }
    out
}

/// The mode's problems: not one of the two, `full_every` without
/// `physical` or no duration, a physical resource whose DSN reaches another
/// host (asked only of a DSN without problems: `dsn_ok`).
fn mode_problems(s: &Settings, dsn_ok: bool) -> Vec<Problem> {
    match s.mode() {
        Err(p) => vec![p],
        Ok(Mode::Physical(_)) if dsn_ok => {
            let Ok(dsn) = crate::Dsn::parse(&s.dsn) else {
                return Vec::new();
            };
            if crate::physical::refuse_remote(&dsn).is_ok() {
                return Vec::new();
            }
            vec![Problem::at(
                "mode",
                format!(
                    "a physical backup runs on the database host (it copies the server's files), and the DSN reaches `{}`, another host",
                    dsn.host
                ),
                "run Lifeboat on the database host with a DSN of its socket (`mysql://user@localhost?socket=/run/mysqld/mysqld.sock`) or 127.0.0.1, or use `mode = \"logical\"`",
            )]
        }
        Ok(_) => Vec::new(),
    }
}

impl ResourceSettings for MysqlProtector {
    fn settings(&self) -> Schema {
        Schema {
            implied_by: &["dsn"],
            keys: KEYS,
        }
    }

    /// The DSN's shape, the pinned address and socket, the application
    /// account, the mode (and that a physical one reaches this host).
    fn check_settings(&self, settings: &serde_json::Value) -> Vec<Problem> {
        let s: Settings = match read_settings(settings) {
            Ok(s) => s,
            Err(p) => return vec![p],
        };
        let mut out = dsn_problems(&s.dsn);
        let dsn_ok = out.is_empty();
        out.extend(pinned_problems(&s));
        out.extend(s.app.iter().flat_map(app_problems));
        out.extend(mode_problems(&s, dsn_ok));
        out
    }
}
