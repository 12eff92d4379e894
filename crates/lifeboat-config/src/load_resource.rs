//! `[resource.NAME]`: the kinds and their keys (the kind follows from the
//! keys when `kind` is left out; `instance` is read by `load_instance`).

use std::ops::Range;

use toml::de::DeValue;

use crate::diag::Sink;
use crate::load::{Draft, secret};
use crate::model::*;
use crate::read::{SubTable, Table};
const KINDS: &[&str] = &["files", "mysql", "bucket", "instance"];

/// Reads `[resource.NAME]` into the draft.
pub(crate) fn load_resource(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    let site = sink.string(t, "site").map(|s| s.0);
    let stateless = sink.boolean(t, "stateless").unwrap_or(false);
    let Some(kind) = resource_kind(sink, name, t) else {
        return;
    };
    let kind = match kind.as_str() {
        "files" => files(sink, name, t),
        "mysql" => mysql(sink, name, t),
        "bucket" => bucket(sink, name, t),
        _ => {
            crate::load_instance::record_spans(t, "launch", &mut d.spans);
            crate::load_instance::load_instance(sink, name, t)
        }
    };
    d.resources.insert(
        name.to_string(),
        Resource {
            site,
            stateless,
            kind,
        },
    );
}

/// The resource's kind: `kind`, else the one its keys show; `None` (with a
/// diagnostic) when neither says.
fn resource_kind(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>) -> Option<String> {
    match sink.string(t, "kind") {
        Some((k, span)) => {
            if !KINDS.contains(&k.as_str()) {
                let hint = crate::read::did_you_mean(&k, KINDS)
                    .map(|m| format!(" — did you mean `{m}`?"))
                    .unwrap_or_default();
                sink.error(
                    &span,
                    &t.key("kind"),
                    format!("unknown resource kind `{k}`{hint}"),
                    Some(format!("write one of: {}", KINDS.join(", "))),
                );
                return None;
            }
            Some(k)
        }
        None if t.get("kind").is_some() => None,
        // Defaults that make a short file useful: the kind follows from the keys.
        None if t.get("volumes").is_some() || t.get("launch").is_some() => Some("instance".into()),
        None if t.get("paths").is_some() => Some("files".into()),
        None if t.get("dsn").is_some() => Some("mysql".into()),
        None if t.get("location").is_some() => Some("bucket".into()),
        None => {
            sink.missing(t, "kind", &format!("resource `{name}`"), "add `kind = \"files\"` (with `paths`), `\"mysql\"` (with `dsn`), `\"bucket\"` (with `location`) or `\"instance\"`");
            None
        }
    }
}

/// A files resource: its paths, excludes and file-system bound.
fn files(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>) -> ResourceKind {
    sink.unknown_keys(
        t,
        "a files resource",
        &[
            "kind",
            "site",
            "stateless",
            "paths",
            "exclude",
            "one_file_system",
            "description",
        ],
    );
    let paths = sink.strings(t, "paths").unwrap_or_default();
    if paths.is_empty() && t.get("paths").is_none() {
        sink.missing(
            t,
            "paths",
            &format!("files resource `{name}`"),
            "add `paths = [\"/abs/path\", ...]`",
        );
    }
    for (p, span) in &paths {
        if !p.starts_with('/') {
            sink.error(
                span,
                &t.key("paths"),
                format!("`{p}` is not an absolute path"),
                Some("write each path from `/`".into()),
            );
        }
    }
    ResourceKind::Files {
        paths: paths.into_iter().map(|p| p.0.into()).collect(),
        excludes: sink
            .strings(t, "exclude")
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.0)
            .collect(),
        one_file_system: sink.boolean(t, "one_file_system").unwrap_or(false),
    }
}

/// A mysql resource: its DSN, password, archive, pinned addresses and
/// application account.
fn mysql(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>) -> ResourceKind {
    sink.unknown_keys(
        t,
        "a mysql resource",
        &[
            "kind",
            "site",
            "stateless",
            "dsn",
            "password_env",
            "password_file",
            "archive",
            "recover_listen",
            "recover_socket",
            "app",
            "description",
        ],
    );
    let dsn = match sink.string(t, "dsn") {
        Some((dsn, span)) => {
            check_dsn(sink, &dsn, &span, &t.key("dsn"));
            dsn
        }
        None => {
            if t.get("dsn").is_none() {
                sink.missing(
                    t,
                    "dsn",
                    &format!("mysql resource `{name}`"),
                    "add `dsn = \"mysql://user@host:3306\"`",
                );
            }
            String::new()
        }
    };
    let (recover_listen, recover_socket) = pinned(sink, t);
    ResourceKind::Mysql {
        dsn,
        password: secret(sink, t),
        archive: archive(sink, t),
        recover_listen,
        recover_socket,
        app: app_account(sink, t),
    }
}

/// A bucket resource: its location.
fn bucket(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>) -> ResourceKind {
    sink.unknown_keys(
        t,
        "a bucket resource",
        &["kind", "site", "stateless", "location", "description"],
    );
    let location = sink.bucket_location(t, "location").unwrap_or_else(|| {
        if t.get("location").is_none() {
            sink.missing(
                t,
                "location",
                &format!("bucket resource `{name}`"),
                "add `location = \"file:///path/to/bucket\"` (or an s3:// URL)",
            );
        }
        String::new()
    });
    ResourceKind::Bucket { location }
}

