//! The two modes of a database resource's points, as the protector takes
//! and shows them: logical snapshots and physical points (their mode, an
//! incremental one's base, their files, their restore command).

use lifeboat_protector::{
    Backed, BackupError, BackupJob, BrowseError, Listing, Query, Reading, watched,
};
use lifeboat_vault::tree::NodeKind;
use lifeboat_vault::{RecoveryPoint, Vault};

use super::{chunks, nodes_at};

/// How a physical point is restored (`POINT`: its id).
pub const PHYSICAL_COMMAND: &str = "lifeboat restore mysql POINT --physical --datadir DIR";

/// A physical point's files: the first level of `backup/`, or one of its
/// directories (`query.path`: a name of that level, never a deeper path).
pub(super) fn physical_contents(
    vault: &Vault,
    point: &RecoveryPoint,
    query: &Query,
) -> Result<Listing, BrowseError> {
    let dir = crate::physical::BACKUP_DIR;
    let (listing, path) = match query.path.as_deref().filter(|p| !p.is_empty()) {
        None => (dir.to_string(), vec![dir]),
        Some(d) if d.contains(['/', '\0']) || d == ".." || d == "." => {
            return Err(BrowseError::BadQuery(format!(
                "`{d}` is not a directory of the backup's first level"
            )));
        }
        Some(d) => (d.to_string(), vec![dir, d]),
    };
    let entries = nodes_at(vault, point, &path)?
        .into_iter()
        .map(|(kind, mut e)| {
            e.kind = match kind {
                NodeKind::Dir => "dir",
                NodeKind::File => "file",
                _ => "other",
            }
            .into();
            e
        })
        .collect();
    Ok(Listing::cut(listing, entries, query.limit))
}

/// A logical snapshot of `dsn` for `job`.
pub(super) fn back_up_logical(job: &BackupJob, dsn: &crate::Dsn) -> Result<Backed, BackupError> {
    let opts = crate::SnapshotOptions {
        resource: Some(job.resource.to_string()),
        tags: job.tags.clone(),
        users: job.stack_member,
        ..Default::default()
    };
    let counters = crate::Counters::default();
    let read = || chunks(&counters);
    let vault = job.vault;
    let res = watched(job.watch, &read, || {
        crate::snapshot(vault, dsn, &opts, &counters)
    })
    .map_err(|e| BackupError::Failed(e.to_string()))?;
    Ok(Backed::with_warnings(res.id, res.point, res.warnings))
}

/// A physical point of the server at `dsn` (on this host) for `job`: full,
/// or incremental on the newest while the chain's full point is younger
/// than `full_every`; its mode (and base) noted for the job's log.
pub(super) fn back_up_physical(
    job: &BackupJob,
    dsn: &crate::Dsn,
    full_every: Option<std::time::Duration>,
) -> Result<Backed, BackupError> {
    use crate::physical::Incremental;
    let opts = crate::PhysicalOptions {
        resource: Some(job.resource.to_string()),
        tags: job.tags.clone(),
        incremental: full_every.map_or(Incremental::Never, Incremental::FullEvery),
        ..Default::default()
    };
    let counters = crate::Counters::default();
    let read = || files(&counters);
    let vault = job.vault;
    let res = watched(job.watch, &read, || {
        crate::backup_physical(vault, dsn, &opts, &counters)
    })
    .map_err(|e| BackupError::Failed(e.to_string()))?;
    let note = match physical_base(&res.point) {
        Some(base) => format!(
            "mode physical ({}): incremental on {}",
            res.meta.tool,
            short_hex(&base)
        ),
        None => format!("mode physical ({}): full", res.meta.tool),
    };
    let mut backed = Backed::with_warnings(res.id, res.point, res.warnings);
    backed.notes.push(note);
    Ok(backed)
}

/// A database point's mode: `logical` (a `mysql` snapshot) or `physical`
/// (a `mysql-physical` point); `None` for every other kind.
pub fn point_mode(point: &RecoveryPoint) -> Option<&'static str> {
    match point.kind.as_str() {
        crate::KIND_SNAPSHOT => Some("logical"),
        crate::KIND_PHYSICAL => Some("physical"),
        _ => None,
    }
}

/// The base of an incremental physical point (its meta's `base`: the full
/// hex id of the point it continues); `None` for a full one and every
/// other kind.
pub fn physical_base(point: &RecoveryPoint) -> Option<String> {
    if point.kind != crate::KIND_PHYSICAL {
        return None;
    }
    point.meta["base"]
        .as_str()
        .filter(|b| !b.is_empty())
        .map(str::to_string)
}

/// The short form of a hex id (its first 8 digits), as `Id::short` writes it.
fn short_hex(hex: &str) -> &str {
    &hex[..hex.len().min(8)]
}

/// A physical point's backup: files stored (of those announced), bytes streamed.
fn files(counters: &crate::Counters) -> Reading {
    Reading {
        unit: "files",
        ..chunks(counters)
    }
}
