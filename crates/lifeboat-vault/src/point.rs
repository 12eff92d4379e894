//! Recovery points: the last object a backup writes, naming its root tree.
//!
//! Stored at `points/<64 hex>` (BLAKE3 of the stored bytes) as a sealed box
//! (aad `lifeboat:point`) of JSON. A point exists once this object exists;
//! everything a backup wrote before it is invisible until then.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::error::{Result, VaultError};
use crate::id::Id;

const AAD: &[u8] = b"lifeboat:point";

/// Figures of the backup that made a point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Files (and other non-directory entries) in the point.
    pub files: u64,
    /// Directories in the point.
    pub dirs: u64,
    /// Logical size of everything in the point.
    pub size: u64,
    /// Bytes read from the resource during this backup.
    pub bytes_read: u64,
    /// Plaintext bytes of blobs that were new to the vault.
    pub bytes_new: u64,
    /// Bytes written to storage for new blobs (compressed, encrypted).
    pub bytes_stored: u64,
    /// New blobs.
    pub blobs_new: u64,
    /// Wall time of the backup.
    pub duration_s: f64,
}

/// Lock mode of a point's retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Deletable before `retain_until` only with an explicit override.
    Governance,
    /// Not deletable by anyone before `retain_until`.
    Compliance,
}

/// Retention lock of a point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The point must be kept until then.
    pub retain_until: DateTime<Utc>,
    /// How strictly.
    pub mode: LockMode,
}

/// Where a copied point came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// Vault id of the source.
    pub vault: String,
    /// Point id in the source vault.
    pub point: Id,
}

/// An immutable, typed, timestamped backup of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    /// Point format version (1).
    pub version: u32,
    /// When the backup started.
    pub time: DateTime<Utc>,
    /// Name of the resource protected.
    pub resource: String,
    /// Kind of resource: files, volume, mysql, bucket, instance.
    pub kind: String,
    /// Host the backup ran on.
    pub host: String,
    /// User the backup ran as.
    #[serde(default)]
    pub user: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Paths (or other sources) the point covers.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Root tree.
    pub tree: Id,
    /// The point this one was made incrementally from.
    #[serde(default)]
    pub parent: Option<Id>,
    /// Figures of the backup.
    #[serde(default)]
    pub summary: Summary,
    /// Retention lock, if any.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Lineage, when copied from another vault.
    #[serde(default)]
    pub copied_from: Option<Lineage>,
    /// Protector-specific facts (e.g. binlog coordinates).
    #[serde(default)]
    pub meta: serde_json::Value,
}

impl RecoveryPoint {
    /// A point for `resource` of `kind` with root `tree`, stamped now.
    pub fn new(resource: &str, kind: &str, tree: Id) -> RecoveryPoint {
        RecoveryPoint {
            version: 1,
            time: Utc::now(),
            resource: resource.to_string(),
            kind: kind.to_string(),
            host: crate::host_name(),
            user: crate::user_name(),
            tags: Vec::new(),
            paths: Vec::new(),
            tree,
            parent: None,
            summary: Summary::default(),
            retention: None,
            copied_from: None,
            meta: serde_json::Value::Null,
        }
    }

    /// Seals; returns (id, stored bytes).
    pub fn seal(&self, key: &MasterKey) -> (Id, Vec<u8>) {
        let json = serde_json::to_vec(self).expect("points serialize");
        let stored = key.seal(AAD, &json);
        (Id::of_stored(&stored), stored)
    }

    /// Verifies and opens a stored point.
    pub fn open(key: &MasterKey, id: &Id, stored: &[u8]) -> Result<RecoveryPoint> {
        let what = point_path(id);
        if Id::of_stored(stored) != *id {
            return Err(VaultError::corrupt(
                &what,
                "content does not match its name",
            ));
        }
        let json = key.open(AAD, stored, &what)?;
        RecoveryPoint::decode(&json, &what)
    }

    /// Decodes a point's plaintext JSON; `what` names it for the error.
    pub fn decode(json: &[u8], what: &str) -> Result<RecoveryPoint> {
        let p: RecoveryPoint = serde_json::from_slice(json)
            .map_err(|e| VaultError::corrupt(what, format!("bad JSON: {e}")))?;
        if p.version != 1 {
            return Err(VaultError::corrupt(
                what,
                format!("unknown point version {}", p.version),
            ));
        }
        Ok(p)
    }

    /// Whether retention forbids deleting the point now (with or without the
    /// governance override).
    pub fn is_locked(&self, now: DateTime<Utc>, override_governance: bool) -> bool {
        match &self.retention {
            Some(r) if r.retain_until > now => {
                !(override_governance && r.mode == LockMode::Governance)
            }
            _ => false,
        }
    }
}

/// Storage path of a point.
pub fn point_path(id: &Id) -> String {
    format!("points/{id}")
}
