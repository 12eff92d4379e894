//! `lifeboat restore files` (and the dispatch to the other protectors' restores).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use clap::Subcommand;
use lifeboat_files::{Counters, RestoreOptions};

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
    },
    /// Restore a MySQL/MariaDB snapshot into a server, optionally to a point in time.
    Mysql(crate::cmd_mysql::RestoreArgs),
    /// Restore a bucket point into a bucket (a directory or an S3 bucket).
    Bucket(crate::cmd_bucket::RestoreBucketArgs),
}

pub fn run(g: &Global, cmd: RestoreCmd) -> Result<ExitCode> {
    let (point, to, path, verify, resource) = match cmd {
        RestoreCmd::Files {
            point,
            to,
            path,
            verify,
            resource,
        } => (point, to, path, verify, resource),
        RestoreCmd::Mysql(a) => return crate::cmd_mysql::restore(g, a),
        RestoreCmd::Bucket(a) => return crate::cmd_bucket::restore(g, a),
    };
    let v = g.open()?;
    // A reader's shared lock, before anything loads the index: a prune
    // running meanwhile defers deleting what this restore may read.
    let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "restore")?;
    let (id, _) = crate::pick::select(&v, &point, crate::pick::FILES, resource.as_deref())?;
    let to = std::path::absolute(&to)?;
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let bar = Progress::start(g.progress(), move || {
        format!("{} written", bytes(c.bytes_written.load(Ordering::Relaxed)))
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
        for w in &rep.warnings {
            eprintln!("warning: {w}");
        }
        for d in &rep.damaged {
            eprintln!("damaged, not restored: {d}");
        }
        for f in &rep.verify_failed {
            eprintln!("verify failed: {f}");
        }
        if !g.quiet {
            eprintln!(
                "restored point {} to {}: {} files, {} dirs, {} in {:.1}s{}",
                id.short(),
                to.display(),
                rep.files,
                rep.dirs,
                bytes(rep.bytes),
                secs,
                if verify {
                    format!("; verified {} files", rep.verified)
                } else {
                    String::new()
                }
            );
        }
    }
    if !rep.damaged.is_empty() || !rep.verify_failed.is_empty() {
        eprintln!(
            "error: {} file(s) could not be restored intact; everything else was restored (run `lifeboat vault check --read-data`)",
            rep.damaged.len() + rep.verify_failed.len()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
