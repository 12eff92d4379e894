//! `apply`: initialise vaults, store the applied file in every vault it
//! uses, record the new state. Nothing here deletes a recovery point: a plan
//! removed from the file is only retired from the state.
//!
//! The applied file is sealed into each vault as
//! `control/config/<UTC time>-<random>` (format spec §15): a site that lost
//! everything but a vault and its password gets it back with
//! [`restore_config`].

use chrono::Utc;
use lifeboat_config::Config;
use lifeboat_vault::Vault;
use serde::{Deserialize, Serialize};

use crate::changes::{self, Changes};
use crate::state::{Applied, StateDir};
use crate::{ControlError, Result};

/// Associated data of a sealed configuration object.
pub const CONFIG_AAD: &[u8] = b"lifeboat:control-config";
/// Where sealed configuration objects live in a vault.
pub const CONFIG_PREFIX: &str = "control/config/";

/// The plaintext of a sealed configuration object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredConfig {
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// The host that applied it.
    pub host: String,
    /// The file's path there.
    pub file: String,
    /// The file's text, as written.
    pub text: String,
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// The changes made.
    pub changes: Changes,
    /// Vaults initialised.
    pub initialised: Vec<String>,
    /// Vaults the file was stored in.
    pub stored_in: Vec<String>,
    /// Vaults whose declared lock configuration was written.
    pub locks_set: Vec<String>,
}

/// Applies `cfg` (read from `file`, whose text is `text`); `changes` is what
/// [`changes::compute`] said.
pub fn apply(
    cfg: &Config,
    file: &str,
    text: &str,
    state: &StateDir,
    changes: Changes,
) -> Result<ApplyReport> {
    let mut initialised = Vec::new();
    for name in &changes.vaults_to_init {
        let spec = &cfg.vaults[name];
        let loc = crate::secret::location(spec, name)?;
        let pw = crate::secret::read(&spec.password, &format!("vault `{name}`"))?;
        Vault::init(&loc, &pw, &lifeboat_vault::InitOptions::default())?;
        initialised.push(name.clone());
    }
    let locks_set = crate::vault_lock::apply(cfg, &changes.locks_to_set)?;
    let mut stored_in = Vec::new();
    if !changes.is_empty() {
        let mut targets = cfg.used_vaults();
        if targets.is_empty() {
            targets = cfg.vaults.keys().cloned().collect();
        }
        let stored = StoredConfig {
            applied_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            host: lifeboat_vault::host_name(),
            file: file.to_string(),
            text: text.to_string(),
        };
        let json = serde_json::to_vec(&stored).expect("json");
        for name in targets {
            let v = crate::secret::open_vault(cfg, &name)?;
            let mut r = [0u8; 4];
            lifeboat_vault::crypto::fill_random(&mut r);
            let path = format!(
                "{CONFIG_PREFIX}{}-{}",
                Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                r.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            v.storage().write(&path, v.key().seal(CONFIG_AAD, &json))?;
            stored_in.push(name);
        }
    }
    state.save_applied(&Applied {
        applied_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        config_text: text.to_string(),
        config_id: changes::config_id(text),
        items: changes::items(cfg),
    })?;
    Ok(ApplyReport {
        changes,
        initialised,
        stored_in,
        locks_set,
    })
}

/// The newest configuration stored in `vault`.
pub fn restore_config(vault: &Vault) -> Result<StoredConfig> {
    let mut listed = vault.storage().list(CONFIG_PREFIX)?;
    listed.sort_by(|a, b| a.path.cmp(&b.path));
    let newest = listed.last().ok_or_else(|| {
        ControlError::Refused(format!(
            "vault {} holds no configuration (`lifeboat apply` stores one in every vault a file uses)",
            vault.storage().location()
        ))
    })?;
    let sealed = vault.storage().read(&newest.path)?;
    let json = vault.key().open(CONFIG_AAD, &sealed, &newest.path)?;
    serde_json::from_slice(&json).map_err(|e| {
        ControlError::Vault(lifeboat_vault::VaultError::Corrupt {
            object: newest.path.clone(),
            reason: format!("not a stored configuration: {e}"),
        })
    })
}
