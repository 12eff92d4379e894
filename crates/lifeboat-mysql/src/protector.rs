//! The database protector as the layers above it see it (`lifeboat-protector`).

use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use std::sync::atomic::Ordering::Relaxed;

use lifeboat_protector::{
    Backed, BackupError, BackupJob, Browse, BrowseError, Description, Entry, Key, Listing, Problem,
    Protector, Query, Reading, ResourceSettings, RestoreForm, Schema, Shape, Table, read_settings,
    time_of, watched,
};
use lifeboat_vault::tree::NodeKind;
use lifeboat_vault::{Id, RecoveryPoint, Vault};

/// MySQL/MariaDB servers: snapshots and their binlog archive.
pub struct MysqlProtector;

/// The database protector, for the registry.
pub static PROTECTOR: MysqlProtector = MysqlProtector;

/// The directories of a snapshot point's tree at `path` (its names).
fn dirs_at(vault: &Vault, point: &RecoveryPoint, path: &[&str]) -> Result<Vec<Entry>, BrowseError> {
    let vault_err = |e: lifeboat_vault::VaultError| BrowseError::Vault(e.to_string());
    let index = vault.load_index().map_err(vault_err)?;
    let mut tree = vault.read_tree(&index, &point.tree).map_err(vault_err)?;
    for name in path {
        // As a tree's listing says it: the whole path asked for.
        let sub = tree
            .find(name.as_bytes())
            .and_then(|n| n.subtree)
            .ok_or_else(|| BrowseError::NotInPoint(format!("/{}", path.join("/"))))?;
        tree = vault.read_tree(&index, &sub).map_err(vault_err)?;
    }
    Ok(tree
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Dir))
        .map(|n| Entry {
            name: String::from_utf8_lossy(&n.name_bytes()).into_owned(),
            kind: String::new(),
            size: n.size,
            mtime: time_of(n.mtime_ns),
        })
        .collect())
}

/// The databases a snapshot point holds.
pub fn databases(vault: &Vault, point: &RecoveryPoint) -> Result<Vec<String>, BrowseError> {
    Ok(dirs_at(vault, point, &["databases"])?
        .into_iter()
        .map(|e| e.name)
        .collect())
}

impl Protector for MysqlProtector {
    fn describe(&self) -> Description {
        Description {
            kind: "mysql",
            point_kinds: &[crate::KIND_SNAPSHOT, crate::KIND_BINLOG],
            title: "MySQL/MariaDB databases",
            browse: Some(Browse::Levels),
            levels: &["database", "table"],
            restore: RestoreForm::Database,
            command: "lifeboat restore mysql",
        }
    }

    /// A snapshot's databases, or one database's tables (`query.path`).
    /// A consistent snapshot; a stack's database with its users and
    /// grants, so that the application's own account exists after a recovery.
    fn back_up(&self, job: &BackupJob) -> Result<Backed, BackupError> {
        let s: Settings = BackupError::settings(job)?;
        let mut dsn = crate::Dsn::parse(&s.dsn).map_err(|e| BackupError::Failed(e.to_string()))?;
        // The file's secret, when it names one (a DSN's own password stays).
        if let Some(secret) = job.secret {
            dsn.password = Some(secret.to_string());
        }
        let opts = crate::SnapshotOptions {
            resource: Some(job.resource.to_string()),
            tags: job.tags.clone(),
            users: job.stack_member,
            ..Default::default()
        };
        let counters = crate::Counters::default();
        let read = || {
            let total = counters.chunks_total.load(Relaxed);
            Reading {
                unit: "chunks",
                items: counters.chunks_done.load(Relaxed),
                items_total: (total > 0).then_some(total),
                bytes: counters.bytes.load(Relaxed),
                bytes_total: None,
            }
        };
        let vault = job.vault;
        let res = watched(job.watch, &read, || {
            crate::snapshot(vault, &dsn, &opts, &counters)
        })
        .map_err(|e| BackupError::Failed(e.to_string()))?;
        Ok(Backed::with_warnings(res.id, res.point, res.warnings))
    }

    fn contents(
        &self,
        vault: &Vault,
        _id: &Id,
        point: &RecoveryPoint,
        query: &Query,
    ) -> Result<Listing, BrowseError> {
        if point.kind != crate::KIND_SNAPSHOT {
            return Err(BrowseError::BadQuery(format!(
                "a point of kind `{}` has no contents to list (files, instance, mysql and bucket points do)",
                point.kind
            )));
        }
        let (listing, path, kind) = match query.path.as_deref().filter(|p| !p.is_empty()) {
            None => ("databases".to_string(), vec!["databases"], "database"),
            Some(db) if db.contains(['/', '\0']) => {
                return Err(BrowseError::BadQuery(format!(
                    "`{db}` is not a database name"
                )));
            }
            Some(db) => (db.to_string(), vec!["databases", db, "tables"], "table"),
        };
        let mut entries = dirs_at(vault, point, &path)?;
        for e in &mut entries {
            e.kind = kind.into();
        }
        Ok(Listing::cut(listing, entries, query.limit))
    }

