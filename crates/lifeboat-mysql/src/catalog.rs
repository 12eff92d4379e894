//! Reading a resource's points back: its snapshots, its archived binlog, and
//! from both the times it can be restored to.

use lifeboat_vault::{Id, RecoveryPoint, Vault, VaultError};

use crate::error::{MysqlError, Result};

/// Finds a snapshot point: `latest` (newest `mysql` point, of `resource` when
/// given), a full id or a unique prefix.
pub fn find_snapshot(
    vault: &Vault,
    spec: &str,
    resource: Option<&str>,
) -> Result<(Id, RecoveryPoint)> {
    if spec == "latest" {
        let (points, _) = vault.list_points()?;
        return points
            .into_iter()
            .rev()
            .find(|(_, p)| {
                p.kind == crate::KIND_SNAPSHOT && resource.is_none_or(|r| p.resource == r)
            })
            .ok_or_else(|| {
                MysqlError::Vault(VaultError::NoSuchPoint(match resource {
                    Some(r) => format!("latest mysql snapshot of {r}"),
                    None => "latest mysql snapshot".into(),
                }))
            });
    }
    let (id, p) = vault.find_point(spec, resource)?;
    crate::restore::snapshot_meta(&id, &p)?;
    Ok((id, p))
}
