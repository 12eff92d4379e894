//! What an object store's refusal means, in words: throttling, refused
//! credentials, denied access, a missing bucket. Appended to the storage
//! error's text so a message says what failed, where, and what to do.

use opendal::ErrorKind;

use crate::storage::Location;

/// A hint for an S3 failure of `op`, or `None` when the text says enough.
pub(crate) fn explain(kind: ErrorKind, text: &str, op: &str, loc: &Location) -> Option<String> {
    let Location::S3 {
        bucket,
        endpoint,
        credentials,
        ..
    } = loc
    else {
        return None;
    };
    let at = endpoint.as_deref().unwrap_or("AWS S3");
    let creds = credentials.describe();
    if kind == ErrorKind::RateLimited || text.contains("SlowDown") {
        return Some(format!(
            " (the object store at {at} throttled the requests (503 SlowDown) and still did after {} attempts: lower the load on it — fewer jobs at once — or run again later; what was stored so far is kept)",
            crate::timeouts::ATTEMPTS
        ));
    }
    if text.contains("NoSuchBucket") {
        return Some(format!(
            " (the bucket {bucket:?} does not exist at {at}: check the bucket name in the vault URL, or create the bucket first)"
        ));
    }
    if kind == ErrorKind::PermissionDenied {
        if text.contains("InvalidAccessKeyId") || text.contains("SignatureDoesNotMatch") {
            return Some(format!(
                " (the object store at {at} refused the credentials ({creds}): check the access key id and the secret key)"
            ));
        }
        return Some(format!(
            " (access denied: the object store at {at} does not let the credentials ({creds}) {op} in bucket {bucket:?}; read-only credentials can copy from a vault but not change it — use credentials allowed to {op} there)"
        ));
    }
    None
}
