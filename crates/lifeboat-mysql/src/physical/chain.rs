//! Incremental physical points and the chains they form.
//!
//! An incremental `mysql-physical` point holds the pages changed since its
//! base (`mariadb-backup --incremental-lsn=<the base's lsn.to>`), and names
//! that base twice: in its meta (`base`, the id in the vault it was taken
//! in) and as its `parent` (which a copy to another vault rewrites to the
//! copy of the base there, as it does for every point; the meta it never
//! reads). Links are followed by `parent`, by `base` for a point without
//! one. Restoring it needs every link down to a
//! full point: the full one prepared, then each incremental applied in
//! order. A link continues its base when its `lsn.from` is the base's
//! `lsn.to`. This module follows the links ([`chain_of`]), tells a vault's
//! broken links ([`chain_problems`], for `vault check`) and which bases kept
//! incrementals need ([`bases_needed`], for `forget`).

use std::collections::HashMap;

use lifeboat_vault::{Id, RecoveryPoint, Vault, VaultError};

use super::{PhysicalMeta, physical_meta};
use crate::error::{MysqlError, Result};

/// `backup_type` of an incremental point (as `xtrabackup_checkpoints` says).
pub const INCREMENTAL: &str = "incremental";

/// One link of a chain: a point, its record and its meta.
pub type Link = (Id, RecoveryPoint, PhysicalMeta);

/// Why `base` (the point `tip` names as its base) does not continue into
/// `tip`, or `None` when it does.
fn link_fault(tip: &PhysicalMeta, base_id: &Id, base: &RecoveryPoint) -> Option<String> {
    let m = match physical_meta(base_id, base) {
        Ok(m) => m,
        Err(MysqlError::BadPoint { reason, .. }) => return Some(reason),
        Err(e) => return Some(e.to_string()),
    };
    if m.lsn.to != tip.lsn.from {
        return Some(format!(
            "its LSN range ends at {} but the incremental starts from {}: it is not the base the incremental was taken on",
            m.lsn.to, tip.lsn.from
        ));
    }
    None
}

/// The base of point `id`, as an id in this vault (`Ok(None)` for a full
/// point): its `parent`, else the id its meta names.
fn base_of(id: &Id, p: &RecoveryPoint, m: &PhysicalMeta) -> Result<Option<Id>> {
    if m.base.is_some()
        && let Some(parent) = p.parent
    {
        return Ok(Some(parent));
    }
    match &m.base {
        None if m.backup_type == INCREMENTAL => Err(MysqlError::BadPoint {
            point: id.short(),
            reason: "an incremental physical point that names no base: it cannot be restored; take a new full point (`lifeboat backup mysql --physical`)".into(),
        }),
        None => Ok(None),
        Some(hex) => Id::parse(hex).map(Some).ok_or_else(|| MysqlError::BadPoint {
            point: id.short(),
            reason: format!("its base {hex:?} is not a point id: its meta is damaged"),
        }),
    }
}

/// The chain of physical point `id`: its full point first, `id` last (a
/// full point is a chain of one). A link that is missing, unreadable, of
/// another kind or not continuing its incremental's LSN is an error naming
/// both points.
pub fn chain_of(vault: &Vault, id: &Id, point: &RecoveryPoint) -> Result<Vec<Link>> {
    let mut chain = vec![(*id, point.clone(), physical_meta(id, point)?)];
    loop {
        let (tip_id, tip_point, tip) = chain.last().expect("a chain has a tip");
        let Some(base_id) = base_of(tip_id, tip_point, tip)? else {
            break;
        };
        let broken = |reason: String| MysqlError::BrokenChain {
            point: base_id.short(),
            needed_by: tip_id.short(),
            reason,
        };
        if chain.iter().any(|(i, _, _)| *i == base_id) {
            return Err(broken(
                "it is a later link of the same chain (a loop)".into(),
            ));
        }
        let base = match vault.read_point(&base_id) {
            Ok(p) => p,
            Err(VaultError::Missing { .. }) => {
                return Err(broken("it is missing from the vault".into()));
            }
            Err(e) => return Err(broken(format!("it cannot be read: {e}"))),
        };
        if let Some(fault) = link_fault(tip, &base_id, &base) {
            return Err(broken(fault));
        }
        let meta = physical_meta(&base_id, &base)?;
        chain.push((base_id, base, meta));
    }
    chain.reverse();
    Ok(chain)
}

