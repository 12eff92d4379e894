//! Raising a vault's format version when a command starts writing objects an
//! older format does not know (format spec §14).
//!
//! A vault is marked with the version it was created with, and a reader
//! refuses versions above its own. Writing a version-4 object (a vault lock
//! configuration, `vault-lock/`) into a version-3 vault would let version-3
//! software open it and break the rule (it writes points without the vault's
//! minimum retention). So before the first such object, the writer rewrites
//! `config` with the higher version — only the `version` field changes; every
//! other field, known or not, is kept as it is.

use crate::error::{Result, VaultError};
use crate::vault::{FORMAT_VERSION, Vault};

/// Raises the stored `config.version` to at least `version`; returns the old
/// version when it was raised, `None` when it already was that high.
pub fn raise_version(vault: &Vault, version: u32) -> Result<Option<u32>> {
    assert!(version <= FORMAT_VERSION, "no such format version");
    let storage = vault.storage();
    let raw = storage.read("config")?;
    let mut config: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| VaultError::corrupt("config", format!("bad JSON: {e}")))?;
    let old = config
        .get("version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| VaultError::corrupt("config", "no version"))? as u32;
    if old >= version {
        return Ok(None);
    }
    config["version"] = version.into();
    storage.write("config", serde_json::to_vec_pretty(&config).expect("json"))?;
    Ok(Some(old))
}
