//! Choosing a recovery point for a command (`latest`, id, prefix) by the
//! kinds the command handles; a point of another kind is refused with the
//! command that does handle it.

use anyhow::Result;
use lifeboat_vault::{Id, PointFilter, RecoveryPoint, Vault, VaultError};

/// Kinds `restore files` and `points ls` handle.
pub const FILES: &[&str] = &["files"];
/// Kinds whose tree `points ls` can list (a binlog seal point has none worth listing).
pub const WITH_TREE: &[&str] = &[
    "files",
    "bucket",
    "instance",
    lifeboat_mysql::KIND_SNAPSHOT,
    lifeboat_mysql::KIND_PHYSICAL,
];
/// Kinds `restore instance` handles.
pub const INSTANCE: &[&str] = &["instance"];
/// Kinds `restore bucket` handles.
pub const BUCKET: &[&str] = &["bucket"];

/// The command that restores a point of `kind`.
pub fn command_for(kind: &str, id: &str, resource: &str) -> String {
    match kind {
        "files" => format!("restore it with `lifeboat restore files {id} --to DIR`"),
        "bucket" => format!("restore it with `lifeboat restore bucket {id} --to-bucket URL`"),
        "instance" => format!("restore it with `lifeboat restore instance {id} --to DIR`"),
        lifeboat_mysql::KIND_SNAPSHOT => {
            format!("restore it with `lifeboat restore mysql {id} --dsn DSN`")
        }
        lifeboat_mysql::KIND_PHYSICAL => {
            format!("restore it with `lifeboat restore mysql {id} --physical --datadir DIR`")
        }
        lifeboat_mysql::KIND_BINLOG => format!(
            "it is part of the binlog archive of {resource:?}: restore the database to a time with `lifeboat restore mysql latest --resource {resource:?} --at TIME --dsn DSN`"
        ),
        _ => "see `lifeboat points show` for what it holds".to_string(),
    }
}

/// [`Vault::select_point`] with the right command named when the kind is wrong.
pub fn select(
    v: &Vault,
    spec: &str,
    kinds: &[&str],
    resource: Option<&str>,
) -> Result<(Id, RecoveryPoint)> {
    match v.select_point(spec, &PointFilter::kinds(kinds).resource(resource)) {
        Err(e @ VaultError::WrongKind { .. }) => {
            let VaultError::WrongKind {
                point,
                kind,
                resource,
                ..
            } = &e
            else {
                unreachable!()
            };
            let hint = command_for(kind, point, resource);
            Err(anyhow::anyhow!("{e}; {hint}"))
        }
        r => Ok(r?),
    }
}
