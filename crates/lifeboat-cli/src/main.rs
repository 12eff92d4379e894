//! `lifeboat`: the command line of the Lifeboat backup and disaster-recovery system.
//!
//! One module per command; each parses its arguments and calls the library
//! crates. Exit codes: 0 success, 1 failure, 2 usage error, 3 finished but
//! incomplete (some entries could not be backed up or restored).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc instead of glibc's allocator: a backup moves megabyte-sized
/// buffers between threads, which glibc's per-thread arenas turn into
/// fragmentation (bench/RESULTS.md has the measured peak RSS of both).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod cmd_apply;
mod cmd_backup;
mod cmd_bucket;
mod cmd_copy;
mod cmd_drill;
mod cmd_forget;
mod cmd_instance;
mod cmd_jobs;
mod cmd_jobs_restore;
mod cmd_key;
mod cmd_mysql;
mod cmd_mysql_physical;
mod cmd_points;
mod cmd_prune;
mod cmd_replicate;
mod cmd_report;
mod cmd_restore;
mod cmd_retention;
mod cmd_serve;
mod cmd_stack;
mod cmd_validate;
mod cmd_vault;
mod common;
mod pick;
mod s3creds;

/// Lifeboat: deduplicated, encrypted backups and disaster recovery.
#[derive(Parser, Debug)]
#[command(name = "lifeboat", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: common::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, check and maintain vaults.
    #[command(subcommand)]
    Vault(cmd_vault::VaultCmd),
    /// Manage the passwords that open a vault.
    #[command(subcommand)]
    Key(cmd_key::KeyCmd),
    /// Back up a resource into a new recovery point.
    #[command(subcommand)]
    Backup(cmd_backup::BackupCmd),
    /// Restore a recovery point.
    #[command(subcommand)]
    Restore(cmd_restore::RestoreCmd),
    /// Archive a database's changes continuously (binlog), for point-in-time recovery.
    #[command(subcommand)]
    Archive(cmd_mysql::ArchiveCmd),
    /// List and inspect recovery points.
    #[command(subcommand)]
    Points(cmd_points::PointsCmd),
    /// Delete recovery points by a retention policy (frees no space: run prune).
    Forget(cmd_forget::ForgetArgs),
    /// Delete data no recovery point needs.
    Prune(cmd_prune::PruneArgs),
    /// Copy recovery points into another vault (another site), incrementally.
    Copy(cmd_copy::CopyArgs),
    /// Replicate a bucket to another bucket continuously (or: `replicate status`).
    Replicate(cmd_replicate::ReplicateArgs),
    /// Check lifeboat.toml: every error at once, with line, key and a fix. Exit 0 valid, 1 not.
    Validate(cmd_validate::ValidateArgs),
    /// Show what `apply` would create, change or remove (+ ~ -).
    Plan(cmd_apply::PlanArgs),
    /// Make the vaults and the state match lifeboat.toml (never deletes a recovery point).
    Apply(cmd_apply::ApplyArgs),
    /// The applied configuration kept in vaults: `config restore`.
    #[command(subcommand)]
    Config(cmd_apply::ConfigCmd),
    /// Job history, and running a plan now.
    #[command(subcommand)]
    Jobs(cmd_jobs::JobsCmd),
    /// Per resource: in a plan, newest point within its schedule, copies, locks, archive lag. Exit 0 compliant, 3 not.
    Report(cmd_report::ReportArgs),
    /// Run the daemon (plan schedules, catch-up, continuous jobs, retention, notifications) and the REST API with /metrics (SIGHUP reloads, SIGTERM stops).
    Serve(cmd_serve::ServeArgs),
    /// Manage a restored instance (stop what `restore instance --start` started).
    #[command(subcommand)]
    Instance(cmd_instance::InstanceCmd),
    /// Bring a stack up in a site, stop it, check it (`[stack.NAME]` in the file).
    #[command(subcommand)]
    Stack(cmd_stack::StackCmd),
    /// Recover a stack into a site from what the site holds (copies, archive, replica); reports RPO and RTO. Exit 3 when an objective was missed.
    Recover(cmd_stack::RecoverArgs),
    /// Recover a stack into a scratch stack, run its check, tear it down, record it. Exit 0 passed, 3 failed.
    Drill(cmd_drill::DrillArgs),
}

fn main() -> ExitCode {
    common::quiet_on_closed_pipe();
    let cli = Cli::parse();
    if let Some(parent) = cli.global.parent_pid {
        lifeboat_control::launch::die_with_parent(parent);
    }
    common::init_tracing(&cli.global);
    let r = match cli.command {
        Command::Vault(c) => cmd_vault::run(&cli.global, c),
        Command::Key(c) => cmd_key::run(&cli.global, c),
        Command::Backup(c) => cmd_backup::run(&cli.global, c),
        Command::Restore(c) => cmd_restore::run(&cli.global, c),
        Command::Archive(c) => cmd_mysql::archive(&cli.global, c),
        Command::Points(c) => cmd_points::run(&cli.global, c),
        Command::Forget(a) => cmd_forget::run(&cli.global, a),
        Command::Prune(a) => cmd_prune::run(&cli.global, a),
        Command::Copy(a) => cmd_copy::run(&cli.global, a),
        Command::Replicate(a) => cmd_replicate::run(&cli.global, a),
        Command::Validate(a) => cmd_validate::run(&cli.global, a),
        Command::Plan(a) => cmd_apply::plan(&cli.global, a),
        Command::Apply(a) => cmd_apply::apply(&cli.global, a),
        Command::Config(c) => cmd_apply::config(&cli.global, c),
        Command::Jobs(c) => cmd_jobs::run(&cli.global, c),
        Command::Report(a) => cmd_report::run(&cli.global, a),
        Command::Stack(c) => cmd_stack::run(&cli.global, c),
        Command::Recover(a) => cmd_stack::recover(&cli.global, a),
        Command::Drill(a) => cmd_drill::run(&cli.global, a),
        Command::Instance(c) => cmd_instance::run(&cli.global, c),
        Command::Serve(a) => cmd_serve::run(&cli.global, a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            common::failure_code(&e)
        }
    }
}
