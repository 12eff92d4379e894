//! `lifeboat stack up|down|status`: a stack's members provisioned in a site
//! (the embedded default: servers, buckets and hosts under the site's root).

use std::process::ExitCode;

use anyhow::Result;

use crate::cmd_validate::{ConfigFile, load};
use crate::common::{Global, print_json};

#[derive(clap::Args, Debug)]
pub struct Target {
    #[command(flatten)]
    file: ConfigFile,
    /// The stack (`[stack.NAME]` in the file).
    #[arg(long)]
    stack: String,
    /// The site it runs in (`[site.NAME]`, whose `root` holds it).
    #[arg(long)]
    site: String,
}

#[derive(clap::Subcommand, Debug)]
pub enum StackCmd {
    /// Provision the stack in the site and start it (idempotent: what runs already is kept).
    Up(Target),
    /// Stop the stack's processes (instances first); --purge also removes its directories.
    Down {
        #[command(flatten)]
        target: Target,
        /// Also remove the members' data directories (a scratch stack).
        #[arg(long)]
        purge: bool,
    },
    /// Check each member. Exit 0 all up, 3 some down.
    Status(Target),
}

pub fn run(g: &Global, c: StackCmd) -> Result<ExitCode> {
    let quiet = g.quiet || g.json;
    match c {
        StackCmd::Up(t) => {
            let cfg = match load(g, &t.file)? {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let started = std::time::Instant::now();
            let state = lifeboat_stack::up(&cfg, &t.stack, &t.site)?;
            let secs = started.elapsed().as_secs_f64();
            if g.json {
                print_json(&serde_json::json!({"state": state, "duration_s": secs}))?;
            } else if !quiet {
                for (n, m) in &state.members {
                    let what = ["dsn", "url", "location", "path"]
                        .iter()
                        .find_map(|k| m.outputs.get(*k))
                        .cloned()
                        .unwrap_or_default();
                    println!("  {n:<20} {:<9} {what}", m.kind);
                }
                println!(
                    "stack `{}` is up in site `{}` ({secs:.1} s)",
                    t.stack, t.site
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        StackCmd::Down { target: t, purge } => {
            let cfg = match load(g, &t.file)? {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let state = lifeboat_stack::down(&cfg, &t.stack, &t.site, purge)?;
            if g.json {
                print_json(
                    &serde_json::json!({"stopped": state.is_some(), "purged": purge && state.is_some()}),
                )?;
            } else if !quiet {
                match state {
                    None => println!(
                        "stack `{}` was never brought up in site `{}`",
                        t.stack, t.site
                    ),
                    Some(_) if purge => println!(
                        "stack `{}` in site `{}` is down and its directories are removed",
                        t.stack, t.site
                    ),
                    Some(_) => println!(
                        "stack `{}` in site `{}` is down (data kept; `stack up` starts it again)",
                        t.stack, t.site
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StackCmd::Status(t) => {
            let cfg = match load(g, &t.file)? {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let members = lifeboat_stack::stack::status(&cfg, &t.stack, &t.site)?;
            let all_up = members.iter().all(|m| m.status == "up");
            if g.json {
                print_json(
                    &serde_json::json!({"stack": t.stack, "site": t.site, "up": all_up, "members": members}),
                )?;
            } else if !g.quiet {
                for m in &members {
                    println!(
                        "  {:<20} {:<9} {:<8} {}",
                        m.name,
                        m.kind,
                        m.status,
                        m.detail.as_deref().unwrap_or("")
                    );
                }
                println!(
                    "stack `{}` in site `{}`: {}",
                    t.stack,
                    t.site,
                    if all_up { "up" } else { "not all up" }
                );
            }
            Ok(if all_up {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
    }
}
