//! The vault lock configurations a file declares (`[vault.X] lock = {…}`):
//! `plan` compares each with what the vault holds, `apply` writes it with
//! [`lifeboat_vault::retention::configure`]. Apply never weakens a lock: a
//! lock removed from the file stays on the vault, and a vault whose lock is
//! already immutable and differs from the file stops `plan` and `apply`
//! before anything is changed.

use chrono::Duration;
use lifeboat_config::{Config, LockSpec};
use lifeboat_vault::retention::{self, LockSettings, MIN_COOLING_OFF, VaultLock};
use lifeboat_vault::{LockMode, Vault};

use crate::{ControlError, Result};

/// The settings a declared lock asks for (cooling-off: the declared one, or
/// the minimum, 3 days).
pub fn settings(vault: &str, spec: &LockSpec) -> Result<LockSettings> {
    if spec.min_retention.is_none() && spec.max_retention.is_none() {
        return Err(ControlError::Refused(format!(
            "vault `{vault}`: a vault lock needs `min_retention` and/or `max_retention` (e.g. lock = {{ mode = \"compliance\", min_retention = \"7d\" }})"
        )));
    }
    let secs = |d: lifeboat_config::Dur| Duration::seconds(d.0 as i64);
    Ok(LockSettings {
        min_retention: spec.min_retention.map(secs),
        max_retention: spec.max_retention.map(secs),
        mode: match spec.mode {
            lifeboat_config::LockMode::Governance => LockMode::Governance,
            lifeboat_config::LockMode::Compliance => LockMode::Compliance,
        },
        changeable_for: spec.changeable_for.map_or(MIN_COOLING_OFF, secs),
    })
}

/// Whether the vault's configuration in effect is the declared one.
pub fn matches(effective: Option<&VaultLock>, want: &LockSettings) -> bool {
    effective.is_some_and(|e| {
        e.mode == want.mode
            && e.min_retention_s == want.min_retention.map(|d| d.num_seconds())
            && e.max_retention_s == want.max_retention.map(|d| d.num_seconds())
    })
}

/// Describes a lock for a plan line: "compliance, min 7d, max 10y".
pub fn describe(s: &LockSettings) -> String {
    let mut out = format!("{:?}", s.mode).to_lowercase();
    if let Some(d) = s.min_retention {
        out.push_str(&format!(", min {}", retention::format_duration(d)));
    }
    if let Some(d) = s.max_retention {
        out.push_str(&format!(", max {}", retention::format_duration(d)));
    }
    out
}

/// What a declared lock needs on an existing vault: `None` when the vault
/// already has it, else a line for the plan. An immutable configuration
/// that differs is an error naming both.
pub fn needed(vault_name: &str, v: &Vault, want: &LockSettings) -> Result<Option<String>> {
    // Judged on the vault storage's clock, never this machine's.
    let state = retention::load(v, v.now()?)?;
    if matches(state.effective.as_ref(), want) {
        return Ok(None);
    }
    match &state.effective {
        Some(e) if state.immutable => Err(ControlError::Refused(format!(
            "vault `{vault_name}`: its lock configuration ({}) is immutable since {}, and the file declares {}; nobody can change it now: declare what the vault has, or use another vault",
            describe_effective(e),
            e.changeable_until.to_rfc3339(),
            describe(want)
        ))),
        Some(e) => Ok(Some(format!(
            "change the vault lock from {} to {} (changeable until {}, immutable afterwards)",
            describe_effective(e),
            describe(want),
            e.changeable_until.to_rfc3339()
        ))),
        None => Ok(Some(format!(
            "set the vault lock: {} (changeable for {}, immutable afterwards)",
            describe(want),
            retention::format_duration(want.changeable_for)
        ))),
    }
}

fn describe_effective(e: &VaultLock) -> String {
    describe(&LockSettings {
        min_retention: e.min_retention_s.map(Duration::seconds),
        max_retention: e.max_retention_s.map(Duration::seconds),
        mode: e.mode,
        changeable_for: Duration::zero(),
    })
}

/// Writes the declared lock of every vault in `names` whose lock differs.
pub fn apply(cfg: &Config, names: &[String]) -> Result<Vec<String>> {
    let mut set = Vec::new();
    for name in names {
        let Some(spec) = cfg.vaults.get(name).and_then(|v| v.lock.as_ref()) else {
            continue;
        };
        let want = settings(name, spec)?;
        let v = crate::secret::open_vault(cfg, name)?;
        if needed(name, &v, &want)?.is_some() {
            retention::configure(&v, &want, v.now()?)?;
            set.push(name.clone());
        }
    }
    Ok(set)
}
