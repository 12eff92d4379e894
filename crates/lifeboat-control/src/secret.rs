//! Reading the secrets a file names (never stored in it).

use lifeboat_config::Secret;

use crate::{ControlError, Result};

/// Why the password file `path` is no private secret, if it is not: every
/// local user can read it (as ssh refuses such a key; readable by a group
/// stays allowed: a service's `root:lifeboat 0640` file), or another user
/// (not root) owns it and so chooses the secret.
pub fn not_private(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::metadata(path).ok()?;
    let shown = path.display();
    if m.uid() != rustix::process::geteuid().as_raw() && m.uid() != 0 {
        return Some(format!(
            "password file {shown} belongs to another user (uid {}), who could choose the secret: make it yours or root's (`chown`)",
            m.uid()
        ));
    }
    let mode = m.permissions().mode();
    (mode & 0o007 != 0).then(|| {
        format!(
            "password file {shown} can be read by every local user (mode {:o}): `chmod o-rwx {shown}` (or 600)",
            mode & 0o777
        )
    })
}

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
            if let Some(why) = not_private(path) {
                return Err(ControlError::Secret(format!("{what}: {why}")));
            }
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

/// The DSN of mysql resource `name`, with its password from the source the
/// file names (never from the file itself).
pub fn mysql_dsn(
    name: &str,
    dsn: &str,
    password: &Option<Secret>,
) -> std::result::Result<lifeboat_mysql::Dsn, String> {
    let mut d = lifeboat_mysql::Dsn::parse(dsn).map_err(|e| e.to_string())?;
    if let Some(s) = password {
        let pw = read(s, &format!("resource `{name}`")).map_err(|e| e.to_string())?;
        d.password = Some(
            String::from_utf8(pw)
                .map_err(|_| format!("resource `{name}`: the database password is not UTF-8"))?,
        );
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use lifeboat_vault::{Location, S3Credentials};

    fn config(extra: &str) -> lifeboat_config::Config {
        let text = format!(
            "[vault.dr]\nlocation = \"s3://dr-vault/lifeboat?endpoint=http://127.0.0.1:9\"\n{extra}\n[resource.etc]\npaths = [\"/etc\"]\n"
        );
        lifeboat_config::parse("x.toml", &text).expect("valid")
    }

    #[test]
    fn a_vaults_credentials_file_signs_its_location_and_a_missing_one_is_named() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("dr.credentials");
        std::fs::write(
            &f,
            "[default]\naws_access_key_id = AKIADR\naws_secret_access_key = s3cret\n",
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = config(&format!("credentials_file = \"{}\"", f.display()));
        let loc = super::location(&cfg.vaults["dr"], "dr").unwrap();
        let Location::S3 { credentials, .. } = loc else {
            panic!("not S3")
        };
        assert!(
            matches!(&credentials, S3Credentials::Keys { access_key_id, .. } if access_key_id == "AKIADR"),
            "{credentials:?}"
        );
        // Without the key: the environment's, as before.
        let loc = super::location(&config("").vaults["dr"], "dr").unwrap();
        assert!(matches!(
            loc,
            Location::S3 {
                credentials: S3Credentials::Environment,
                ..
            }
        ));
        let cfg = config("credentials_file = \"/nonexistent/dr.credentials\"");
        let e = super::open_vault(&cfg, "dr").unwrap_err().to_string();
        assert!(
            e.contains("vault `dr`: S3 credentials") && e.contains("/nonexistent/dr.credentials"),
            "{e}"
        );
    }
}
