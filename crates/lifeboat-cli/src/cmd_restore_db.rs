//! `lifeboat jobs restore-database`: one database of a mysql point restored
//! under a new name into the server its resource declares, recorded as a
//! job of kind `restore` (what the console's restore form starts).

use std::process::ExitCode;

use anyhow::Result;

use crate::cmd_apply::StateArg;
use crate::cmd_validate::{ConfigFile, load};
use crate::common::Global;

#[derive(clap::Args, Debug)]
pub struct RestoreDbArgs {
    #[command(flatten)]
    file: ConfigFile,
    #[command(flatten)]
    state: StateArg,
    /// The vault to restore from (its name in the file).
    #[arg(long = "from", value_name = "VAULT")]
    from_vault: String,
    /// Point: full id, unique prefix, or `latest` (of --resource).
    point: String,
    /// Only a point of this resource.
    #[arg(long)]
    resource: Option<String>,
    /// The database in the point.
    #[arg(long)]
    database: String,
    /// The name it gets on the resource's server.
    #[arg(long = "as", value_name = "NAME")]
    target: String,
    /// Replace the target database when it is not empty.
    #[arg(long)]
    replace: bool,
    /// Why it starts, as recorded in the history.
    #[arg(long, default_value = "manual", value_parser = clap::builder::PossibleValuesParser::new(lifeboat_control::launch::trigger::ALL))]
    trigger: String,
}

pub fn run(g: &Global, a: RestoreDbArgs) -> Result<ExitCode> {
    let cfg = match load(g, &a.file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let store = crate::cmd_jobs::open(&a.state)?;
    let req = lifeboat_control::restore_db::DatabaseRestoreRequest {
        vault: a.from_vault,
        point: a.point,
        resource: a.resource,
        database: a.database,
        target: a.target,
        replace: a.replace,
    };
    let o = lifeboat_control::restore_db::restore_database(&cfg, &req, &a.trigger, &store)
        .map_err(|e| match e {
            lifeboat_control::ControlError::Refused(m) => crate::common::usage(m),
            e => e.into(),
        })?;
    crate::cmd_jobs::restore_outcome(g, &o)
}
