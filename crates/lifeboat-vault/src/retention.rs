//! Retention and lock: how long a recovery point must be kept, and how strictly.
//!
//! A point's `retention` (`retain_until` and a [`LockMode`]) is set when it is
//! written: from what the writing session asked for ([`RetentionRequest`], e.g.
//! `--retain-for 30d --lock compliance`) and from the vault's lock
//! configuration ([`VaultLock`]: minimum and maximum retention, a mode), which
//! is applied to every point a writer commits ([`resolve`]). The engine then
//! refuses to delete a locked point (`Vault::remove_point`), to shorten or
//! weaken a lock ([`extend`]), and to change a vault lock configuration after
//! its cooling-off period ([`configure`]).
//!
//! The vault lock configuration is stored as sealed objects
//! `vault-lock/<BLAKE3 of the stored bytes>` (spec §9a). Several may exist (a
//! writer with the password can always add one); the effective configuration
//! is chosen so that adding objects can never weaken an immutable one: the
//! **strictest merge** of all configurations whose cooling-off has ended, or,
//! while none has, the newest one. On a bucket with S3 Object Lock every
//! version of them counts and immutable ones are locked on the store
//! (`retention_store`). Every "now" passed in is the storage's time
//! (`Vault::now`, `clock.rs`), never this machine's clock.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::point::{LockMode, RecoveryPoint, Retention, point_path};

mod lock_config;
pub use lock_config::{LOCK_FORMAT_VERSION, LockSettings, configure, remove};

const AAD: &[u8] = b"lifeboat:vault-lock";
/// Prefix of the vault lock configuration objects.
pub const DIR: &str = "vault-lock/";
/// The shortest cooling-off period a vault lock configuration may have (as
/// AWS Backup Vault Lock requires).
pub const MIN_COOLING_OFF: Duration = Duration::days(3);

/// Parses a retention duration (`lifeboat_vault::duration`'s grammar, e.g.
/// `30d`, `10y`): whole seconds, at most 1000 years.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let secs = crate::duration::whole_seconds(s)?;
    if secs > 1000 * 365 * 86_400 {
        return Err(format!("{s:?} must be positive and at most 1000 years"));
    }
    Ok(Duration::seconds(secs as i64))
}

/// Prints a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let s = d.num_seconds();
    for (unit, per) in [
        ("y", 365 * 86_400),
        ("w", 7 * 86_400),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
    ] {
        if s != 0 && s % per == 0 {
            return format!("{}{unit}", s / per);
        }
    }
    format!("{s}s")
}

impl LockMode {
    /// Parses `governance` or `compliance`.
    pub fn parse(s: &str) -> std::result::Result<LockMode, String> {
        match s {
            "governance" => Ok(LockMode::Governance),
            "compliance" => Ok(LockMode::Compliance),
            _ => Err(format!(
                "lock mode {s:?} is unknown: use governance or compliance"
            )),
        }
    }

    /// The stricter of two modes (compliance over governance).
    pub fn stricter(self, other: LockMode) -> LockMode {
        if self == LockMode::Compliance || other == LockMode::Compliance {
            LockMode::Compliance
        } else {
            LockMode::Governance
        }
    }

    /// `governance` or `compliance`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }
}

impl Retention {
    /// The retention a backup or copy asked for with `--retain-for` and
    /// `--lock` (see [`RetentionRequest::from_flags`]).
    pub fn from_flags(
        retain_for: Option<&str>,
        lock: Option<&str>,
    ) -> std::result::Result<Option<RetentionRequest>, String> {
        RetentionRequest::from_flags(retain_for, lock)
    }

    /// Both retentions merged: the later date, the stricter mode.
    pub fn merge(&self, other: &Retention) -> Retention {
        Retention {
            retain_until: self.retain_until.max(other.retain_until),
            mode: self.mode.stricter(other.mode),
        }
    }
}

/// What a writing session asks for its points (`--retain-for`, `--lock`);
/// the vault's configuration is applied on top when each point is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionRequest {
    /// Keep each point this long after it is written.
    pub retain_for: Option<Duration>,
    /// Lock mode (governance when only a duration is given).
    pub mode: Option<LockMode>,
}

