//! Handling one key: compare the source's current version with the state,
//! then copy, delete, or do nothing.
//!
//! ```text
//! stat source
//!   gone      → copied before and policy `replicate`? delete at destination : forget the key
//!   same version as recorded → destination still what we wrote? nothing : copy
//!   otherwise → open the source pinned to that version (If-Match / fstat)
//!               stream into the destination; the destination commits only if
//!               the source confirms one complete version, else: read again
//! ```

use crate::error::{BucketError, Result};
use crate::replicate::state::{Entry, fingerprint};
use crate::store::{Bucket, ObjectInfo};

/// What to do with keys deleted at the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletePolicy {
    /// Delete them at the destination too.
    Replicate,
    /// Keep them at the destination.
    Ignore,
}

/// What handling a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    Nothing,
    /// Copied one version.
    Copied {
        /// Fingerprint of the source version.
        src: u64,
        /// Fingerprint of the destination object.
        dst: u64,
        /// Bytes copied.
        bytes: u64,
        /// The source version's modification time (ns).
        modified_ns: i64,
    },
    /// Deleted at the destination.
    Deleted,
    /// Gone at the source and left at the destination (or never copied): forget it.
    Forget,
    /// Still the version that failed permanently before.
    StillParked,
}

/// Attempts when the source keeps changing under a copy.
const ATTEMPTS: usize = 5;

/// The destination's identity of an object: its ETag on S3, its version token on a directory.
pub fn dst_token(d: &ObjectInfo) -> String {
    d.etag
        .clone()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| d.version.clone())
}

/// Handles one key (see the module docs). `parked` is the fingerprint of a
/// version that failed permanently before: it is not tried again.
///
/// `hint` is the version a listing just showed: when the state does not
/// have it, the copy starts with a read pinned to it (no separate stat).
pub async fn handle(
    src: &Bucket,
    dst: &Bucket,
    key: &str,
    entry: Option<Entry>,
    policy: DeletePolicy,
    parked: Option<u64>,
    hint: Option<String>,
) -> (Option<u64>, Result<Action>) {
    let mut seen = None;
    if let Some(v) = hint {
        let fp = fingerprint(&v);
        if entry.is_none_or(|e| e.src != fp) && parked != Some(fp) {
            seen = Some(fp);
            match src.open_read(key, Some(&v)).await {
                Ok(reader) => {
                    let r = copy_open(dst, key, fp, reader).await;
                    if !matches!(r, Err(BucketError::Changed { .. })) {
                        return (seen, r);
                    }
                }
                Err(BucketError::Changed { .. } | BucketError::NotFound { .. }) => {}
                Err(e) => return (seen, Err(e)),
            }
        }
    }
    let r = handle_inner(src, dst, key, entry, policy, parked, &mut seen).await;
    (seen, r)
}

/// Streams an open source object into the destination.
async fn copy_open(
    dst: &Bucket,
    key: &str,
    fp: u64,
    mut reader: crate::store::ObjectReader,
) -> Result<Action> {
    let meta = reader.meta.clone();
    let (bytes, modified_ns) = (reader.info.size, reader.info.modified_ns);
    let d = dst.put(key, &meta, &mut reader).await?;
    Ok(Action::Copied {
        src: fp,
        dst: fingerprint(&dst_token(&d)),
        bytes,
        modified_ns,
    })
}

async fn handle_inner(
    src: &Bucket,
    dst: &Bucket,
    key: &str,
    entry: Option<Entry>,
    policy: DeletePolicy,
    parked: Option<u64>,
    seen: &mut Option<u64>,
) -> Result<Action> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let Some(info) = src.stat(key).await? else {
            return Ok(match entry {
                None => Action::Nothing,
                Some(e) if e.copied && policy == DeletePolicy::Replicate => {
                    dst.delete(key).await?;
                    Action::Deleted
                }
                Some(_) => Action::Forget,
            });
        };
        let fp = fingerprint(&info.version);
        *seen = Some(fp);
        if parked == Some(fp) {
            return Ok(Action::StillParked);
        }
        if let Some(e) = entry
            && e.src == fp
        {
            if !e.copied {
                return Ok(Action::Nothing); // there before the rule, unchanged
            }
            if let Some(d) = dst.stat(key).await?
                && fingerprint(&dst_token(&d)) == e.dst
            {
                return Ok(Action::Nothing);
            }
        }
        let reader = match src.open_read(key, Some(&info.version)).await {
            Ok(r) => r,
            Err(e @ (BucketError::Changed { .. } | BucketError::NotFound { .. })) => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        match copy_open(dst, key, fp, reader).await {
            Ok(a) => return Ok(a),
            Err(e @ BucketError::Changed { .. }) => {
                tracing::debug!("{key}: changed while copied; reading it again");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| BucketError::Changed {
        bucket: src.address().to_string(),
        key: key.to_string(),
    }))
}
