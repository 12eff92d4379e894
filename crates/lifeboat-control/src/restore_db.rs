//! A database restore recorded as a job (kind `restore`): one database of a
//! `mysql` point restored under a new name into the server its resource
//! declares (the DSN and password source of `[resource.NAME]`), beside the
//! live database. What the console's restore form starts, as a child
//! `lifeboat jobs restore-database`. A non-empty target database is refused
//! unless `replace` is given; a replace loads under a shadow name and swaps
//! it in only once it is complete, so a failed one leaves the live database
//! as it was (see `lifeboat_mysql::swap`).

use lifeboat_config::{Config, ResourceKind};
use lifeboat_protector::{DatabaseTarget, Target};
use lifeboat_vault::PointFilter;

use crate::run::Outcome;
use crate::store::JobStore;
use crate::{ControlError, Result};

/// Which database to restore, and under which name.
#[derive(Debug, Clone)]
pub struct DatabaseRestoreRequest {
    /// The vault's name in the file.
    pub vault: String,
    /// The point: id, unique prefix, or `latest` (with `resource`).
    pub point: String,
    /// Only a point of this resource (for `latest`).
    pub resource: Option<String>,
    /// The database in the point.
    pub database: String,
    /// The name it gets on the server (may equal `database` only with `replace`).
    pub target: String,
    /// Replace a non-empty target database.
    pub replace: bool,
}

/// The schemas a server keeps for itself.
pub const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "sys", "performance_schema", "information_schema"];

/// Whether `name` is a plain database name (letters, digits, `_`, `$`, `-`; at most 64).
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-'))
}

/// Restores as a job of kind `restore` on the point's resource.
pub fn restore_database(
    cfg: &Config,
    req: &DatabaseRestoreRequest,
    trigger: &str,
    store: &dyn JobStore,
) -> Result<Outcome> {
    for (what, n) in [
        ("database", &req.database),
        ("target database", &req.target),
    ] {
        if !plain_name(n) {
            return Err(ControlError::Refused(format!(
                "the {what} name `{n}` is not a plain name (letters, digits, _, $, -; at most 64)"
            )));
        }
    }
    // The server's own schemas are never a restore's target: replacing
    // `mysql` removes every account.
    if SYSTEM_SCHEMAS.contains(&req.target.to_ascii_lowercase().as_str()) {
        return Err(ControlError::Refused(format!(
            "`{}` is the server's own schema: restore into a database of your own (`--as NEW`)",
            req.target
        )));
    }
    if req.database == req.target && !req.replace {
        return Err(ControlError::Refused(format!(
            "restoring `{}` under its own name replaces the live database: choose another name, or ask to replace it",
            req.database
        )));
    }
    let vault = crate::secret::open_vault(cfg, &req.vault)?;
    let reader = lifeboat_vault::lock::reader_lock(vault.storage(), "restore")?;
    let (id, point) = vault.select_point(
        &req.point,
        &PointFilter::kinds(&[lifeboat_mysql::KIND_SNAPSHOT]).resource(req.resource.as_deref()),
    )?;
    // The DSN's password resolved here (the file's secret, else the DSN's
    // or the environment's), so that a missing one is refused before the job.
    let server = match cfg.resources.get(&point.resource).map(|r| &r.kind) {
        Some(ResourceKind::Mysql { dsn, password, .. }) => {
            let parsed = crate::secret::mysql_dsn(&point.resource, dsn, password)
                .map_err(ControlError::Refused)?;
            DatabaseTarget::server(dsn, parsed.password)
        }
        _ => {
            return Err(ControlError::Refused(format!(
                "the point's resource `{}` is not a database resource of the file: restore it with `lifeboat restore mysql --dsn …`",
                point.resource
            )));
        }
    };
    let job = crate::restore::start_job(store, &point.resource, &req.vault, trigger)?;
    let target = Target::Database(DatabaseTarget {
        databases: Some(vec![req.database.clone()]),
        renames: vec![(req.database.clone(), req.target.clone())],
        replace: req.replace,
        ..server
    });
    let res = crate::restore::through_protector(
        store,
        job,
        (&vault, &id, &point),
        target,
        None,
        serde_json::Value::Null,
    );
    drop(reader);
    let what = format!(
        "database `{}` of point {} ({}) as `{}`",
        req.database,
        id.short(),
        point.resource,
        req.target
    );
    let end = crate::restore::ending(
        res.map(|rep| {
            (
                rep.summary,
                rep.warnings
                    .iter()
                    .map(|w| format!("warning: {w}"))
                    .collect(),
                rep.bytes,
            )
        }),
        &id,
        &what,
    );
    crate::restore::finish(store, job, end, point.resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_database_names_pass() {
        for ok in ["shop", "shop_restored", "a-b", "x$1"] {
            assert!(plain_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a`b", "a;drop", "é", &"x".repeat(65), "../x"] {
            assert!(!plain_name(bad), "{bad}");
        }
    }

    /// `--as mysql --replace` would take every account away.
    #[test]
    fn the_servers_own_schemas_are_never_a_target() {
        let cfg =
            lifeboat_config::parse("x.toml", "[vault.main]\nlocation = \"/nowhere\"\n").unwrap();
        let d = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(&d.path().join("jobs.sqlite")).unwrap();
        for target in ["mysql", "SYS", "performance_schema", "information_schema"] {
            let req = DatabaseRestoreRequest {
                vault: "main".into(),
                point: "latest".into(),
                resource: None,
                database: "shop".into(),
                target: target.into(),
                replace: true,
            };
            let e = match restore_database(&cfg, &req, "manual", &store) {
                Ok(_) => panic!("{target}: restored"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains("the server's own schema"), "{target}: {e}");
        }
    }
}
