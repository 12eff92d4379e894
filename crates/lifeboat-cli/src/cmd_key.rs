//! `lifeboat key add|list|remove`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::common::{Global, print_json, read_password};

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Add a password that opens the vault (from LIFEBOAT_NEW_PASSWORD, --new-password-file, or a prompt).
    Add {
        /// Read the new password from this file.
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        /// A label for the key (who or what uses it).
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List the vault's keys.
    List,
    /// Remove a key (by id or unique prefix); not the one in use.
    Remove {
        /// Key id or prefix.
        id: String,
    },
}

pub fn run(g: &Global, cmd: KeyCmd) -> Result<ExitCode> {
    let v = g.open()?;
    match cmd {
        KeyCmd::Add {
            new_password_file,
            label,
        } => {
            let pw = read_password(
                "LIFEBOAT_NEW_PASSWORD",
                new_password_file.as_ref(),
                "new password",
                true,
            )?;
            let id = v.add_key(&pw, &label)?;
            if g.json {
                print_json(&serde_json::json!({"id": id}))?;
            } else {
                println!("added key {}", &id[..8]);
            }
        }
        KeyCmd::List => {
            let keys = v.list_keys()?;
            if g.json {
                print_json(&keys)?;
            } else {
                println!(
                    "{:<10} {:<8} {:<21} {:<20} label",
                    "id", "current", "created", "host/user"
                );
                for k in keys {
                    println!(
                        "{:<10} {:<8} {:<21} {:<20} {}",
                        &k.id[..8],
                        if k.current { "*" } else { "" },
                        k.created,
                        format!("{}/{}", k.host, k.user),
                        k.label
                    );
                }
            }
        }
        KeyCmd::Remove { id } => {
            let removed = v.remove_key(&id)?;
            if g.json {
                print_json(&serde_json::json!({"removed": removed}))?;
            } else {
                println!("removed key {}", &removed[..8]);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
