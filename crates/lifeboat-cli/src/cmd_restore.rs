//! `lifeboat restore files` (and the dispatch to the other protectors' restores).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use lifeboat_files::{Counters, Overwrite, RestoreOptions};

use crate::common::{Global, Progress, bytes, print_json};

#[derive(Subcommand, Debug)]
pub enum RestoreCmd {
    /// Restore files; the point's absolute paths are recreated below --to.
    Files {
        /// Point: full id, unique id prefix, or `latest` (the newest files point).
        point: String,
        /// Target directory.
        #[arg(long)]
        to: PathBuf,
        /// Restore only this path of the point (as it was backed up).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Re-read what was written and check it against the point.
        #[arg(long)]
        verify: bool,
        /// Only a point of this resource (with `latest`: its newest files point).
        #[arg(long)]
        resource: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Restore a MySQL/MariaDB snapshot into a server, optionally to a point in time.
    Mysql(crate::cmd_mysql::RestoreArgs),
    /// Restore a bucket point into a bucket (a directory or an S3 bucket).
    Bucket(crate::cmd_bucket::RestoreBucketArgs),
    /// Restore an instance into a directory, with its launch spec resolved for this site.
    Instance(crate::cmd_instance::RestoreInstanceArgs),
}

/// What a files restore does with what is already in its target.
#[derive(clap::Args, Debug)]
pub struct PolicyArgs {
    /// What to do with what exists in a non-empty target (which is refused
    /// without this): `if-changed` replaces what differs in size, time, type or
    /// link target (and resumes a killed restore), `always` replaces everything,
    /// `never` only adds what is missing.
    #[arg(long, value_enum)]
    overwrite: Option<OverwriteArg>,
    /// Show what would be created, replaced and deleted; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Also remove what the point does not have, in the restored directories
    /// at or below the point's backed-up paths.
    #[arg(long)]
    pub(crate) delete: bool,
}

impl PolicyArgs {
    /// The files restore's overwrite policy (`None`: a non-empty target is refused).
    pub(crate) fn overwrite(&self) -> Option<Overwrite> {
        self.overwrite.map(|o| match o {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Never => Overwrite::Never,
        })
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OverwriteArg {
    Always,
    IfChanged,
    Never,
}

/// The progress line: written of total, percentage and time left.
fn progress_line(written: u64, total: u64, elapsed: Duration) -> String {
    if total == 0 {
        return format!("{} written", bytes(written));
    }
    crate::common::fraction_line(written, total, elapsed, bytes)
}

pub fn run(g: &Global, cmd: RestoreCmd) -> Result<ExitCode> {
    let (point, to, path, verify, resource, policy) = match cmd {
        RestoreCmd::Files {
            point,
            to,
            path,
            verify,
            resource,
            policy,
        } => (point, to, path, verify, resource, policy),
        RestoreCmd::Mysql(a) => return crate::cmd_mysql::restore(g, a),
        RestoreCmd::Bucket(a) => return crate::cmd_bucket::restore(g, a),
        RestoreCmd::Instance(a) => return crate::cmd_instance::restore(g, a),
    };
    let v = g.open()?;
    // A reader's shared lock, before anything loads the index: a prune
    // running meanwhile defers deleting what this restore may read.
    let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "restore")?;
    let (id, _) = crate::pick::select(&v, &point, crate::pick::FILES, resource.as_deref())?;
    let to = std::path::absolute(&to)?;
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let begun = std::time::Instant::now();
    let bar = Progress::start(g.progress() && !policy.dry_run, move || {
        progress_line(
            c.bytes_written.load(Ordering::Relaxed),
            c.size.load(Ordering::Relaxed),
            begun.elapsed(),
        )
    });
    let _span = tracing::info_span!("job", kind = "restore", protector = "files").entered();
    let started = std::time::Instant::now();
    let rep = lifeboat_files::restore(
        &v,
        &id,
        &RestoreOptions {
            to: to.clone(),
            path,
            verify,
            overwrite: policy.overwrite(),
            dry_run: policy.dry_run,
            delete: policy.delete,
            ..Default::default()
        },
        &counters,
    )?;
    drop(bar);
    let secs = started.elapsed().as_secs_f64();
    if g.json {
        let mut j = serde_json::to_value(&rep)?;
        j["point"] = id.to_hex().into();
        j["duration_s"] = secs.into();
        print_json(&j)?;
    } else {
        for a in &rep.actions {
            println!("{} {}", a.action, a.path);
        }
        for w in &rep.warnings {
            eprintln!("warning: {w}");
        }
        for d in &rep.damaged {
            eprintln!("damaged, not restored: {d}");
        }
        for d in &rep.not_deleted {
            eprintln!(
                "--delete left {d} alone: the point's tree of it cannot be read, so what is below it is kept"
            );
        }
        for f in &rep.verify_failed {
            eprintln!("verify failed: {f}");
        }
        if !g.quiet {
            eprintln!("{}", summary(&rep, &id, &to, secs, verify, policy.dry_run));
        }
    }
    for e in rep.errors.iter().take(20) {
        eprintln!("error: {e}");
    }
    if rep.errors.len() > 20 {
        eprintln!("error: … and {} more", rep.errors.len() - 20);
    }
    if !rep.errors.is_empty() {
        eprintln!(
            "error: {} local error(s) writing the target (the files named were not restored; what was there is kept); fix the cause and restore again with --overwrite if-changed",
            rep.errors.len()
        );
        return Ok(ExitCode::from(1));
    }
    if !rep.damaged.is_empty() || !rep.verify_failed.is_empty() {
        eprintln!(
            "error: {} entr(ies) could not be restored intact; everything else was restored (run `lifeboat vault check --read-data`)",
            rep.damaged.len() + rep.verify_failed.len()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(
    rep: &lifeboat_files::RestoreReport,
    id: &lifeboat_vault::Id,
    to: &std::path::Path,
    secs: f64,
    verify: bool,
    dry_run: bool,
) -> String {
    let mut parts = vec![format!("{} files", rep.files)];
    for (n, what) in [
        (rep.hardlinks, "hard links"),
        (rep.symlinks, "symlinks"),
        (rep.specials, "fifos/devices"),
        (rep.unchanged, "unchanged"),
        (rep.deleted, "deleted"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.push(format!("{} dirs", rep.dirs));
    if dry_run {
        return format!(
            "dry run of point {} to {}: {} actions, {} to write; nothing was written",
            id.short(),
            to.display(),
            rep.actions.len(),
            bytes(rep.total_bytes)
        );
    }
    format!(
        "restored point {} to {}: {}, {} in {:.1}s{}",
        id.short(),
        to.display(),
        parts.join(", "),
        bytes(rep.bytes),
        secs,
        if verify {
            format!("; verified {} files", rep.verified)
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_total_percentage_and_eta_when_the_size_is_known() {
        assert_eq!(progress_line(5, 0, Duration::from_secs(1)), "5 B written");
        let l = progress_line(50 << 20, 100 << 20, Duration::from_secs(10));
        assert!(l.starts_with("50.00 MiB of 100.00 MiB (50%), ETA"), "{l}");
        assert!(l.contains("10 seconds"), "{l}");
    }
}