impl RetentionRequest {
    /// From the command-line flags; `None` when neither is given.
    pub fn from_flags(
        retain_for: Option<&str>,
        lock: Option<&str>,
    ) -> std::result::Result<Option<RetentionRequest>, String> {
        let retain_for = retain_for
            .map(parse_duration)
            .transpose()
            .map_err(|e| format!("--retain-for: {e}"))?;
        let mode = lock
            .map(LockMode::parse)
            .transpose()
            .map_err(|e| format!("--lock: {e}"))?;
        if retain_for.is_none() && mode.is_none() {
            return Ok(None);
        }
        Ok(Some(RetentionRequest { retain_for, mode }))
    }
}

/// A vault lock configuration (one `vault-lock/…` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultLock {
    /// Object version (1).
    pub version: u32,
    /// Every new point is kept at least this long (seconds) after it is written.
    #[serde(default)]
    pub min_retention_s: Option<i64>,
    /// No point may be retained longer than this (seconds) from now.
    #[serde(default)]
    pub max_retention_s: Option<i64>,
    /// The mode of the retention this configuration gives points (a point's
    /// own mode is never weaker).
    pub mode: LockMode,
    /// When this configuration was written.
    pub created: DateTime<Utc>,
    /// Until then it may be changed or removed; afterwards it is immutable.
    pub changeable_until: DateTime<Utc>,
}

impl VaultLock {
    /// Minimum retention.
    pub fn min_retention(&self) -> Option<Duration> {
        self.min_retention_s.map(Duration::seconds)
    }

    /// Maximum retention.
    pub fn max_retention(&self) -> Option<Duration> {
        self.max_retention_s.map(Duration::seconds)
    }

    /// Whether its cooling-off period has ended.
    pub fn is_immutable(&self, now: DateTime<Utc>) -> bool {
        self.changeable_until <= now
    }

    fn seal(&self, key: &crate::crypto::MasterKey) -> (Id, Vec<u8>) {
        let stored = key.seal(AAD, &serde_json::to_vec(self).expect("json"));
        (Id::of_stored(&stored), stored)
    }

    fn open(key: &crate::crypto::MasterKey, id: &Id, stored: &[u8]) -> Result<VaultLock> {
        let what = format!("{DIR}{id}");
        if Id::of_stored(stored) != *id {
            return Err(VaultError::corrupt(
                &what,
                "content does not match its name",
            ));
        }
        let json = key.open(AAD, stored, &what)?;
        let l: VaultLock = serde_json::from_slice(&json)
            .map_err(|e| VaultError::corrupt(&what, format!("bad JSON: {e}")))?;
        if l.version != 1 {
            return Err(VaultError::corrupt(
                &what,
                format!("unknown version {}", l.version),
            ));
        }
        Ok(l)
    }

    /// The strictest merge of two configurations: the longer minimum, the
    /// shorter maximum, the stricter mode, the later end of cooling-off.
    fn strictest(&self, o: &VaultLock) -> VaultLock {
        let pick = |a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64| match (a, b) {
            (Some(x), Some(y)) => Some(f(x, y)),
            (x, y) => x.or(y),
        };
        VaultLock {
            version: 1,
            min_retention_s: pick(self.min_retention_s, o.min_retention_s, i64::max),
            max_retention_s: pick(self.max_retention_s, o.max_retention_s, i64::min),
            mode: self.mode.stricter(o.mode),
            created: self.created.min(o.created),
            changeable_until: self.changeable_until.max(o.changeable_until),
        }
    }
}

/// The vault lock configuration objects and the one in effect.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LockState {
    /// The configuration in effect, if any.
    pub effective: Option<VaultLock>,
    /// Whether it can no longer be changed.
    pub immutable: bool,
    /// Every object read, by id.
    #[serde(skip)]
    pub objects: Vec<(Id, VaultLock)>,
    /// Every stored object by id, with its version on a bucket with Object
    /// Lock (where each version counts, see `retention_store`).
    #[serde(skip)]
    pub(crate) versions: Vec<(Id, Option<String>)>,
}

/// Reads the vault lock configuration. A damaged object is an error (it may
/// have been the configuration in effect): nothing is written under a lock
/// configuration the engine cannot read.
/// `now` is the storage's time (`Vault::now`).
pub fn load(vault: &crate::Vault, now: DateTime<Utc>) -> Result<LockState> {
    load_lazy(vault, &|| Ok(now))
}

