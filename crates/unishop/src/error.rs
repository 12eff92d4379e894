//! Errors of the shop's library. Policy: every error says what failed and
//! where; [`Error::is_unavailable`] tells a dependency that is away (the
//! database or the bucket does not answer: retrying later can help, the API
//! answers 503) from a permanent problem (a bad URL, a refused login, a bug).

use std::time::Duration;

/// Result with the shop's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bucket URL cannot be understood.
    #[error("bad bucket URL {url:?}: {reason}")]
    BadBucketUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database URL cannot be understood.
    #[error("bad database URL: {reason} (expected mysql://USER[:PASSWORD]@HOST[:PORT][/DATABASE])")]
    BadDatabaseUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// A bucket request failed.
    #[error("bucket {url}: {action} failed: {source}")]
    Bucket {
        /// The bucket URL.
        url: String,
        /// What was tried.
        action: String,
        /// The store's error.
        source: Box<opendal::Error>,
    },
    /// A bucket request got no answer in time.
    #[error("bucket {url}: {action} got no answer within {after:?}")]
    BucketTimeout {
        /// The bucket URL.
        url: String,
        /// What was tried.
        action: String,
        /// The timeout.
        after: Duration,
    },
    /// A key is not in the bucket.
    #[error("bucket {url}: {key} not found")]
    NotInBucket {
        /// The bucket URL.
        url: String,
        /// The key.
        key: String,
    },
    /// The database does not answer (refused, closed, timed out, shutting down).
    #[error("database unavailable: {reason}")]
    DatabaseUnavailable {
        /// What happened.
        reason: String,
        /// The server's error code, when it answered with one.
        code: Option<u16>,
    },
    /// The database answered with an error.
    #[error("database: {action} failed: {source}")]
    Database {
        /// What was tried.
        action: String,
        /// The driver's error.
        source: Box<mysql_async::Error>,
    },
    /// The database schema is newer than this program.
    #[error(
        "the database schema is at version {found}, newer than this unishop knows ({known}): use a newer unishop"
    )]
    SchemaTooNew {
        /// Highest version recorded in `schema_migrations`.
        found: u32,
        /// Highest version this program has.
        known: u32,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Anything else, with a message for the user.
    #[error("{0}")]
    Other(String),
}

/// Server error codes that mean "the database is not available to us now".
const UNAVAILABLE_CODES: &[u16] = &[
    1040, // too many connections
    1044, // access denied to the database
    1045, // access denied (bad user or password)
    1049, // unknown database
    1053, // server shutdown in progress
    1205, // lock wait timeout
    1927, // connection killed
    4031, // disconnected by the server because of inactivity
];

impl Error {
    /// True when a dependency does not answer (or refuses us) and trying again later can help.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::DatabaseUnavailable { .. } | Error::BucketTimeout { .. }
        ) || matches!(self, Error::Bucket { source, .. } if source.is_temporary())
    }

    /// Wraps a driver error from `action`, classifying availability.
    pub fn db(action: &str, e: mysql_async::Error) -> Error {
        use mysql_async::Error as E;
        let (unavailable, code) = match &e {
            E::Io(_) | E::Driver(_) => (true, None),
            E::Server(s) => (UNAVAILABLE_CODES.contains(&s.code), Some(s.code)),
            _ => (false, None),
        };
        if unavailable {
            Error::DatabaseUnavailable {
                reason: format!("{action}: {e}"),
                code,
            }
        } else {
            Error::Database {
                action: action.to_string(),
                source: Box::new(e),
            }
        }
    }

    /// True when the database refused our user or password (fix the URL; waiting will not help).
    pub fn is_refused_login(&self) -> bool {
        matches!(
            self,
            Error::DatabaseUnavailable {
                code: Some(1044 | 1045),
                ..
            }
        )
    }

    /// The server error code, when the database answered with one.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            Error::DatabaseUnavailable { code, .. } => *code,
            Error::Database { source, .. } => match source.as_ref() {
                mysql_async::Error::Server(s) => Some(s.code),
                _ => None,
            },
            _ => None,
        }
    }
}
