//! # lifeboat-mysql — the MySQL/MariaDB protector
//!
//! Three jobs, each through the vault engine's API only:
//!
//! - [`snapshot`]: a consistent, parallel logical dump of a live server into a
//!   recovery point of kind `mysql`, recording the binlog coordinates (file,
//!   position, GTID) it is consistent at. Table data goes through the vault's
//!   content-defined chunking, so unchanged parts of tables cost nothing in
//!   later snapshots.
//! - [`archive`]: follows the server's binary log as a replica would (a
//!   supervised `mariadb-binlog --raw --stop-never`) and seals what arrived
//!   into the vault every couple of seconds as points of kind `mysql-binlog`.
//! - [`restore`] and [`pitr`]: load a snapshot in parallel into a target server,
//!   then, for a point in time, replay the archived binlog from the snapshot's
//!   coordinates up to that time.
//!
//! - [`physical`]: a physical point of a MariaDB server on this host
//!   (`mariadb-backup --stream=mbstream` read straight into the vault, kind
//!   `mysql-physical`) and its restore into an empty data directory, prepared.
//!
//! [`catalog`] reads a resource's points back: which snapshots exist, which
//! binlog ranges are archived, and so which times are restorable.
//! `docs/vault-format.md` ("Point kinds") describes the trees and meta these
//! points carry.

pub mod archive;
pub mod binlog;
pub mod catalog;
pub mod error;
mod load;
pub mod physical;
pub mod pitr;
pub mod protector;
mod resource;
pub mod restore;
pub mod retention;
pub mod rollforward;
pub mod rows;
pub mod schema;
pub mod segment;
pub mod server;
pub mod snapshot;
pub mod spool;
pub mod swap;

pub use archive::{ArchiveEvent, ArchiveOptions, archive};
pub use catalog::Catalog;
pub use error::{MysqlError, Result};
pub use physical::check_rules;
pub use physical::{PhysicalOptions, backup_physical, restore_physical};
pub use pitr::Target;
pub use restore::{RestoreOptions, RestoreReport, restore, restore_then};
pub use retention::forget_rules;
pub use server::Dsn;
pub use snapshot::{Counters, SnapshotOptions, SnapshotResult, snapshot};

/// Kind of the points holding snapshots.
pub const KIND_SNAPSHOT: &str = "mysql";
/// Kind of the points holding physical copies (`mariadb-backup`) of a server.
pub const KIND_PHYSICAL: &str = "mysql-physical";
/// Kind of the points holding archived binlog.
pub const KIND_BINLOG: &str = "mysql-binlog";

/// Sessions dumping or loading in parallel by default: one per core, 2 to 8.
/// More sessions than cores only contend, since the server shares the cores
/// on the usual single host (measured in `bench/mysql.sh`).
pub fn default_parallel() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}