    /// A snapshot's data is from its consistent moment (a binlog
    /// segment's: when it was sealed).
    fn data_time(&self, _vault: &Vault, point: &RecoveryPoint) -> Option<DateTime<Utc>> {
        match point.kind.as_str() {
            crate::KIND_SNAPSHOT => {
                serde_json::from_value::<crate::snapshot::SnapshotMeta>(point.meta.clone())
                    .ok()
                    .map(|m| m.consistent_at)
                    .or(Some(point.time))
            }
            _ => Some(point.time),
        }
    }

    /// The newest restorable second of the database's archive and
    /// snapshots (its restorable windows).
    fn restorable_until(&self, vault: &Vault, resource: &str) -> Option<DateTime<Utc>> {
        crate::Catalog::load(vault, resource)
            .ok()
            .and_then(|c| c.windows().iter().map(|w| w.to).max())
    }
}

// --- `[resource.NAME]` of kind `mysql`: its keys and their checks ---

/// A database resource's settings (`[resource.NAME]` of kind `mysql`; its
/// password comes as the job's secret; its archive is the daemon's to run).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    dsn: String,
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
}

/// `archive = { vault, copy_to }`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveSettings {
    #[serde(default, rename = "vault")]
    _vault: Option<String>,
    #[serde(default, rename = "copy_to")]
    _copy_to: Vec<String>,
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
    let auth = rest.split(['/', '?']).next().unwrap_or("");
    match auth.rsplit_once('@') {
        Some((user, _)) if user.contains(':') => vec![Problem::at(
            "dsn",
            "the DSN holds a password",
            "remove `:password` from the DSN and set `password_env` or `password_file`",
        )],
        _ => Vec::new(),
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

impl ResourceSettings for MysqlProtector {
    fn settings(&self) -> Schema {
        Schema {
            implied_by: &["dsn"],
            keys: KEYS,
        }
    }

    /// The DSN's shape, the pinned address and socket, the application account.
    fn check_settings(&self, settings: &serde_json::Value) -> Vec<Problem> {
        let s: Settings = match read_settings(settings) {
            Ok(s) => s,
            Err(p) => return vec![p],
        };
        let mut out = dsn_problems(&s.dsn);
        out.extend(pinned_problems(&s));
        out.extend(s.app.iter().flat_map(app_problems));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_vault::tree::{Node, Tree};

    fn dir(w: &lifeboat_vault::BackupWriter, name: &str, nodes: Vec<Node>) -> Node {
        let mut n = Node {
            kind: NodeKind::Dir,
            mode: 0o40755,
            subtree: Some(w.save_tree(&Tree { nodes }).unwrap()),
            ..Node::default()
        };
        n.set_name_bytes(name.as_bytes());
        n
    }

    /// A snapshot-shaped point: databases `shop` (tables `orders`, `items`)
    /// and `tables` (a database named like the level below).
    fn point(v: &Vault) -> (Id, RecoveryPoint) {
        let w = lifeboat_vault::BackupWriter::start(v, "mysql").unwrap();
        let shop = dir(
            &w,
            "shop",
            vec![dir(
                &w,
                "tables",
                vec![dir(&w, "orders", vec![]), dir(&w, "items", vec![])],
            )],
        );
        let tables = dir(
            &w,
            "tables",
            vec![dir(&w, "tables", vec![dir(&w, "t", vec![])])],
        );
        let root = w
            .save_tree(&Tree {
                nodes: vec![dir(&w, "databases", vec![shop, tables])],
            })
            .unwrap();
        let p = RecoveryPoint::new("shop-db", "mysql", root);
        let id = w.commit(&p).unwrap();
        (id, v.read_point(&id).unwrap())
    }

    /// The databases, a database's tables; a name with `/` or NUL refused;
    /// `..`, `.` and an unknown database not in the point (never a walk
    /// outside the database asked for).
    #[test]
    fn a_snapshot_lists_its_databases_and_a_databases_tables_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        let v = lifeboat_vault::vault::throwaway(&t.path().join("v"));
        let (id, p) = point(&v);
        let list = |path: Option<&str>| {
            let q = Query {
                path: path.map(str::to_string),
                limit: 10,
                ..Default::default()
            };
            PROTECTOR.contents(&v, &id, &p, &q)
        };
        let names = |l: Listing| -> Vec<(String, String)> {
            l.entries.into_iter().map(|e| (e.name, e.kind)).collect()
        };
        let all = list(None).unwrap();
        assert_eq!(all.listing, "databases");
        let db = |n: &str| (n.to_string(), "database".to_string());
        assert_eq!(names(all), [db("shop"), db("tables")]);
        let table = |n: &str| (n.to_string(), "table".to_string());
        assert_eq!(
            names(list(Some("shop")).unwrap()),
            [table("orders"), table("items")]
        );
        assert_eq!(names(list(Some("tables")).unwrap()), [table("t")]);
        for bad in ["a/b", "a\0b", "../shop"] {
            assert!(
                matches!(list(Some(bad)), Err(BrowseError::BadQuery(_))),
                "{bad}"
            );
        }
        for absent in ["..", ".", "nobody"] {
            match list(Some(absent)) {
                Err(BrowseError::NotInPoint(p)) => {
                    assert_eq!(p, format!("/databases/{absent}/tables"))
                }
                other => panic!("{absent}: {other:?}"),
            }
        }
    }
}
