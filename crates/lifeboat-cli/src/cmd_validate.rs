//! `lifeboat validate [-c FILE]`: every error of `lifeboat.toml` at once.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use lifeboat_config::{Config, LoadError};

use crate::common::{Global, print_json};

/// Where the declarative file is.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigFile {
    /// The declarative file (sites, vaults, resources, plans, replication).
    #[arg(
        long = "config",
        short = 'c',
        env = "LIFEBOAT_CONFIG",
        default_value = "lifeboat.toml"
    )]
    pub config: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub file: ConfigFile,
}

/// Loads the file; `Err` carries a ready exit code after printing every error.
pub fn load(g: &Global, file: &ConfigFile) -> Result<std::result::Result<Config, ExitCode>> {
    match lifeboat_config::load(&file.config) {
        Ok(c) => Ok(Ok(c)),
        Err(LoadError::Read { path, source }) => Err(crate::common::usage(format!(
            "cannot read the configuration file {path}: {source} (pass -c FILE or set LIFEBOAT_CONFIG)"
        ))),
        Err(LoadError::Invalid(d)) => {
            if g.json {
                print_json(&serde_json::json!({
                    "file": file.config.display().to_string(),
                    "valid": false,
                    "errors": d.0,
                }))?;
            } else {
                for e in &d.0 {
                    eprintln!("error: {e}");
                }
                eprintln!("{} error(s) in {}", d.0.len(), file.config.display());
            }
            Ok(Err(ExitCode::from(1)))
        }
    }
}

pub fn run(g: &Global, a: ValidateArgs) -> Result<ExitCode> {
    let c = match load(g, &a.file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if g.json {
        print_json(&serde_json::json!({
            "file": a.file.config.display().to_string(),
            "valid": true,
            "errors": [],
            "sites": c.sites.len(),
            "vaults": c.vaults.len(),
            "resources": c.resources.len(),
            "plans": c.plans.len(),
            "replications": c.replications.len(),
            "stacks": c.stacks.len(),
            "drills": c.drills.len(),
        }))?;
    } else if !g.quiet {
        println!(
            "{} is valid: {} site(s), {} vault(s), {} resource(s), {} plan(s), {} replication rule(s), {} stack(s), {} drill(s)",
            a.file.config.display(),
            c.sites.len(),
            c.vaults.len(),
            c.resources.len(),
            c.plans.len(),
            c.replications.len(),
            c.stacks.len(),
            c.drills.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
