//! `lifeboat backup bucket` and `lifeboat restore bucket`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use clap::Args;
use lifeboat_bucket::Bucket;
use lifeboat_bucket::restore::RestoreOptions;
use lifeboat_bucket::snapshot::{Counters, SnapshotOptions};

use crate::common::{Global, Progress, bytes, print_json};

#[derive(Args, Debug)]
pub struct BackupBucketArgs {
    /// The bucket: file:///dir or s3://BUCKET[/PREFIX]?endpoint=URL&region=R.
    #[arg(long)]
    bucket: String,
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Tag the point (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Resource name (default: bucket:<address>[#prefix]).
    #[arg(long)]
    resource: Option<String>,
    /// Read every object, even those unchanged since the parent point.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    retention: crate::cmd_retention::RetentionArgs,
}

#[derive(Args, Debug)]
pub struct RestoreBucketArgs {
    /// Point: full id, unique id prefix, or `latest` (the newest bucket point).
    point: String,
    /// The bucket to restore into (a directory is created when missing).
    #[arg(long)]
    to_bucket: String,
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// With `latest`: the newest point of this resource.
    #[arg(long)]
    resource: Option<String>,
    /// Objects restored at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

pub fn backup(g: &Global, a: BackupBucketArgs) -> Result<ExitCode> {
    let v = g.open()?;
    a.retention.apply(&v)?;
    let bucket = Bucket::open_address(&a.bucket, false)?;
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let bar = Progress::start(g.progress(), move || {
        format!(
            "{} objects, {} read",
            c.objects.load(Ordering::Relaxed),
            bytes(c.bytes_read.load(Ordering::Relaxed))
        )
    });
    let _span = tracing::info_span!("job", kind = "backup", protector = "bucket").entered();
    let opts = SnapshotOptions {
        prefix: a.prefix,
        resource: a.resource,
        tags: a.tags,
        force_full: a.force,
    };
    let res = match crate::common::interruptible(bar, || {
        lifeboat_bucket::snapshot::snapshot(&v, &bucket, &opts, &counters)
    })? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    for w in &res.warnings {
        eprintln!("warning: {w}");
    }
    let s = &res.point.summary;
    if g.json {
        print_json(&serde_json::json!({
            "id": res.id.to_hex(),
            "resource": res.point.resource,
            "parent": res.point.parent.map(|p| p.to_hex()),
            "objects": s.files,
            "objects_read": counters.objects_read.load(Ordering::Relaxed),
            "size": s.size,
            "bytes_read": s.bytes_read,
            "bytes_new": s.bytes_new,
            "bytes_stored": s.bytes_stored,
            "duration_s": s.duration_s,
            "warnings": res.warnings,
        }))?;
    } else if g.quiet {
        println!("{}", res.id);
    } else {
        eprintln!(
            "{} objects, {} in total; read {} of {} objects, new {}, stored {} in {:.1}s",
            s.files,
            bytes(s.size),
            bytes(s.bytes_read),
            counters.objects_read.load(Ordering::Relaxed),
            bytes(s.bytes_new),
            bytes(s.bytes_stored),
            s.duration_s
        );
        println!("{}", res.id);
    }
    Ok(crate::common::finished(&res.warnings))
}

pub fn restore(g: &Global, a: RestoreBucketArgs) -> Result<ExitCode> {
    let v = g.open()?;
    // A reader's shared lock, before anything loads the index: a prune
    // running meanwhile defers deleting what this restore may read.
    let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "restore")?;
    let (id, _) = crate::pick::select(&v, &a.point, crate::pick::BUCKET, a.resource.as_deref())?;
    let bucket = Bucket::open_address(&a.to_bucket, true)?;
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let bar = Progress::start(g.progress(), move || {
        format!("{} written", bytes(w.load(Ordering::Relaxed)))
    });
    let _span = tracing::info_span!("job", kind = "restore", protector = "bucket").entered();
    let started = std::time::Instant::now();
    let opts = RestoreOptions {
        prefix: a.prefix,
        concurrency: a.concurrency.max(1),
    };
    let rep = lifeboat_bucket::restore::restore(&v, &id, &bucket, &opts, &written)?;
    drop(bar);
    let secs = started.elapsed().as_secs_f64();
    if g.json {
        let mut j = serde_json::to_value(&rep)?;
        j["point"] = id.to_hex().into();
        j["duration_s"] = secs.into();
        print_json(&j)?;
    } else {
        for f in &rep.failed {
            eprintln!("not restored: {f}");
        }
        if !g.quiet {
            eprintln!(
                "restored point {} to {}: {} objects, {} in {:.1}s",
                id.short(),
                bucket.address(),
                rep.objects,
                bytes(rep.bytes),
                secs
            );
        }
    }
    if !rep.failed.is_empty() {
        eprintln!(
            "error: {} object(s) could not be restored; everything else was restored",
            rep.failed.len()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