/// The broken links among `points` (every point of a vault): for each
/// incremental `mysql-physical` point whose base is absent, not a physical
/// point or does not continue its LSN, (the incremental, what is wrong,
/// naming both points).
pub fn chain_problems(points: &[(Id, RecoveryPoint)]) -> Vec<(Id, String)> {
    let by_id: HashMap<&Id, &RecoveryPoint> = points.iter().map(|(i, p)| (i, p)).collect();
    let mut out = Vec::new();
    for (id, p) in points
        .iter()
        .filter(|(_, p)| p.kind == crate::KIND_PHYSICAL)
    {
        let Ok(m) = physical_meta(id, p) else {
            out.push((*id, "its physical point meta is unreadable".into()));
            continue;
        };
        let base = match base_of(id, p, &m) {
            Ok(None) => continue,
            Ok(Some(b)) => b,
            Err(e) => {
                out.push((*id, e.to_string()));
                continue;
            }
        };
        let fault = match by_id.get(&base) {
            None => Some(
                "is missing from the vault (forgotten, unreadable, or not copied with it)"
                    .to_string(),
            ),
            Some(bp) => link_fault(&m, &base, bp).map(|f| format!("does not continue it: {f}")),
        };
        if let Some(f) = fault {
            out.push((
                *id,
                format!(
                    "incremental physical point {} needs its base {}, which {f}; it cannot be restored (take a new full point: `lifeboat backup mysql --physical`)",
                    id.short(),
                    base.short()
                ),
            ));
        }
    }
    out
}

/// The base of `mysql-physical` point `id` in this vault (its `parent`, else
/// its meta's `base`); `None` for a full point or any other point.
pub fn base_id(id: &Id, p: &RecoveryPoint) -> Option<Id> {
    if p.kind != crate::KIND_PHYSICAL {
        return None;
    }
    base_of(id, p, &physical_meta(id, p).ok()?).ok()?
}

/// Which `mysql-physical` points must be kept because a kept incremental
/// needs them: every link below each kept incremental (`kept` says which
/// points are kept otherwise). Returns (point, why).
pub fn bases_needed(
    points: &[(Id, RecoveryPoint)],
    kept: &dyn Fn(&Id) -> bool,
) -> Vec<(Id, String)> {
    let by_id: HashMap<&Id, &RecoveryPoint> = points
        .iter()
        .filter(|(_, p)| p.kind == crate::KIND_PHYSICAL)
        .map(|(i, p)| (i, p))
        .collect();
    let base = |id: &Id| -> Option<Id> {
        let p = by_id.get(id)?;
        base_of(id, p, &physical_meta(id, p).ok()?).ok()?
    };
    let mut out: Vec<(Id, String)> = Vec::new();
    for (tip, _) in points
        .iter()
        .filter(|(i, p)| p.kind == crate::KIND_PHYSICAL && kept(i))
    {
        let mut at = *tip;
        let mut steps = 0;
        while let Some(b) = base(&at).filter(|b| by_id.contains_key(b)) {
            steps += 1;
            if b == *tip || steps > by_id.len() || out.iter().any(|(i, _)| *i == b) {
                break; // kept for another incremental already (or a loop)
            }
            out.push((b, format!("base of incremental {}", tip.short())));
            at = b;
        }
    }
    out
}

/// `vault check`'s check of `mysql-physical` points: every broken link
/// ([`chain_problems`]) is an error of the incremental that needs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChainCheck;

impl lifeboat_vault::check::KindCheck for ChainCheck {
    fn problems(&self, points: &[(Id, RecoveryPoint)]) -> Vec<lifeboat_vault::check::Problem> {
        chain_problems(points)
            .into_iter()
            .map(|(id, message)| lifeboat_vault::check::Problem {
                object: lifeboat_vault::point::point_path(&id),
                message,
            })
            .collect()
    }
}