/// [`load`], asking `now` only when there is a configuration to judge.
pub(crate) fn load_lazy(
    vault: &crate::Vault,
    now: &dyn Fn() -> Result<DateTime<Utc>>,
) -> Result<LockState> {
    let mut objects: Vec<(Id, VaultLock)> = Vec::new();
    let mut versions = Vec::new();
    for s in crate::retention_store::read_all(vault)? {
        let l = VaultLock::open(vault.key(), &s.id, &s.bytes)?;
        if !objects.iter().any(|(i, _)| *i == s.id) {
            objects.push((s.id, l));
        }
        versions.push((s.id, s.version));
    }
    if objects.is_empty() {
        return Ok(LockState::default());
    }
    let now = now()?;
    let immutable: Vec<&VaultLock> = objects
        .iter()
        .map(|(_, l)| l)
        .filter(|l| l.is_immutable(now))
        .collect();
    let (effective, is_immutable) = if let Some(first) = immutable.first() {
        let merged = immutable[1..]
            .iter()
            .fold((*first).clone(), |acc, l| acc.strictest(l));
        (Some(merged), true)
    } else {
        let newest = objects
            .iter()
            .map(|(_, l)| l)
            .max_by_key(|l| l.created)
            .cloned();
        (newest, false)
    };
    Ok(LockState {
        effective,
        immutable: is_immutable,
        objects,
        versions,
    })
}

/// The retention a point gets when it is written now: its own (a copy keeps
/// the source's), merged with the session's request and the vault's
/// configuration. Refused when the request is outside the vault's range.
pub fn resolve(
    existing: Option<&Retention>,
    request: Option<&RetentionRequest>,
    vault_lock: Option<&VaultLock>,
    now: DateTime<Utc>,
) -> std::result::Result<Option<Retention>, String> {
    let mut out = existing.cloned();
    if let Some(r) = request {
        let Some(d) = r.retain_for.or(vault_lock.and_then(|l| l.min_retention())) else {
            return Err(
                "--lock needs --retain-for DURATION (the vault has no minimum retention to use)"
                    .into(),
            );
        };
        if let Some(l) = vault_lock {
            if let Some(min) = l.min_retention().filter(|m| d < *m) {
                return Err(format!(
                    "--retain-for {} is shorter than the vault's minimum retention {} (lifeboat vault configure --show)",
                    format_duration(d),
                    format_duration(min)
                ));
            }
            if let Some(max) = l.max_retention().filter(|m| d > *m) {
                return Err(format!(
                    "--retain-for {} is longer than the vault's maximum retention {} (lifeboat vault configure --show)",
                    format_duration(d),
                    format_duration(max)
                ));
            }
        }
        let asked = Retention {
            retain_until: now + d,
            mode: r.mode.unwrap_or(LockMode::Governance),
        };
        out = Some(out.map_or(asked.clone(), |o| o.merge(&asked)));
    }
    if let Some(l) = vault_lock {
        if let Some(min) = l.min_retention() {
            let floor = Retention {
                retain_until: now + min,
                mode: l.mode,
            };
            out = Some(out.map_or(floor.clone(), |o| o.merge(&floor)));
        } else if let Some(o) = out.as_mut() {
            o.mode = o.mode.stricter(l.mode);
        }
    }
    Ok(out)
}

