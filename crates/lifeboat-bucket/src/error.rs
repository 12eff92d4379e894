//! Errors of the bucket protector and the replication engine.
//!
//! Policy (as in the vault engine): one [`BucketError`] variant per kind of
//! failure, naming the bucket and the object key, ending with what to do where
//! that is known. [`BucketError::is_retryable`] tells a failure that may go
//! away (an unreachable store, a 503, an object that changed while it was
//! read) from one that will not (a key a directory cannot hold, a denied
//! request), so the replicator knows whether to retry or to park the object.

/// Result alias of this crate.
pub type Result<T, E = BucketError> = std::result::Result<T, E>;

/// A failure of bucket access, a snapshot, a restore or replication.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The bucket address could not be understood.
    #[error("bad bucket address {address:?}: {reason}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// The bucket does not exist.
    #[error("no bucket at {bucket} ({reason})")]
    NoBucket {
        /// The bucket's address.
        bucket: String,
        /// Why it is believed missing.
        reason: String,
    },
    /// The object does not exist (any more).
    #[error("{bucket}: object {key:?} not found")]
    NotFound {
        /// The bucket's address.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// The object changed while it was being read; nothing was written.
    #[error(
        "{bucket}: object {key:?} changed while it was read; nothing was written (it is read again)"
    )]
    Changed {
        /// The bucket's address.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// This bucket cannot hold or address the key.
    #[error("{bucket}: key {key:?} cannot be stored here: {reason}")]
    BadKey {
        /// The bucket's address.
        bucket: String,
        /// Object key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The object store answered with an error or could not be reached.
    #[error("{bucket}: {op} {key:?} failed: {message}")]
    Store {
        /// The bucket's address.
        bucket: String,
        /// The operation: list, head, get, put, delete, tagging.
        op: &'static str,
        /// Object key (or prefix for a listing).
        key: String,
        /// What the store (or the network) said.
        message: String,
        /// Whether trying again may help.
        retryable: bool,
    },
    /// A local file operation on a directory bucket failed.
    #[error("{bucket}: {op} {key:?}: {source}")]
    Io {
        /// The bucket's address.
        bucket: String,
        /// What was done.
        op: &'static str,
        /// Object key.
        key: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The vault failed (snapshots and restores).
    #[error(transparent)]
    Vault(#[from] lifeboat_vault::VaultError),
    /// A recovery point is not a bucket point, or is malformed.
    #[error("{0}")]
    BadPoint(String),
    /// The destination is fenced: a recovery uses it in place (nothing was written).
    #[error(
        "{bucket} is fenced: {fence}; this replicator stops and writes nothing into it (after failback, once the replica is no longer in use, lift the fence with `lifeboat replicate fence --lift {bucket}`)"
    )]
    Fenced {
        /// The destination's address.
        bucket: String,
        /// What the fence says.
        fence: String,
    },
    /// Replication state could not be read or written.
    #[error("replication state {path}: {reason}")]
    State {
        /// The state file or directory.
        path: String,
        /// What went wrong, and what to do.
        reason: String,
    },
}

impl BucketError {
    /// Whether trying the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            BucketError::Changed { .. } => true,
            BucketError::Store { retryable, .. } => *retryable,
            BucketError::Io { source, .. } => {
                matches!(
                    source.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) || source.raw_os_error() == Some(28)
            } // a full disk may be freed
            BucketError::Vault(v) => v.is_retryable(),
            _ => false,
        }
    }

    /// Whether the failure is "the object is not there".
    pub fn is_not_found(&self) -> bool {
        matches!(self, BucketError::NotFound { .. })
    }
}
