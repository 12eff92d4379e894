//! `lifeboat jobs restore-database` and `restore-bucket`: restores recorded
//! as jobs of kind `restore` (what the console's restore forms start): one
//! database of a mysql point under a new name into the server its resource
//! declares; a bucket point into a bucket location.

use std::process::ExitCode;

use anyhow::Result;

use crate::cmd_apply::StateArg;
use crate::cmd_validate::{ConfigFile, load};
use crate::common::Global;

/// What every recorded restore names: the file, the state directory, the
/// vault and point to restore from, and why it starts.
#[derive(clap::Args, Debug)]
pub struct RestoreFrom {
    #[command(flatten)]
    pub file: ConfigFile,
    #[command(flatten)]
    pub state: StateArg,
    /// The vault to restore from (its name in the file).
    #[arg(long = "from", value_name = "VAULT")]
    pub from_vault: String,
    /// Point: full id, unique prefix, or `latest` (of --resource).
    pub point: String,
    /// Only a point of this resource.
    #[arg(long)]
    pub resource: Option<String>,
    /// Why it starts, as recorded in the history.
    #[arg(long, default_value = "manual", value_parser = clap::builder::PossibleValuesParser::new(lifeboat_control::launch::trigger::ALL))]
    pub trigger: String,
}

impl RestoreFrom {
    /// The file (`Err(code)` when it does not load) and the job store.
    pub fn open(
        &self,
        g: &Global,
    ) -> Result<
        std::result::Result<
            (
                lifeboat_config::Config,
                lifeboat_control::store::SqliteStore,
            ),
            ExitCode,
        >,
    > {
        let cfg = match load(g, &self.file)? {
            Ok(c) => c,
            Err(code) => return Ok(Err(code)),
        };
        Ok(Ok((cfg, crate::cmd_jobs::open(&self.state)?)))
    }
}

#[derive(clap::Args, Debug)]
pub struct RestoreDbArgs {
    #[command(flatten)]
    from: RestoreFrom,
    /// The database in the point.
    #[arg(long)]
    database: String,
    /// The name it gets on the resource's server.
    #[arg(long = "as", value_name = "NAME")]
    target: String,
    /// Replace the target database when it is not empty.
    #[arg(long)]
    replace: bool,
}

pub fn database(g: &Global, a: RestoreDbArgs) -> Result<ExitCode> {
    let (cfg, store) = match a.from.open(g)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let req = lifeboat_control::restore_db::DatabaseRestoreRequest {
        vault: a.from.from_vault,
        point: a.from.point,
        resource: a.from.resource,
        database: a.database,
        target: a.target,
        replace: a.replace,
    };
    let o = lifeboat_control::restore_db::restore_database(&cfg, &req, &a.from.trigger, &store)
        .map_err(refused_is_usage)?;
    crate::cmd_jobs::restore_outcome(g, &o)
}

#[derive(clap::Args, Debug)]
pub struct RestoreBucketArgs {
    #[command(flatten)]
    from: RestoreFrom,
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// The target bucket: `file:///path` or `s3://bucket/prefix?endpoint=…`.
    #[arg(long = "to-bucket", value_name = "URL")]
    to_bucket: String,
    /// Write over the keys of a target that already holds objects.
    #[arg(long)]
    overwrite: bool,
}

pub fn bucket(g: &Global, a: RestoreBucketArgs) -> Result<ExitCode> {
    let (cfg, store) = match a.from.open(g)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let req = lifeboat_control::restore_bucket::BucketRestoreRequest {
        vault: a.from.from_vault,
        point: a.from.point,
        resource: a.from.resource,
        prefix: a.prefix,
        to: a.to_bucket,
        overwrite: a.overwrite,
    };
    let o = lifeboat_control::restore_bucket::restore_bucket(&cfg, &req, &a.from.trigger, &store)
        .map_err(refused_is_usage)?;
    crate::cmd_jobs::restore_outcome(g, &o)
}

/// A refusal (bad names, a target in use) is a usage error (exit 2).
fn refused_is_usage(e: lifeboat_control::ControlError) -> anyhow::Error {
    match e {
        lifeboat_control::ControlError::Refused(m) => crate::common::usage(m),
        e => e.into(),
    }
}
