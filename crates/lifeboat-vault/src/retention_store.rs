//! The vault lock configuration objects on storage (format spec §9a).
//!
//! On a directory, and on a bucket without S3 Object Lock, they are the
//! objects a listing of `vault-lock/` shows. On a bucket with Object Lock
//! (versioned) every *version* under `vault-lock/` counts, those a delete
//! marker hides included: a plain `DELETE` of the key, which any writer's
//! credentials may send, cannot make an immutable configuration disappear.
//! Lifeboat itself removes a configuration (during its cooling-off only) by
//! deleting its versions for good. Once a configuration is immutable, its
//! versions get a COMPLIANCE retention from the store ([`hold`]), extended as
//! writers read the configuration, so that nobody — whatever their
//! credentials — can delete them either.

use chrono::{DateTime, Duration, Utc};

use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::objectlock::ObjectLock;
use crate::point::LockMode;
use crate::retention::{DIR, LockState};

/// [`load`](crate::retention::load), and on a bucket with Object Lock the store's own COMPLIANCE
/// retention on the versions of every immutable configuration (see
/// `hold`). Writers read the configuration this way.
pub(crate) fn load_and_hold(
    vault: &crate::Vault,
    now: &dyn Fn() -> Result<DateTime<Utc>>,
) -> Result<LockState> {
    let state = crate::retention::load_lazy(vault, now)?;
    if state.objects.is_empty() {
        return Ok(state);
    }
    let now = now()?;
    let immutable: Vec<(Id, String)> = state
        .versions
        .iter()
        .filter_map(|(id, v)| Some((*id, v.clone()?)))
        .filter(|(id, _)| {
            state
                .objects
                .iter()
                .any(|(i, l)| i == id && l.is_immutable(now))
        })
        .collect();
    hold(vault, &immutable, now);
    Ok(state)
}

/// How long the store keeps an immutable configuration's versions from now;
/// renewed when less than half of it is left.
const HOLD_FOR: Duration = Duration::days(365);

/// One stored configuration object: its id, bytes and (on a versioned
/// bucket with Object Lock) its version.
pub(crate) struct Stored {
    pub(crate) id: Id,
    pub(crate) bytes: Vec<u8>,
    pub(crate) version: Option<String>,
}

/// The vault's Object Lock client when its bucket has Object Lock enabled.
/// A bucket that cannot say (credentials without
/// `s3:GetBucketObjectLockConfiguration`) is read as one without.
fn versioned(vault: &crate::Vault) -> Result<Option<ObjectLock>> {
    let Some(ol) = ObjectLock::for_location(vault.storage().loc())? else {
        return Ok(None);
    };
    match vault.object_lock_enabled(&ol) {
        Ok(true) => Ok(Some(ol)),
        Ok(false) => Ok(None),
        Err(e) => {
            tracing::info!(
                "reading the vault lock configuration as on a bucket without Object Lock: {e}"
            );
            Ok(None)
        }
    }
}

/// Every configuration object (every version of each, on a bucket with
/// Object Lock).
pub(crate) fn read_all(vault: &crate::Vault) -> Result<Vec<Stored>> {
    let mut out = Vec::new();
    if let Some(ol) = versioned(vault)? {
        for (path, version) in ol.versions(DIR)? {
            let Some(id) = path.strip_prefix(DIR).and_then(Id::parse) else {
                continue;
            };
            match ol.read_version(&path, &version) {
                Ok(bytes) => out.push(Stored {
                    id,
                    bytes,
                    version: Some(version),
                }),
                Err(VaultError::Missing { .. }) => continue, // removed meanwhile
                Err(e) => return Err(e),
            }
        }
        return Ok(out);
    }
    for l in vault.storage().list(DIR)? {
        let Some(id) = l.path.strip_prefix(DIR).and_then(Id::parse) else {
            continue;
        };
        match vault.storage().read(&l.path) {
            Ok(bytes) => out.push(Stored {
                id,
                bytes,
                version: None,
            }),
            Err(VaultError::Missing { .. }) => continue, // replaced meanwhile
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Removes one configuration object (one version of it for good, on a
/// bucket with Object Lock).
pub(crate) fn remove(vault: &crate::Vault, id: &Id, version: Option<&str>) -> Result<()> {
    let path = format!("{DIR}{id}");
    match (version, versioned(vault)?) {
        (Some(v), Some(ol)) => ol.delete_version(&path, v),
        _ => vault.storage().remove(&path),
    }
}

/// On a bucket with Object Lock: gives every version of an immutable
/// configuration a COMPLIANCE retention of [`HOLD_FOR`] from `now` (the
/// store's), unless it has more than half of that left. A failure (read-only
/// credentials) is a warning: the configuration is still read and applied.
pub(crate) fn hold(vault: &crate::Vault, immutable: &[(Id, String)], now: DateTime<Utc>) {
    if immutable.is_empty() {
        return;
    }
    let Ok(Some(ol)) = versioned(vault) else {
        return;
    };
    for (id, v) in immutable {
        let path = format!("{DIR}{id}");
        let left = ol.retained_until(&path, v).ok().flatten();
        if left.is_some_and(|t| t > now + HOLD_FOR / 2) {
            continue;
        }
        if let Err(e) = ol.retain_version(&path, Some(v), LockMode::Compliance, now + HOLD_FOR) {
            tracing::warn!(
                "the immutable vault lock configuration {path} could not be locked on the store ({e}); Lifeboat still applies it, but the store does not yet refuse its deletion"
            );
        }
    }
}
