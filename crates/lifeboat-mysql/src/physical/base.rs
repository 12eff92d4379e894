//! Choosing the base of an incremental physical point: the resource's
//! newest physical point, when the server can continue from it — the same
//! server (`server_id` and data directory), the same major version, a chain
//! that is whole down to its full point, and an LSN the server has reached —
//! and, with `FullEvery`, while the chain's full point is young enough.
//! Otherwise a full point is taken, with a warning when an incremental one
//! could not be.

use chrono::{DateTime, Utc};
use lifeboat_vault::{Id, PointFilter, Vault};

use super::Incremental;
use super::chain::chain_of;
use crate::error::Result;
use crate::server::ServerInfo;

/// The point an incremental backup builds on.
#[derive(Debug, Clone)]
pub(super) struct Base {
    /// The point.
    pub(super) id: Id,
    /// Its `lsn.to`: the incremental copies the pages changed after it.
    pub(super) lsn: u64,
}

/// What the server is now, to judge whether it continues a point.
pub(super) struct Now<'a> {
    pub(super) server: &'a ServerInfo,
    pub(super) datadir: &'a str,
    /// `Innodb_lsn_current` (None: unknown).
    pub(super) lsn: Option<u64>,
    pub(super) time: DateTime<Utc>,
}

/// `10.11` of `10.11.19-MariaDB-…`.
fn major(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The base of the next point of `resource` as `how` asks (`None`: a full
/// point); a reason in `warnings` when an incremental one was asked for and
/// cannot be taken.
pub(super) fn choose(
    vault: &Vault,
    resource: &str,
    how: Incremental,
    now: &Now<'_>,
    warnings: &mut Vec<String>,
) -> Result<Option<Base>> {
    if how == Incremental::Never {
        return Ok(None);
    }
    let points = vault.list_points_trusted()?;
    let kinds = [crate::KIND_PHYSICAL];
    let filter = PointFilter::kinds(&kinds).resource(Some(resource));
    let Some((id, point)) = lifeboat_vault::select::newest(&points, &filter) else {
        return Ok(None); // the first point of the resource: full, as expected
    };
    let full_instead = |why: String| {
        format!(
            "a full point was taken instead of an incremental one: the newest physical point {} of {resource} {why}",
            id.short()
        )
    };
    let chain = match chain_of(vault, id, point) {
        Ok(c) => c,
        Err(e) => {
            warnings.push(full_instead(format!("has a broken chain ({e})")));
            return Ok(None);
        }
    };
    let (_, _, tip) = chain.last().expect("a chain has a tip");
    let why = if tip.server.server_id != now.server.server_id || tip.datadir != now.datadir {
        Some(format!(
            "was taken of another server (server_id {}, data directory {}; this one: server_id {}, {})",
            tip.server.server_id, tip.datadir, now.server.server_id, now.datadir
        ))
    } else if major(&tip.server.version) != major(&now.server.version) {
        Some(format!(
            "was taken of MariaDB {}, the server is now {}: its pages may not be read alike",
            tip.server.version, now.server.version
        ))
    } else {
        match now.lsn {
            None => Some("cannot be compared: the server's current LSN is unknown".into()),
            Some(_) if tip.lsn.to == 0 => Some("records no LSN".into()),
            Some(l) if l < tip.lsn.to => Some(format!(
                "ends at LSN {} and the server is at {l}: its data is not the one that point copied (restored or made anew since)",
                tip.lsn.to
            )),
            Some(_) => None,
        }
    };
    if let Some(why) = why {
        warnings.push(full_instead(why));
        return Ok(None);
    }
    if let Incremental::FullEvery(every) = how {
        let full_time = chain[0].1.time;
        let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
        if now.time - full_time >= every {
            return Ok(None); // the chain's full point is old enough: a new one
        }
    }
    Ok(Some(Base {
        id: *id,
        lsn: tip.lsn.to,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn major_versions() {
        assert_eq!(super::major("10.11.19-MariaDB-0+deb12u1"), "10.11");
        assert_eq!(super::major("11.4.2-MariaDB"), "11.4");
    }
}
