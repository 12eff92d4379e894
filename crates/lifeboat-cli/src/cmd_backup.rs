//! `lifeboat backup files` (and the dispatch to the other protectors' backups).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use clap::Subcommand;
use lifeboat_files::{BackupOptions, Counters};

use crate::common::{Global, Progress, bytes, print_json};

#[derive(Subcommand, Debug)]
pub enum BackupCmd {
    /// Back up files and directories.
    Files {
        /// Paths to back up.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Tag the point (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Exclude paths matching a gitignore-style pattern (repeatable).
        #[arg(long = "exclude")]
        excludes: Vec<String>,
        /// Read exclude patterns from a file, one per line (repeatable).
        #[arg(long = "exclude-file")]
        exclude_files: Vec<PathBuf>,
        /// Stay on the filesystem of each path.
        #[arg(long)]
        one_file_system: bool,
        /// Resource name (default: files:<host>:<paths>); points of one resource form its history.
        #[arg(long)]
        resource: Option<String>,
        /// Read every file, even those unchanged since the parent point.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        retention: crate::cmd_retention::RetentionArgs,
    },
    /// Back up a MySQL/MariaDB server: a consistent snapshot at recorded binlog coordinates.
    Mysql(crate::cmd_mysql::BackupArgs),
    /// Back up a bucket (a directory or an S3 bucket), or the keys under a prefix.
    Bucket(crate::cmd_bucket::BackupBucketArgs),
    /// Back up an instance: its files, disk images and launch spec, from a TOML spec.
    Instance(crate::cmd_instance::BackupInstanceArgs),
}

pub fn run(g: &Global, cmd: BackupCmd) -> Result<ExitCode> {
    let (paths, tags, excludes, exclude_files, one_file_system, resource, force, retention) =
        match cmd {
            BackupCmd::Files {
                paths,
                tags,
                excludes,
                exclude_files,
                one_file_system,
                resource,
                force,
                retention,
            } => (
                paths,
                tags,
                excludes,
                exclude_files,
                one_file_system,
                resource,
                force,
                retention,
            ),
            BackupCmd::Mysql(a) => return crate::cmd_mysql::backup(g, a),
            BackupCmd::Bucket(a) => return crate::cmd_bucket::backup(g, a),
            BackupCmd::Instance(a) => return crate::cmd_instance::backup(g, a),
        };
    let v = g.open()?;
    retention.apply(&v)?;
    let opts = BackupOptions {
        paths,
        excludes,
        exclude_files,
        one_file_system,
        resource,
        tags,
        kind: None,
        force_full: force,
    };
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let bar = Progress::start(g.progress(), move || {
        format!(
            "{} files, {} dirs, {} read",
            c.files.load(Ordering::Relaxed),
            c.dirs.load(Ordering::Relaxed),
            bytes(c.bytes_read.load(Ordering::Relaxed))
        )
    });
    let _span = tracing::info_span!("job", kind = "backup", protector = "files").entered();
    let res =
        match crate::common::interruptible(bar, || lifeboat_files::backup(&v, &opts, &counters))? {
            Ok(r) => r,
            Err(code) => return Ok(code),
        };
    crate::common::print_notes_and_warnings(g, &res.notes, &res.warnings);
    let s = &res.point.summary;
    if g.json {
        print_json(&serde_json::json!({
            "id": res.id.to_hex(),
            "resource": res.point.resource,
            "parent": res.point.parent.map(|p| p.to_hex()),
            "files": s.files,
            "dirs": s.dirs,
            "size": s.size,
            "bytes_read": s.bytes_read,
            "bytes_new": s.bytes_new,
            "bytes_stored": s.bytes_stored,
            "blobs_new": s.blobs_new,
            "duration_s": s.duration_s,
            "warnings": res.warnings,
            "notes": res.notes,
        }))?;
    } else if g.quiet {
        println!("{}", res.id);
    } else {
        eprintln!(
            "{} files, {} dirs, {} in total; read {}, new {}, stored {} in {:.1}s",
            s.files,
            s.dirs,
            bytes(s.size),
            bytes(s.bytes_read),
            bytes(s.bytes_new),
            bytes(s.bytes_stored),
            s.duration_s
        );
        println!("{}", res.id);
    }
    Ok(crate::common::finished(&res.warnings))
}
