//! What a point-in-time plan starts from: a logical snapshot or a physical
//! point, and which of them a caller may take.

use chrono::{DateTime, Utc};

use crate::snapshot::SnapshotMeta;

/// Which points may start a plan: a logical restore loads a `mysql`
/// snapshot, a physical one a `mysql-physical` point's chain; a recovery
/// takes whichever starts nearest the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modes {
    /// `mysql` snapshots only.
    Logical,
    /// `mysql-physical` points only.
    Physical,
    /// Either: the one consistent latest before the target (the least
    /// binlog to replay); a physical point when both are as recent.
    Any,
}

/// The point a plan starts from, as its meta reads.
#[derive(Debug, Clone)]
pub enum Base {
    /// A logical snapshot: loaded through SQL.
    Logical(SnapshotMeta),
    /// A physical point (the tip of its chain): extracted and prepared as a
    /// data directory.
    Physical(crate::physical::PhysicalMeta),
}

impl Base {
    /// The binlog coordinates it is consistent at.
    pub fn coordinates(&self) -> Option<&crate::snapshot::Coordinates> {
        match self {
            Base::Logical(m) => m.binlog.as_ref(),
            Base::Physical(m) => m.binlog.as_ref(),
        }
    }

    /// When it is consistent (server clock).
    pub fn consistent_at(&self) -> DateTime<Utc> {
        match self {
            Base::Logical(m) => m.consistent_at,
            Base::Physical(m) => m.consistent_at,
        }
    }

    /// `logical` or `physical`.
    pub fn mode(&self) -> &'static str {
        match self {
            Base::Logical(_) => "logical",
            Base::Physical(_) => "physical",
        }
    }

    /// The server version the point was taken from.
    pub fn server_version(&self) -> &str {
        match self {
            Base::Logical(m) => &m.server.version,
            Base::Physical(m) => &m.server.version,
        }
    }
}
