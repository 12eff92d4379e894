//! Changing the vault lock configuration: `vault configure` writes a new
//! one, and it may be removed, only during the cooling-off period.

use chrono::{DateTime, Duration, Utc};

use super::{DIR, LockState, MIN_COOLING_OFF, VaultLock, format_duration};
use crate::error::{Result, VaultError};
use crate::point::LockMode;

/// What `vault configure` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockSettings {
    /// Minimum retention of every new point.
    pub min_retention: Option<Duration>,
    /// Maximum retention.
    pub max_retention: Option<Duration>,
    /// Mode of the retention points get.
    pub mode: LockMode,
    /// Cooling-off period (at least [`MIN_COOLING_OFF`]).
    pub changeable_for: Duration,
}

/// The format version that introduced the vault lock configuration.
pub const LOCK_FORMAT_VERSION: u32 = 4;

/// Writes a new vault lock configuration, replacing the current one. Refused
/// once the current configuration's cooling-off has ended, and for settings
/// out of range. The old objects are removed after the new one is stored.
/// `now` is the storage's time (`Vault::now`).
pub fn configure(vault: &crate::Vault, s: &LockSettings, now: DateTime<Utc>) -> Result<VaultLock> {
    let state = crate::retention_store::load_and_hold(vault, &|| Ok(now))?;
    refuse_if_immutable(&state, "changed")?;
    if s.changeable_for < MIN_COOLING_OFF {
        return Err(VaultError::Refused(format!(
            "--changeable-for {} is too short: the cooling-off period must be at least {} (during it the configuration can still be changed or removed; afterwards nobody can)",
            format_duration(s.changeable_for),
            format_duration(MIN_COOLING_OFF)
        )));
    }
    if let (Some(min), Some(max)) = (s.min_retention, s.max_retention)
        && min > max
    {
        return Err(VaultError::Refused(format!(
            "--min-retention {} is longer than --max-retention {}",
            format_duration(min),
            format_duration(max)
        )));
    }
    if s.min_retention.is_none() && s.max_retention.is_none() {
        return Err(VaultError::Refused(
            "give --min-retention and/or --max-retention".into(),
        ));
    }
    let lock = VaultLock {
        version: 1,
        min_retention_s: s.min_retention.map(|d| d.num_seconds()),
        max_retention_s: s.max_retention.map(|d| d.num_seconds()),
        mode: s.mode,
        created: now,
        changeable_until: now + s.changeable_for,
    };
    // Software older than format 4 ignores `vault-lock/`: it must refuse the vault.
    if let Some(old) = crate::upgrade::raise_version(vault, LOCK_FORMAT_VERSION)? {
        tracing::warn!(
            "the vault's format version was raised from {old} to {LOCK_FORMAT_VERSION} (format spec §14): lifeboat releases that read only version {old} now refuse it, so none of them can write points without its lock"
        );
    }
    let (id, stored) = lock.seal(vault.key());
    vault.storage().write(&format!("{DIR}{id}"), stored)?;
    for (old, version) in state.versions.iter().filter(|(o, _)| *o != id) {
        crate::retention_store::remove(vault, old, version.as_deref())?;
    }
    vault.forget_lock_cache();
    Ok(lock)
}

/// Removes the vault lock configuration during its cooling-off period.
/// `now` is the storage's time (`Vault::now`).
pub fn remove(vault: &crate::Vault, now: DateTime<Utc>) -> Result<usize> {
    let state = crate::retention_store::load_and_hold(vault, &|| Ok(now))?;
    refuse_if_immutable(&state, "removed")?;
    for (id, version) in &state.versions {
        crate::retention_store::remove(vault, id, version.as_deref())?;
    }
    vault.forget_lock_cache();
    Ok(state.objects.len())
}

/// Refuses to change an immutable configuration.
fn refuse_if_immutable(state: &LockState, verb: &str) -> Result<()> {
    if let (true, Some(l)) = (state.immutable, &state.effective) {
        return Err(VaultError::Refused(format!(
            "the vault lock configuration is immutable since {} (its cooling-off period ended); it cannot be {verb} by anyone",
            l.changeable_until.to_rfc3339()
        )));
    }
    Ok(())
}
