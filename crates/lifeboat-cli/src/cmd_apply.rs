//! `lifeboat plan` and `lifeboat apply`: what the file would change, and doing it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use lifeboat_control::changes::{self, Changes};
use lifeboat_control::state::StateDir;

use crate::cmd_validate::{ConfigFile, load};
use crate::common::{Global, print_json};

/// Where the control plane keeps its state.
#[derive(clap::Args, Debug, Clone)]
pub struct StateArg {
    /// State directory (applied file, job history); default /var/lib/lifeboat for root, else $XDG_STATE_HOME/lifeboat.
    #[arg(long = "state", env = "LIFEBOAT_STATE")]
    pub state: Option<PathBuf>,
}

impl StateArg {
    pub fn dir(&self) -> StateDir {
        StateDir::resolve(self.state.as_deref())
    }
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub file: ConfigFile,
    #[command(flatten)]
    pub state: StateArg,
    /// Exit 0 when there is nothing to change, 2 when there is (or drift, with --drift), 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also report what is out of step with the file in the vaults (a resource
    /// with no point within its schedule, a lock weaker than declared); needs the vaults' passwords.
    #[arg(long)]
    pub drift: bool,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub file: ConfigFile,
    #[command(flatten)]
    pub state: StateArg,
    /// Apply without asking.
    #[arg(long)]
    pub auto_approve: bool,
}

fn print_changes(c: &Changes) {
    for ch in &c.changes {
        println!("  {} {} {}: {}", ch.op.sign(), ch.kind, ch.name, ch.detail);
    }
    println!();
    println!("Plan: {}", c.summary());
}

fn compute(
    g: &Global,
    file: &ConfigFile,
    state: &StateArg,
) -> Result<std::result::Result<(lifeboat_config::Config, String, Changes), ExitCode>> {
    let cfg = match load(g, file)? {
        Ok(c) => c,
        Err(code) => return Ok(Err(code)),
    };
    let text = std::fs::read_to_string(&file.config)
        .with_context(|| format!("cannot read {}", file.config.display()))?;
    let applied = state.dir().applied()?;
    let ch = changes::compute(&cfg, &text, &applied)?;
    Ok(Ok((cfg, text, ch)))
}