/// `recover_listen` and `recover_socket`: where a database's server listens
/// when it is provisioned outside its own site.
fn pinned(sink: &mut Sink<'_>, t: Table<'_, '_>) -> (Option<String>, Option<std::path::PathBuf>) {
    let listen = sink.string(t, "recover_listen").and_then(|(v, span)| {
        match crate::model::listen_addr(&v) {
            Ok(_) => Some(v),
            Err(e) => {
                sink.error(
                    &span,
                    &t.key("recover_listen"),
                    e,
                    Some("write the address the application's configuration names, e.g. `recover_listen = \"127.0.0.1:3306\"`".into()),
                );
                None
            }
        }
    });
    let socket = sink.string(t, "recover_socket").and_then(|(v, span)| {
        let problem = if !v.starts_with('/') {
            Some(format!("`{v}` is not an absolute path"))
        } else if v.len() > 100 {
            Some(format!("`{v}` is too long for a unix socket (over 100 bytes)"))
        } else {
            None
        };
        match problem {
            None => Some(std::path::PathBuf::from(v)),
            Some(p) => {
                sink.error(
                    &span,
                    &t.key("recover_socket"),
                    p,
                    Some("write the socket path the application's configuration names, e.g. `recover_socket = \"/run/mysqld/mysqld.sock\"`".into()),
                );
                None
            }
        }
    });
    (listen, socket)
}

fn check_dsn(sink: &mut Sink<'_>, dsn: &str, span: &Range<usize>, key: &str) {
    let Some(rest) = dsn
        .strip_prefix("mysql://")
        .or_else(|| dsn.strip_prefix("mariadb://"))
    else {
        sink.error(
            span,
            key,
            format!("`{dsn}` is not a mysql:// DSN"),
            Some("write `mysql://user@host:3306`".into()),
        );
        return;
    };
    let auth = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((user, _)) = auth.rsplit_once('@')
        && user.contains(':')
    {
        sink.error(
            span,
            key,
            "the DSN holds a password",
            Some(
                "remove `:password` from the DSN and set `password_env` or `password_file`".into(),
            ),
        );
    }
}

/// `archive = true` or `archive = { vault, copy_to }`.
/// `app = { user = "shop", database = "shop", password_file = "/…" }`.
fn app_account(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Option<AppAccount> {
    let v = t.get("app")?;
    let DeValue::Table(at) = v.get_ref() else {
        sink.wrong_type(
            t,
            "app",
            v,
            "`{ user = \"NAME\", database = \"DB\", password_file = \"/PATH\" }`",
        );
        return None;
    };
    let app = SubTable::of(t, "app", at, v.span());
    let at = app.view();
    sink.unknown_keys(
        at,
        "an application account",
        &["user", "database", "password_env", "password_file"],
    );
    let mut name = |k: &str, what: &str| match sink.string(at, k) {
        Some((n, span)) => {
            let plain = !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            // The server's own schemas: all privileges there are root's.
            let system = k == "database"
                && ["mysql", "sys", "performance_schema", "information_schema"]
                    .contains(&n.to_ascii_lowercase().as_str());
            if !plain || system || (k == "user" && n == "root") {
                sink.error(
                    &span,
                    &at.key(k),
                    format!("`{n}` cannot be the application's {what}"),
                    Some(format!(
                        "write a {what} of letters, digits, `_` and `-`{}",
                        if k == "user" {
                            ", not root"
                        } else {
                            ", not one of the server's own (mysql, sys, performance_schema, information_schema)"
                        }
                    )),
                );
            }
            Some(n)
        }
        None => {
            if at.get(k).is_none() {
                sink.missing(
                    at,
                    k,
                    "the application account",
                    &format!("add `{k} = \"…\"`"),
                );
            }
            None
        }
    };
    let user = name("user", "user");
    let database = name("database", "database");
    let password = secret(sink, at);
    if password.is_none() && at.get("password_env").is_none() && at.get("password_file").is_none() {
        sink.missing(
            at,
            "password_file",
            "the application account",
            "add `password_file = \"/PATH\"` (its first line) or `password_env = \"VAR\"`: the application's configuration holds the same password",
        );
    }
    Some(AppAccount {
        user: user?,
        database: database?,
        password: password?,
    })
}

fn archive(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Option<Archive> {
    let v = t.get("archive")?;
    match v.get_ref() {
        DeValue::Boolean(true) => Some(Archive {
            vault: None,
            copy_to: Vec::new(),
        }),
        DeValue::Boolean(false) => None,
        DeValue::Table(at) => {
            let archive = SubTable::of(t, "archive", at, v.span());
            let at = archive.view();
            sink.unknown_keys(at, "an archive", &["vault", "copy_to"]);
            Some(Archive {
                vault: sink.string(at, "vault").map(|s| s.0),
                copy_to: sink
                    .strings(at, "copy_to")
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.0)
                    .collect(),
            })
        }
        _ => {
            sink.wrong_type(t, "archive", v, "true, false or `{ vault = \"NAME\" }`");
            None
        }
    }
}
