//! Reading the secrets a file names (never stored in it).

use lifeboat_config::Secret;

use crate::{ControlError, Result};

/// The secret's bytes: the variable's value or the file's first line.
pub fn read(s: &Secret, what: &str) -> Result<Vec<u8>> {
    match s {
        Secret::Env(name) => match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(v.into_bytes()),
            _ => Err(ControlError::Secret(format!(
                "{what}: environment variable {name} is not set (the file says `password_env = \"{name}\"`)"
            ))),
        },
        Secret::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ControlError::Secret(format!(
                    "{what}: cannot read password file {}: {e}",
                    path.display()
                ))
            })?;
            match text.lines().next() {
                Some(l) if !l.is_empty() => Ok(l.as_bytes().to_vec()),
                _ => Err(ControlError::Secret(format!(
                    "{what}: password file {} is empty",
                    path.display()
                ))),
            }
        }
    }
}

/// Opens the vault `name` of `cfg` with its password source.
pub fn open_vault(cfg: &lifeboat_config::Config, name: &str) -> Result<lifeboat_vault::Vault> {
    let spec = cfg
        .vaults
        .get(name)
        .ok_or_else(|| ControlError::Refused(format!("there is no vault `{name}` in the file")))?;
    let loc = location(spec, name)?;
    let pw = read(&spec.password, &format!("vault `{name}`"))?;
    Ok(lifeboat_vault::Vault::open(&loc, &pw)?)
}

/// The vault's location with its own S3 credentials (`credentials_env` /
/// `credentials_file`), else the process environment's.
pub fn location(
    spec: &lifeboat_config::model::VaultSpec,
    name: &str,
) -> Result<lifeboat_vault::Location> {
    let loc = lifeboat_vault::Location::parse(&spec.location)?;
    let creds = match &spec.credentials {
        None => return Ok(loc),
        Some(Secret::Env(prefix)) => lifeboat_vault::S3Credentials::from_env_prefix(prefix),
        Some(Secret::File(path)) => lifeboat_vault::S3Credentials::from_file(path, None),
    }
    .map_err(|e| ControlError::Secret(format!("vault `{name}`: S3 credentials: {e}")))?;
    Ok(loc.with_credentials(creds)?)
}