/// Extends (or, for a governance lock with `bypass_governance`, changes) a
/// point's retention to `until` with `mode` (default: its current mode, or
/// governance). A compliance lock is never shortened or weakened. Points are
/// named by their content, so the point is rewritten under a new id and the
/// old object removed; returns the new id (the old one when nothing changed).
pub fn extend(
    vault: &crate::Vault,
    id: &Id,
    until: DateTime<Utc>,
    mode: Option<LockMode>,
    bypass_governance: bool,
) -> Result<Id> {
    let now = vault.now()?;
    let mut p = vault.read_point(id)?;
    let old = p.retention.clone().filter(|r| r.retain_until > now);
    let mode = mode.unwrap_or(old.as_ref().map_or(LockMode::Governance, |r| r.mode));
    if let Some(o) = &old {
        let weaker = until < o.retain_until || (o.mode == LockMode::Compliance && mode != o.mode);
        if weaker && (o.mode == LockMode::Compliance || !bypass_governance) {
            return Err(VaultError::Refused(format!(
                "recovery point {} is locked ({}) until {}; a lock can be extended, never shortened or weakened{}",
                id.short(),
                o.mode.as_str(),
                o.retain_until.to_rfc3339(),
                if o.mode == LockMode::Governance {
                    " (a governance lock: with --bypass-governance)"
                } else {
                    ""
                }
            )));
        }
    }
    if until <= now {
        return Err(VaultError::Refused(format!(
            "the new retention date {} is not in the future",
            until.to_rfc3339()
        )));
    }
    if let Some(max) = vault.lock_config()?.and_then(|l| l.max_retention())
        && until > now + max
    {
        return Err(VaultError::Refused(format!(
            "{} is beyond the vault's maximum retention {} from now",
            until.to_rfc3339(),
            format_duration(max)
        )));
    }
    p.retention = Some(Retention {
        retain_until: until,
        mode,
    });
    let (new_id, stored) = p.seal(vault.key());
    if new_id == *id {
        vault.protect_point(&new_id, &p)?; // again, e.g. after it failed
        return Ok(new_id);
    }
    vault.storage().write(&point_path(&new_id), stored)?;
    vault.protect_point(&new_id, &p)?;
    // The new object covers the old one: same content, a retention at
    // least as long and as strict (checked above).
    vault.storage().remove(&point_path(id))?;
    Ok(new_id)
}

/// Whether `by` may replace `old` (a binlog rollup replacing its seals, a
/// lock extension): it keeps the old point's lock at least as long and as
/// strictly.
pub fn covers(by: &RecoveryPoint, old: &RecoveryPoint, now: DateTime<Utc>) -> bool {
    match old.retention.as_ref().filter(|r| r.retain_until > now) {
        None => true,
        Some(o) => by
            .retention
            .as_ref()
            .is_some_and(|n| n.retain_until >= o.retain_until && n.mode.stricter(o.mode) == n.mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(min: Option<i64>, max: Option<i64>, mode: LockMode) -> VaultLock {
        let t = Utc::now();
        VaultLock {
            version: 1,
            min_retention_s: min,
            max_retention_s: max,
            mode,
            created: t,
            changeable_until: t,
        }
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_duration("10y").unwrap(), Duration::days(3650));
        assert!(parse_duration("30").is_err());
        assert_eq!(parse_duration("1.5d").unwrap(), Duration::hours(36));
        assert!(parse_duration("500ms").is_err());
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("-1d").is_err());
        assert!(parse_duration("99999999y").is_err());
        assert_eq!(format_duration(Duration::days(14)), "2w");
        assert_eq!(format_duration(Duration::hours(5)), "5h");
    }

    #[test]
    fn vault_minimum_and_mode_apply_and_requests_out_of_range_are_refused() {
        let now = Utc::now();
        let l = lock(Some(7 * 86_400), Some(30 * 86_400), LockMode::Compliance);
        let r = resolve(None, None, Some(&l), now).unwrap().unwrap();
        assert_eq!(
            (r.retain_until, r.mode),
            (now + Duration::days(7), LockMode::Compliance)
        );
        let req = RetentionRequest {
            retain_for: Some(Duration::days(10)),
            mode: Some(LockMode::Governance),
        };
        let r = resolve(None, Some(&req), Some(&l), now).unwrap().unwrap();
        assert_eq!(
            (r.retain_until, r.mode),
            (now + Duration::days(10), LockMode::Compliance)
        );
        let short = RetentionRequest {
            retain_for: Some(Duration::days(1)),
            mode: None,
        };
        assert!(
            resolve(None, Some(&short), Some(&l), now)
                .unwrap_err()
                .contains("minimum")
        );
        let long = RetentionRequest {
            retain_for: Some(Duration::days(31)),
            mode: None,
        };
        assert!(
            resolve(None, Some(&long), Some(&l), now)
                .unwrap_err()
                .contains("maximum")
        );
        assert_eq!(resolve(None, None, None, now).unwrap(), None);
    }

    #[test]
    fn adding_configurations_never_weakens_an_immutable_one() {
        let a = lock(Some(100), Some(1000), LockMode::Compliance);
        let b = lock(Some(10), None, LockMode::Governance);
        let m = a.strictest(&b);
        assert_eq!(m.min_retention_s, Some(100));
        assert_eq!(m.max_retention_s, Some(1000));
        assert_eq!(m.mode, LockMode::Compliance);
    }
}