pub fn plan(g: &Global, a: PlanArgs) -> Result<ExitCode> {
    let (cfg, _, ch) = match compute(g, &a.file, &a.state) {
        Ok(Ok(x)) => x,
        Ok(Err(code)) => return Ok(code),
        // --detailed-exitcode keeps 2 for "changes": every error is 1.
        Err(e) if a.detailed_exitcode => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e),
    };
    // Drift: vaults not yet initialised are changes already; the rest is read from the vaults that exist.
    let drift: Vec<lifeboat_control::report::ResourceReport> = if a.drift {
        let mut c = cfg.clone();
        c.vaults.retain(|n, _| !ch.vaults_to_init.contains(n));
        c.plans.retain(|_, p| c.vaults.contains_key(&p.vault));
        lifeboat_control::report::report(&c, chrono::Utc::now())
    } else {
        Vec::new()
    };
    let drifted = drift
        .iter()
        .any(|r| r.controls.iter().any(|c| !c.ok && c.name != "in-plan"));
    if g.json {
        let (add, change, remove) = ch.counts();
        let items: Vec<serde_json::Value> = drift
            .iter()
            .flat_map(|r| {
                r.controls
                    .iter()
                    .filter(|c| !c.ok && c.name != "in-plan")
                    .map(|c| serde_json::json!({"resource": r.resource, "control": c.name, "detail": c.detail}))
            })
            .collect();
        print_json(&serde_json::json!({
            "changes": ch.changes, "add": add, "change": change, "remove": remove, "drift": items,
        }))?;
    } else {
        if ch.is_empty() {
            println!(
                "No changes: the applied configuration matches {}.",
                a.file.config.display()
            );
        } else {
            println!("lifeboat apply would:");
            print_changes(&ch);
        }
        if a.drift {
            println!();
            if drifted {
                println!("Drift (out of step with the file; `apply` does not fix these, jobs do):");
                crate::cmd_report::print_failed(&drift, true);
            } else {
                println!("No drift: every planned resource has a point within its schedule.");
            }
        }
    }
    Ok(if a.detailed_exitcode && (!ch.is_empty() || drifted) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn apply(g: &Global, a: ApplyArgs) -> Result<ExitCode> {
    let (cfg, text, ch) = match compute(g, &a.file, &a.state)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if ch.is_empty() {
        let handed = hand_over(g, &cfg)?;
        if g.json {
            print_json(
                &serde_json::json!({"changes": [], "initialised": [], "stored_in": [], "locks_set": [], "handed_over": handed}),
            )?;
        } else if !g.quiet {
            println!(
                "No changes: the applied configuration matches {}.",
                a.file.config.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !g.json && !g.quiet {
        println!("lifeboat apply will:");
        print_changes(&ch);
    }
    if !a.auto_approve {
        if !std::io::stdin().is_terminal() {
            return Err(crate::common::usage(
                "apply asks before it changes anything: run it on a terminal, or pass --auto-approve",
            ));
        }
        print!("Apply these changes? Only `yes` is accepted: ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != "yes" {
            println!("Nothing was changed.");
            return Ok(ExitCode::from(1));
        }
    }
    let file = std::fs::canonicalize(&a.file.config).unwrap_or(a.file.config.clone());
    let rep = lifeboat_control::apply::apply(
        &cfg,
        &file.display().to_string(),
        &text,
        &a.state.dir(),
        ch,
    )?;
    let handed = hand_over(g, &cfg)?;
    if g.json {
        let mut j = serde_json::to_value(&rep)?;
        j["handed_over"] = serde_json::to_value(&handed)?;
        print_json(&j)?;
    } else if !g.quiet {
        for v in &rep.initialised {
            println!("initialised vault `{v}`");
        }
        for v in &rep.locks_set {
            println!("set the lock configuration of vault `{v}`");
        }
        if !rep.stored_in.is_empty() {
            println!(
                "stored the configuration in vault(s): {}",
                rep.stored_in.join(", ")
            );
        }
        let (add, change, remove) = rep.changes.counts();
        println!("Apply complete: {add} added, {change} changed, {remove} removed.");
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops recovered databases' interim archives the file now archives itself
/// (failback: the roles swapped), saying so.
fn hand_over(
    g: &Global,
    cfg: &lifeboat_config::Config,
) -> Result<Vec<lifeboat_stack::protect::HandedOver>> {
    let handed = lifeboat_stack::protect::hand_over(cfg)?;
    if !g.json && !g.quiet {
        for h in &handed {
            println!(
                "handed the binlog archive of `{}` (stack `{}`, site `{}`) to the daemon: the recovery's interim archive (pid {}) is stopped; start or reload `lifeboat serve` to resume it",
                h.member, h.stack, h.site, h.pid
            );
        }
    }
    Ok(handed)
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCmd {
    /// Get the applied lifeboat.toml back from a vault alone (needs the vault's password).
    Restore {
        /// Write it here (default: print it on stdout). An existing file is not overwritten.
        #[arg(long)]
        to: Option<PathBuf>,
    },
}

pub fn config(g: &Global, c: ConfigCmd) -> Result<ExitCode> {
    let ConfigCmd::Restore { to } = c;
    let v = g.open()?;
    let stored = lifeboat_control::apply::restore_config(&v)?;
    match &to {
        Some(path) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| {
                    format!(
                        "cannot create {} (an existing file is never overwritten)",
                        path.display()
                    )
                })?;
            f.write_all(stored.text.as_bytes())?;
            f.sync_all()?;
        }
        None if !g.json => print!("{}", stored.text),
        None => {}
    }
    if g.json {
        print_json(&serde_json::json!({
            "applied_at": stored.applied_at, "host": stored.host, "file": stored.file,
            "to": to.as_ref().map(|p| p.display().to_string()),
            "text": if to.is_none() { Some(&stored.text) } else { None },
        }))?;
    } else if !g.quiet {
        eprintln!(
            "configuration applied {} on {} (as {}){}",
            stored.applied_at,
            stored.host,
            stored.file,
            to.map(|p| format!(", written to {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
