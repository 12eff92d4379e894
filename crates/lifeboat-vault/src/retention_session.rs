//! A vault handle's retention state: what its session asked for
//! (`--retain-for`, `--lock`), the vault lock configuration read once, and the
//! [`Vault`] methods that use them when points are written or removed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::Vault;
use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::point::{RecoveryPoint, point_path};
use crate::retention::{self, RetentionRequest, VaultLock};

/// Shared by clones of one vault handle.
#[derive(Debug, Clone, Default)]
pub struct Session {
    request: Arc<Mutex<Option<RetentionRequest>>>,
    lock: Arc<Mutex<Option<Option<VaultLock>>>>,
    object_lock: Arc<Mutex<Option<bool>>>,
}

impl Vault {
    /// Now, on the storage's clock (`Storage::now`): the time every
    /// retention and lock decision is made at, never this machine's clock.
    pub fn now(&self) -> Result<DateTime<Utc>> {
        self.storage().now()
    }

    /// Asks for this retention on every point this handle (and its clones)
    /// writes from now on; the vault lock configuration applies on top.
    /// Checked at once against the configuration, so that a backup fails
    /// before it reads anything, not at its commit.
    pub fn set_retention_request(&self, request: Option<RetentionRequest>) -> Result<()> {
        if let Some(r) = &request {
            let lock = self.lock_config()?;
            retention::resolve(None, Some(r), lock.as_ref(), self.now()?)
                .map_err(VaultError::Refused)?;
        }
        *self.ret().request.lock().expect("lock") = request;
        Ok(())
    }

    /// The vault lock configuration in effect (read once per handle).
    pub fn lock_config(&self) -> Result<Option<VaultLock>> {
        let mut cache = self.ret().lock.lock().expect("lock");
        if let Some(l) = cache.as_ref() {
            return Ok(l.clone());
        }
        let l = crate::retention_store::load_and_hold(self, &|| self.now())?.effective;
        *cache = Some(l.clone());
        Ok(l)
    }

    /// Whether the vault's bucket has S3 Object Lock enabled (asked once).
    pub(crate) fn object_lock_enabled(&self, ol: &crate::objectlock::ObjectLock) -> Result<bool> {
        let mut c = self.ret().object_lock.lock().expect("lock");
        if let Some(b) = *c {
            return Ok(b);
        }
        let b = ol.enabled()?;
        if !b {
            tracing::info!(
                "the bucket of {} has no S3 Object Lock: point retention is enforced by Lifeboat only",
                self.storage().location()
            );
        }
        *c = Some(b);
        Ok(b)
    }

    /// After a point under retention is stored: on an S3 bucket with Object
    /// Lock, the same retention on its objects (`objectlock::protect`).
    pub(crate) fn protect_point(&self, id: &Id, point: &RecoveryPoint) -> Result<()> {
        if point.retention.is_none() {
            return Ok(());
        }
        crate::objectlock::protect(self, id, point).map_err(|e| {
            VaultError::Refused(format!(
                "recovery point {} was written, but S3 Object Lock retention could not be set on its objects: {e}; fix the cause and run `lifeboat points lock {} --retain-until DATE` to set it again",
                id.short(),
                id.short()
            ))
        })?;
        Ok(())
    }

    /// Drops the cached configuration (after `vault configure`).
    pub(crate) fn forget_lock_cache(&self) {
        *self.ret().lock.lock().expect("lock") = None;
    }

    /// `point` with its retention resolved for a write now.
    pub(crate) fn with_retention(&self, point: &RecoveryPoint) -> Result<RecoveryPoint> {
        let request = *self.ret().request.lock().expect("lock");
        let lock = self.lock_config()?;
        let mut p = point.clone();
        if request.is_none() && lock.is_none() {
            return Ok(p); // nothing to resolve: the storage's clock is not asked
        }
        p.retention = retention::resolve(
            point.retention.as_ref(),
            request.as_ref(),
            lock.as_ref(),
            self.now()?,
        )
        .map_err(VaultError::Refused)?;
        Ok(p)
    }

    /// Removes `old`, which `by` (already written) replaces, e.g. binlog
    /// seals folded into a rollup. Refused unless `by` keeps `old`'s lock at
    /// least as long and as strictly.
    pub fn remove_superseded_point(&self, old: &Id, by: &RecoveryPoint) -> Result<()> {
        let p = match self.read_point(old) {
            Ok(p) => p,
            Err(VaultError::Missing { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if p.retention.is_some() && !retention::covers(by, &p, self.now()?) {
            return self.remove_point(old, false);
        }
        self.storage().remove(&point_path(old))
    }

    /// [`Vault::point_times`], or none (with a warning) when the storage
    /// cannot give them: points are then judged by their own times.
    pub(crate) fn point_times_or_none(&self) -> HashMap<Id, DateTime<Utc>> {
        self.point_times().unwrap_or_else(|e| {
            tracing::warn!(
                "cannot read the storage's times of the points ({e}); judging points by their own times"
            );
            HashMap::new()
        })
    }

    /// The time the storage says each point object was last written (file
    /// mtime, S3 `LastModified`): a time the writing client cannot choose.
    /// Points whose storage gives no time are absent.
    pub fn point_times(&self) -> Result<HashMap<Id, DateTime<Utc>>> {
        Ok(self
            .storage()
            .list_modified("points/")?
            .into_iter()
            .filter_map(|(path, t)| Some((path.strip_prefix("points/").and_then(Id::parse)?, t?)))
            .collect())
    }
}
