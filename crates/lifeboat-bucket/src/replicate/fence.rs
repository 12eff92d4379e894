//! The replicator fence: a recovery that uses a replica in place writes
//! `.lifeboat-fence` into it, naming the stack, the site, the recovery and
//! the time. A replicator checks its destination's fence before its first
//! listing and before each batch of writes, and stops with
//! [`BucketError::Fenced`] instead of writing into a replica the recovered
//! stack now serves from (the old primary's replicator, back after a
//! partition, would otherwise overwrite and delete the new primary's data).
//!
//! The fence is never listed (so never snapshotted nor replicated, and the
//! replicator's own deletes never reach it). An operator lifts it after
//! failback with `lifeboat replicate fence --lift BUCKET`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{BucketError, Result};
use crate::store::{Bucket, BytesSource, ObjectMeta, Source};

/// The fence's key in a bucket (never listed).
pub const FENCE_KEY: &str = ".lifeboat-fence";

/// What a fence says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fence {
    /// The stack recovered onto this replica.
    pub stack: String,
    /// The site it was recovered into.
    pub site: String,
    /// The member (bucket resource) this replica now is.
    pub member: String,
    /// When that recovery started (RFC 3339): names the recovery.
    pub recovery: String,
    /// When the fence was written (RFC 3339).
    pub fenced_at: String,
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the recovery of stack `{}` into site `{}` (started {}) uses it in place as `{}` since {}",
            self.stack, self.site, self.recovery, self.member, self.fenced_at
        )
    }
}

/// Writes `fence` into `bucket`.
pub async fn write(bucket: &Bucket, fence: &Fence) -> Result<()> {
    let body = serde_json::to_vec_pretty(fence).expect("a fence serializes");
    let meta = ObjectMeta {
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    bucket
        .put(FENCE_KEY, &meta, &mut BytesSource(Some(Bytes::from(body))))
        .await?;
    bucket.sync().await
}

/// The fence of `bucket`, if it has one (a fence that cannot be parsed
/// still fences: its text is kept in `recovery`).
pub async fn read(bucket: &Bucket) -> Result<Option<Fence>> {
    if bucket.stat(FENCE_KEY).await?.is_none() {
        return Ok(None);
    }
    let mut r = match bucket.open_read(FENCE_KEY, None).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut body = Vec::new();
    while let Some(chunk) = r.next_chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    Ok(Some(serde_json::from_slice(&body).unwrap_or_else(|_| {
        Fence {
            stack: "?".into(),
            site: "?".into(),
            member: "?".into(),
            recovery: String::from_utf8_lossy(&body).trim().to_string(),
            fenced_at: "?".into(),
        }
    })))
}

/// Fails with [`BucketError::Fenced`] when `bucket` has a fence.
pub async fn check(bucket: &Bucket) -> Result<()> {
    match read(bucket).await? {
        None => Ok(()),
        Some(f) => Err(BucketError::Fenced {
            bucket: bucket.address().to_string(),
            fence: f.to_string(),
        }),
    }
}

/// Removes the fence of `bucket` (after failback); `false` when it had none.
pub async fn lift(bucket: &Bucket) -> Result<bool> {
    let had = bucket.stat(FENCE_KEY).await?.is_some();
    bucket.delete(FENCE_KEY).await?;
    bucket.sync().await?;
    Ok(had)
}
