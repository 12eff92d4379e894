//! Errors of the vault engine.
//!
//! Policy: every failure is one [`VaultError`] variant that says *what* failed and
//! *where* (the object or path), and [`VaultError::is_retryable`] tells a caller
//! whether trying again can help (a storage hiccup) or not (a wrong password, a
//! corrupt object). Messages end with what the user can do where that is known.

use std::path::PathBuf;

/// Result alias for the vault engine.
pub type Result<T, E = VaultError> = std::result::Result<T, E>;

/// A failure inside the vault engine.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No key file of the vault opens with the given password.
    #[error(
        "wrong password: no key of the vault at {location} opens with it (check the password given by LIFEBOAT_PASSWORD, --password-file or the prompt)"
    )]
    WrongPassword {
        /// Where the vault is.
        location: String,
    },
    /// No intact key file opens with the password, and some key files are
    /// damaged: the password may belong to one of those.
    #[error(
        "no intact key of the vault at {location} opens with this password, and {count} key file(s) are damaged ({damaged}); if the password belongs to a damaged key, put that key file back from a copy of the vault or open the vault with another password (`lifeboat vault check` names every damaged key file)"
    )]
    DamagedKey {
        /// Where the vault is.
        location: String,
        /// How many key files are damaged.
        count: usize,
        /// The first damaged key file and what is wrong with it.
        damaged: String,
    },
    /// The location holds no vault.
    #[error(
        "no vault at {location}: {reason} (check the --vault path or LIFEBOAT_VAULT; `lifeboat vault init` is only for making a new vault)"
    )]
    NoVault {
        /// Where a vault was expected.
        location: String,
        /// What is there instead.
        reason: String,
    },
    /// `init` on a location that already holds a vault.
    #[error("a vault already exists at {location}; refusing to overwrite it")]
    AlreadyExists {
        /// Where the vault is.
        location: String,
    },
    /// The vault was written by a newer format this build does not understand.
    #[error(
        "the vault at {location} has format version {found}; this lifeboat reads version {supported} (upgrade lifeboat)"
    )]
    UnsupportedVersion {
        /// Where the vault is.
        location: String,
        /// Version found in the vault's config.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// A vault location could not be understood.
    #[error("bad vault location {location:?}: {reason}")]
    BadLocation {
        /// The location as given.
        location: String,
        /// Why it is not usable.
        reason: String,
    },
    /// An object is damaged: its bytes do not match its name, do not decrypt, or do not parse.
    #[error("damaged object {object}: {reason}")]
    Corrupt {
        /// Storage path of the damaged object (or blob id within a pack).
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An object that must exist is missing.
    #[error("missing object {object}: {reason}")]
    Missing {
        /// Storage path or blob id.
        object: String,
        /// Who refers to it.
        reason: String,
    },
    /// A blob id is not in the vault's index.
    #[error("blob {0} is not in the vault's index (run `lifeboat vault check`)")]
    UnknownBlob(String),
    /// A recovery point could not be found.
    #[error("no recovery point matches {0:?} (see `lifeboat points list`)")]
    NoSuchPoint(String),
    /// A point named by id is of a kind the command does not handle.
    #[error(
        "recovery point {point} is a {kind:?} point (resource {resource:?}), not a {wanted} point"
    )]
    WrongKind {
        /// Short id of the point.
        point: String,
        /// Its kind.
        kind: String,
        /// Its resource.
        resource: String,
        /// The kinds the command handles.
        wanted: String,
    },
    /// A recovery point id prefix is ambiguous.
    #[error("recovery point prefix {0:?} is ambiguous; give more characters")]
    AmbiguousPoint(String),
    /// A key id could not be found.
    #[error("no key {0:?} in the vault (see `lifeboat key list`)")]
    NoSuchKey(String),
    /// The operation is refused because of a lock or retention.
    #[error("{0}")]
    Refused(String),
    /// Blobs of a point could not be read from the source of a copy.
    #[error(
        "could not read {count} blob(s) of recovery point {point} from the source vault at {location} (first: {first}); nothing of this point was written to the target (run `lifeboat vault check --read-data` on the source; `lifeboat vault heal --from` another copy mends it)"
    )]
    CopySource {
        /// Short id of the source point.
        point: String,
        /// The source vault.
        location: String,
        /// How many blobs failed.
        count: usize,
        /// The first failure.
        first: Box<VaultError>,
    },
    /// The session was asked to stop (SIGINT/SIGTERM, see `writer::stop_flag`).
    #[error(
        "interrupted: the data stored so far is kept and indexed, and the next backup reuses it"
    )]
    Interrupted,
    /// The storage below the vault failed.
    #[error("storage {op} {path:?} failed: {message}")]
    Storage {
        /// The operation: read, write, list, stat, remove.
        op: &'static str,
        /// Path of the object within the vault.
        path: String,
        /// What the storage said.
        message: String,
        /// Whether trying again may help.
        retryable: bool,
        /// Whether the storage ran out of space.
        no_space: bool,
    },
    /// A local file or directory operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The local path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl From<std::io::Error> for VaultError {
    /// A failure reading the source of a stream being backed up.
    fn from(e: std::io::Error) -> Self {
        VaultError::io("read", "", e)
    }
}

impl VaultError {
    /// Whether trying the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            VaultError::Storage {
                retryable: true,
                ..
            }
        )
    }

    /// Whether the failure is a full disk / exhausted quota.
    pub fn is_no_space(&self) -> bool {
        match self {
            VaultError::Storage { no_space, .. } => *no_space,
            VaultError::Io { source, .. } => source.raw_os_error() == Some(28),
            _ => false,
        }
    }

    /// Whether the failure means this process may not write to the vault's
    /// storage (permission denied, a read-only file system or copy).
    pub fn is_not_writable(&self) -> bool {
        const DENIED: [i32; 3] = [1, 13, 30]; // EPERM, EACCES, EROFS
        match self {
            VaultError::Io { source, .. } => {
                source.raw_os_error().is_some_and(|e| DENIED.contains(&e))
            }
            // OpenDAL keeps only the OS error's text; an object store says
            // AccessDenied (HTTP 403) to credentials that may only read.
            VaultError::Storage { message, .. } => [
                "ermission denied",
                "AccessDenied",
                "Read-only file system",
                "os error 1)",
                "os error 13",
                "os error 30",
            ]
            .iter()
            .any(|m| message.contains(m)),
            _ => false,
        }
    }

    /// Whether the failure means data in the vault is damaged or missing.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            VaultError::Corrupt { .. } | VaultError::Missing { .. } | VaultError::UnknownBlob(_)
        )
    }

    pub(crate) fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        VaultError::Corrupt {
            object: object.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VaultError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
