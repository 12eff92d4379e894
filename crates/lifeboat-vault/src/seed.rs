//! A chunker seed shared between vaults (`vault init --copy-chunker-params-from`).
//!
//! A vault's chunker seed is normally derived from its own id key (format
//! spec §3), so two vaults cut the same data differently and a copy never
//! deduplicates against the target's own backups. A vault made to pair with
//! another takes that vault's chunker sizes and seed; the seed is secret, so
//! it is kept in `config` as `chunker_seed`: a sealed box (aad
//! `lifeboat:chunker-seed`, this vault's key) of the 8-byte seed, base64.

use base64::Engine;

use crate::crypto::MasterKey;
use crate::error::{Result, VaultError};
use crate::vault::Vault;

const AAD: &[u8] = b"lifeboat:chunker-seed";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Seals a chunker seed for the config.
pub fn seal_seed(key: &MasterKey, seed: u64) -> String {
    b64().encode(key.seal(AAD, &seed.to_le_bytes()))
}

/// Opens the config's sealed chunker seed.
pub fn open_seed(key: &MasterKey, sealed: &str) -> Result<u64> {
    let bad = |r: &str| {
        VaultError::corrupt(
            "config",
            format!(
                "field chunker_seed {r} (the config was changed or damaged; restore it from a copy of the vault)"
            ),
        )
    };
    let raw = b64().decode(sealed).map_err(|_| bad("is not base64"))?;
    let plain = key
        .open(AAD, &raw, "config chunker_seed")
        .map_err(|_| bad("does not open with the vault's key"))?;
    let b: [u8; 8] = plain
        .as_slice()
        .try_into()
        .map_err(|_| bad("is not 8 bytes"))?;
    Ok(u64::from_le_bytes(b))
}

impl Vault {
    /// The seed of this vault's content-defined chunker: the config's shared
    /// seed when it has one, else the one derived from the id key.
    pub fn chunker_seed(&self) -> Result<u64> {
        match &self.config().chunker_seed {
            Some(s) => open_seed(self.key(), s),
            None => Ok(self.key().chunker_seed()),
        }
    }
}
