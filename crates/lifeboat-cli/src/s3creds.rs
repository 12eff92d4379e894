//! `--from-credentials-env/-file` and `--to-credentials-env/-file`: the S3
//! keys of each vault of a copy, so that two S3 vaults with different
//! credentials can be copied between (never secrets on the command line:
//! an environment prefix or a private file names them).

use std::path::PathBuf;

use anyhow::Result;
use lifeboat_vault::{Location, S3Credentials};

use crate::common::usage;

/// The S3 credentials of a copy's two vaults.
#[derive(clap::Args, Debug, Default)]
pub struct CopyCredentials {
    /// S3 keys of the source vault from PREFIX_ACCESS_KEY_ID,
    /// PREFIX_SECRET_ACCESS_KEY (and PREFIX_SESSION_TOKEN); default: the
    /// AWS_* environment.
    #[arg(long, value_name = "PREFIX")]
    from_credentials_env: Option<String>,
    /// S3 keys of the source vault from this AWS shared-credentials file
    /// (profile `default`; mode 0600).
    #[arg(long, value_name = "FILE", conflicts_with = "from_credentials_env")]
    from_credentials_file: Option<PathBuf>,
    /// S3 keys of the target vault from PREFIX_ACCESS_KEY_ID,
    /// PREFIX_SECRET_ACCESS_KEY (and PREFIX_SESSION_TOKEN); default: the
    /// AWS_* environment.
    #[arg(long, value_name = "PREFIX")]
    to_credentials_env: Option<String>,
    /// S3 keys of the target vault from this AWS shared-credentials file
    /// (profile `default`; mode 0600).
    #[arg(long, value_name = "FILE", conflicts_with = "to_credentials_env")]
    to_credentials_file: Option<PathBuf>,
}

fn load(env: &Option<String>, file: &Option<PathBuf>, flag: &str) -> Result<S3Credentials> {
    let r = match (env, file) {
        (Some(p), _) => S3Credentials::from_env_prefix(p),
        (None, Some(f)) => S3Credentials::from_file(f, None),
        (None, None) => return Ok(S3Credentials::Environment),
    };
    r.map_err(|e| usage(format!("--{flag}-credentials-*: {e}")))
}

impl CopyCredentials {
    /// The source location with its credentials.
    pub fn from(&self, loc: Location) -> Result<Location> {
        let c = load(
            &self.from_credentials_env,
            &self.from_credentials_file,
            "from",
        )?;
        loc.with_credentials(c)
            .map_err(|e| usage(format!("--from: {e}")))
    }

    /// The target location with its credentials.
    pub fn to(&self, loc: Location) -> Result<Location> {
        let c = load(&self.to_credentials_env, &self.to_credentials_file, "to")?;
        loc.with_credentials(c)
            .map_err(|e| usage(format!("--to: {e}")))
    }
}
