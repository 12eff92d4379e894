//! Errors of the MySQL/MariaDB protector.
//!
//! Policy: every error names the server (redacted DSN) or the vault object it
//! concerns and, where the user can do something, says what. Errors of the
//! vault pass through unchanged. [`MysqlError::is_retryable`] tells a caller
//! whether trying again later can help (a server that went away) or not (a
//! missing privilege, a gap in the archive).

use std::path::PathBuf;

/// Result alias for the protector.
pub type Result<T, E = MysqlError> = std::result::Result<T, E>;

/// A failure of the MySQL/MariaDB protector.
#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] lifeboat_vault::VaultError),
    /// The DSN is malformed.
    #[error(
        "bad DSN {dsn:?}: {reason} (expected mysql://USER[:PASSWORD]@HOST[:PORT][?socket=/path])"
    )]
    BadDsn {
        /// The DSN as given (password redacted).
        dsn: String,
        /// What is wrong.
        reason: String,
    },
    /// The server cannot be reached.
    #[error("cannot connect to {server}: {reason}")]
    Connect {
        /// Redacted DSN.
        server: String,
        /// Why.
        reason: String,
    },
    /// The server refused the credentials.
    #[error(
        "{server} refused the login: {reason} (check the user and password in the DSN, or LIFEBOAT_MYSQL_PASSWORD)"
    )]
    Auth {
        /// Redacted DSN.
        server: String,
        /// The server's message.
        reason: String,
    },
    /// The login lacks a privilege.
    #[error(
        "{server}: {what} needs {grant}; as an administrator run: GRANT {grant} ON *.* TO {user}; ({detail})"
    )]
    Privilege {
        /// Redacted DSN.
        server: String,
        /// The operation.
        what: String,
        /// The missing grant(s).
        grant: String,
        /// The account, quoted for SQL.
        user: String,
        /// The server's message.
        detail: String,
    },
    /// A statement failed.
    #[error("{server}: {what} failed: {reason}")]
    Sql {
        /// Redacted DSN.
        server: String,
        /// What was being done.
        what: String,
        /// The server's (or driver's) message.
        reason: String,
        /// Whether the connection was lost (the server went away).
        lost: bool,
    },
    /// Binary logging is off, so the binlog cannot be archived.
    #[error(
        "binary logging is off on {server}: the binlog archive needs it. Start the server with --log-bin=PATH --binlog-format=ROW --server-id=N (or log_bin, binlog_format=ROW and server_id under [mysqld] in my.cnf) and restart it; snapshots work without it"
    )]
    BinlogOff {
        /// Redacted DSN.
        server: String,
    },
    /// Binlogs were purged before they were archived.
    #[error(
        "GAP in the binlog archive of {resource}: {detail}. Changes in that gap cannot be recovered; take a new snapshot now (`lifeboat backup mysql`) so point-in-time recovery is possible again from it"
    )]
    Gap {
        /// The resource.
        resource: String,
        /// Which files are missing.
        detail: String,
    },
    /// The target database is not empty.
    #[error(
        "target database `{database}` on {server} is not empty ({objects} tables/views); restore into an empty or new database (--rename {database}=NEW), or replace it (`restore mysql --force`; `jobs restore-database --replace`, the API's `replace`)"
    )]
    TargetNotEmpty {
        /// Redacted DSN.
        server: String,
        /// Database name on the target.
        database: String,
        /// How many objects it holds.
        objects: u64,
    },
    /// Point-in-time recovery is not possible for the time asked.
    #[error("cannot restore {resource} to {at}: {reason}")]
    NotRestorable {
        /// The resource.
        resource: String,
        /// The time or position asked for.
        at: String,
        /// Why, and what is possible instead.
        reason: String,
    },
    /// The call was wrong.
    #[error("{0}")]
    Usage(String),
    /// A recovery point is not what was expected.
    #[error("recovery point {point}: {reason}")]
    BadPoint {
        /// Point id (short).
        point: String,
        /// What is wrong.
        reason: String,
    },
    /// A link of an incremental physical point's chain is missing or damaged.
    #[error(
        "physical point {point}, the base of incremental point {needed_by}: {reason}; {needed_by} cannot be restored without it. Restore another point whose chain is whole (`lifeboat points list`; `lifeboat vault check` names every broken chain), and take a new full point (`lifeboat backup mysql --physical`) for later incrementals to build on"
    )]
    BrokenChain {
        /// The missing or damaged link (short id).
        point: String,
        /// The incremental point that needs it (short id).
        needed_by: String,
        /// What is wrong with the link.
        reason: String,
    },
    /// A helper program (mariadb-binlog, mariadb) failed or is missing.
    #[error("{program}: {reason}")]
    Tool {
        /// The program.
        program: String,
        /// What happened, and what to do.
        reason: String,
    },
    /// A local file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// A restore failed before it replaced anything.
    #[error(
        "{cause}. Nothing was replaced: {databases} on the server is exactly as before (the restore loaded into a shadow database, which is removed)"
    )]
    Untouched {
        /// The target databases, quoted.
        databases: String,
        /// Why the restore failed.
        cause: Box<MysqlError>,
    },
    /// A restore failed after it swapped tables in, and putting the targets
    /// back failed too.
    #[error(
        "{server}: the restore failed and the target databases could not be put back: {reason}. Move the old tables back with RENAME TABLE, then drop the `_lbnew_`/`_lbold_` databases"
    )]
    Stranded {
        /// Redacted DSN.
        server: String,
        /// What failed, and where the old tables are.
        reason: String,
    },
    /// The binlog spool is not private, or was removed or replaced.
    #[error("binlog spool {}: {reason}", path.display())]
    Spool {
        /// The directory.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A physical restore failed; what it had written was removed.
    #[error(
        "{cause}. The restore removed what it had written into {}: nothing half-restored is left there",
        datadir.display()
    )]
    RestoreRemoved {
        /// The data directory asked for.
        datadir: PathBuf,
        /// Why the restore failed.
        cause: Box<MysqlError>,
    },
    /// The run was interrupted (SIGINT/SIGTERM) before it finished.
    #[error("interrupted: no recovery point was written")]
    Interrupted,
}

impl MysqlError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MysqlError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether trying again later may help (the server went away, a network
    /// failure, a retryable storage failure).
    pub fn is_retryable(&self) -> bool {
        match self {
            MysqlError::Connect { .. } => true,
            MysqlError::Sql { lost, .. } => *lost,
            MysqlError::Vault(v) => v.is_retryable(),
            MysqlError::Untouched { cause, .. } => cause.is_retryable(),
            _ => false,
        }
    }
}