/// The checks of this protector's point kinds, for
/// `lifeboat_vault::check::check_with`.
pub fn check_rules() -> [&'static dyn lifeboat_vault::check::KindCheck; 1] {
    [&ChainCheck]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physical::Lsn;
    use crate::server::{Flavor, ServerInfo};

    /// A physical point with LSN range `from..to`, on `base`.
    fn point(from: u64, to: u64, base: Option<&Id>) -> (Id, RecoveryPoint) {
        let meta = PhysicalMeta {
            format: 1,
            mode: "physical".into(),
            backup_type: if base.is_some() {
                INCREMENTAL
            } else {
                "full-backuped"
            }
            .into(),
            base: base.map(|b| b.to_hex()),
            tool: "mariadb-backup".into(),
            server: ServerInfo {
                flavor: Flavor::Mariadb,
                version: "10.11.19-MariaDB".into(),
                server_id: 1,
                log_bin: true,
                binlog_format: "ROW".into(),
            },
            dsn: "mysql://root@localhost".into(),
            datadir: "/var/lib/mysql".into(),
            binlog: None,
            consistent_at: chrono::Utc::now(),
            lsn: Lsn { from, to, last: to },
            files: 1,
        };
        let mut p = RecoveryPoint::new("db", crate::KIND_PHYSICAL, Id::random());
        p.meta = serde_json::to_value(meta).unwrap();
        p.parent = base.copied();
        (Id::random(), p)
    }

    #[test]
    fn broken_links_are_named_with_both_points() {
        let full = point(0, 100, None);
        let inc1 = point(100, 200, Some(&full.0));
        let inc2 = point(200, 300, Some(&inc1.0));
        let wrong = point(150, 400, Some(&inc2.0)); // does not continue inc2
        let orphan = point(300, 500, Some(&Id::random()));
        let mut other = point(0, 10, None);
        other.1.kind = crate::KIND_SNAPSHOT.into();
        let on_other = point(10, 20, Some(&other.0));
        // A copy: its meta names the base in the vault it was taken in, its
        // parent the copy of that base here.
        let mut copied = point(300, 350, Some(&Id::random()));
        copied.1.parent = Some(inc2.0);
        let all = [
            &full, &inc1, &inc2, &wrong, &orphan, &other, &on_other, &copied,
        ];
        let points: Vec<_> = all.iter().map(|p| (*p).clone()).collect();
        let found = chain_problems(&points);
        let ids: Vec<Id> = found.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, [wrong.0, orphan.0, on_other.0], "{found:?}");
        assert!(found[0].1.contains(&inc2.0.short()) && found[0].1.contains("LSN"));
        assert!(found[1].1.contains("missing from the vault"));
        assert!(found[2].1.contains("not a physical database point"));
    }

    #[test]
    fn kept_incrementals_keep_every_link_below_them() {
        let f1 = point(0, 100, None);
        let i1 = point(100, 200, Some(&f1.0));
        let i2 = point(200, 300, Some(&i1.0));
        let f2 = point(0, 400, None);
        let i3 = point(400, 500, Some(&f2.0));
        let points: Vec<_> = [&f1, &i1, &i2, &f2, &i3]
            .iter()
            .map(|p| (*p).clone())
            .collect();
        let ids = |kept: &[&Id]| -> Vec<Id> {
            let mut v: Vec<Id> = bases_needed(&points, &|i| kept.contains(&i))
                .into_iter()
                .map(|(i, _)| i)
                .collect();
            v.sort();
            v
        };
        let sorted = |mut v: Vec<Id>| {
            v.sort();
            v
        };
        assert_eq!(ids(&[&i2.0]), sorted(vec![i1.0, f1.0]));
        assert_eq!(ids(&[&i3.0]), vec![f2.0]);
        assert_eq!(ids(&[&f2.0, &f1.0]), Vec::<Id>::new());
    }
}
