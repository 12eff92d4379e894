//! Credentials of one S3 vault.
//!
//! By default an S3 vault signs with the process's credentials
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`…). A copy
//! between two S3 vaults at two sites needs two sets, so a vault can name its
//! own instead — never in its URL or on a command line, where other users of
//! the machine can read them:
//!
//! - an environment prefix: `PREFIX_ACCESS_KEY_ID`, `PREFIX_SECRET_ACCESS_KEY`
//!   and, if set, `PREFIX_SESSION_TOKEN`;
//! - a file in the AWS shared-credentials format (`[default]` or another
//!   profile, `aws_access_key_id`, `aws_secret_access_key`,
//!   `aws_session_token`) that only its owner can read (mode 0600 or 0400).
//!
//! Secrets never appear in `Debug` output or in messages: those name the
//! source and the access key id only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Where an S3 vault's keys come from.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum S3Credentials {
    /// The process environment, as the AWS tools read it.
    #[default]
    Environment,
    /// Keys loaded for this vault alone.
    Keys {
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: String,
        /// A session token (temporary credentials).
        session_token: Option<String>,
        /// Where they were read from, for messages.
        source: String,
    },
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Credentials({})", self.describe())
    }
}

impl S3Credentials {
    /// Reads `PREFIX_ACCESS_KEY_ID`, `PREFIX_SECRET_ACCESS_KEY` and the
    /// optional `PREFIX_SESSION_TOKEN`.
    pub fn from_env_prefix(prefix: &str) -> Result<S3Credentials, String> {
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "{prefix:?} is not an environment variable prefix (letters, digits and `_`, e.g. `DR_S3`)"
            ));
        }
        let get = |suffix: &str| {
            std::env::var(format!("{prefix}_{suffix}"))
                .ok()
                .filter(|v| !v.is_empty())
        };
        let (Some(id), Some(secret)) = (get("ACCESS_KEY_ID"), get("SECRET_ACCESS_KEY")) else {
            return Err(format!(
                "the environment has no {prefix}_ACCESS_KEY_ID and {prefix}_SECRET_ACCESS_KEY (both are needed; {prefix}_SESSION_TOKEN is optional)"
            ));
        };
        Ok(S3Credentials::Keys {
            access_key_id: id,
            secret_access_key: secret,
            session_token: get("SESSION_TOKEN"),
            source: format!("{prefix}_ACCESS_KEY_ID"),
        })
    }

    /// Reads a profile (`default` when `None`) of a file in the AWS
    /// shared-credentials format. The file must be readable by its owner
    /// only.
    pub fn from_file(path: &Path, profile: Option<&str>) -> Result<S3Credentials, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read the credentials file {shown}: {e}"))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "the credentials file {shown} can be read by other users (mode {:o}): `chmod 600 {shown}`",
                meta.permissions().mode() & 0o777
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the credentials file {shown}: {e}"))?;
        let want = profile.unwrap_or("default");
        let mut section: Option<String> = None;
        let (mut id, mut secret, mut token) = (None, None, None);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                section = Some(s.trim().trim_start_matches("profile ").to_string());
                continue;
            }
            if section.as_deref() != Some(want) {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!(
                    "{shown}, line {}: expected `key = value` (the value is not shown)",
                    n + 1
                ));
            };
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
        match (id, secret) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                Ok(S3Credentials::Keys {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: token.filter(|t| !t.is_empty()),
                    source: format!("{shown} [{want}]"),
                })
            }
            _ => Err(format!(
                "the credentials file {shown} has no profile [{want}] with aws_access_key_id and aws_secret_access_key"
            )),
        }
    }

    /// Where the keys come from, for messages (no secret in it).
    pub fn describe(&self) -> String {
        match self {
            S3Credentials::Environment => {
                "from the environment: AWS_ACCESS_KEY_ID / AWS_PROFILE".into()
            }
            S3Credentials::Keys {
                access_key_id,
                source,
                ..
            } => format!("access key {access_key_id} from {source}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_readable_by_others_is_refused_and_a_private_one_is_read() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("creds");
        std::fs::write(
            &f,
            "[default]\naws_access_key_id = A1\naws_secret_access_key = s1\n\n[profile dr]\naws_access_key_id=A2\naws_secret_access_key=s2\naws_session_token = t\n",
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = S3Credentials::from_file(&f, None).unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = S3Credentials::from_file(&f, None).unwrap();
        assert!(
            matches!(&c, S3Credentials::Keys { access_key_id, secret_access_key, session_token: None, .. } if access_key_id == "A1" && secret_access_key == "s1")
        );
        let c = S3Credentials::from_file(&f, Some("dr")).unwrap();
        assert!(
            matches!(&c, S3Credentials::Keys { access_key_id, session_token: Some(t), .. } if access_key_id == "A2" && t == "t")
        );
        assert!(!format!("{c:?}").contains("s2"), "{c:?}");
        let e = S3Credentials::from_file(&f, Some("nope")).unwrap_err();
        assert!(e.contains("no profile [nope]"), "{e}");
    }

    #[test]
    fn a_bad_prefix_is_refused() {
        assert!(S3Credentials::from_env_prefix("A B").is_err());
        assert!(S3Credentials::from_env_prefix("").is_err());
        let e = S3Credentials::from_env_prefix("LIFEBOAT_NOTHING_HERE").unwrap_err();
        assert!(e.contains("LIFEBOAT_NOTHING_HERE_ACCESS_KEY_ID"), "{e}");
    }
}
