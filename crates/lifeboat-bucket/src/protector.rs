//! The bucket protector as the layers above it see it (`lifeboat-protector`).

use chrono::{DateTime, Utc};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use lifeboat_protector::{
    Backed, BackupError, BackupJob, Browse, BrowseError, Description, Entry, Key, Listing, Problem,
    Protector, Query, Reading, ResourceSettings, RestoreError, RestoreForm, RestoreJob, Restored,
    Schema, Shape, Target, TargetKind, read_settings, time_of, watched,
};
use lifeboat_vault::{Id, RecoveryPoint, Vault};

use crate::BucketError;

/// S3 and directory buckets.
pub struct BucketProtector;

/// The bucket protector, for the registry.
pub static PROTECTOR: BucketProtector = BucketProtector;

/// The newest object modification time in bucket point `p` (the time its
/// objects are from; the point's own time is when it was taken, after that).
pub fn newest_object(v: &Vault, p: &RecoveryPoint) -> Option<DateTime<Utc>> {
    let index = v.load_index().ok()?;
    let mut newest: i64 = 0;
    crate::restore::walk(v, &index, &p.tree, "", &mut |_, n| {
        newest = newest.max(n.mtime_ns);
        Ok(())
    })
    .ok()?;
    time_of(newest)
}

impl Protector for BucketProtector {
    fn describe(&self) -> Description {
        Description {
            kind: "bucket",
            point_kinds: &["bucket"],
            title: "Buckets (S3 or a directory)",
            browse: Some(Browse::Prefix),
            levels: &[],
            restore: RestoreForm::Bucket,
            command: "lifeboat restore bucket",
            restores_into: TargetKind::Bucket,
        }
    }

    /// A bucket point's data is from its newest object (the point was taken after).
    fn data_time(&self, vault: &Vault, point: &RecoveryPoint) -> Option<DateTime<Utc>> {
        newest_object(vault, point).or(Some(point.time))
    }

    /// The keys of the point that start with `query.prefix`.
    fn back_up(&self, job: &BackupJob) -> Result<Backed, BackupError> {
        let s: Settings = BackupError::settings(job)?;
        let failed = |e: BucketError| BackupError::Failed(e.to_string());
        let bucket = crate::Bucket::open_address(&s.location, false).map_err(failed)?;
        let opts = crate::snapshot::SnapshotOptions {
            prefix: String::new(),
            resource: Some(job.resource.to_string()),
            tags: job.tags.clone(),
            force_full: false,
        };
        let counters = crate::snapshot::Counters::default();
        let read = || Reading {
            unit: "objects",
            items: counters.objects.load(Relaxed),
            items_total: None,
            bytes: counters.bytes_read.load(Relaxed),
            bytes_total: None,
        };
        let vault = job.vault;
        let res = watched(job.watch, &read, || {
            crate::snapshot::snapshot(vault, &bucket, &opts, &counters)
        })
        .map_err(failed)?;
        Ok(Backed::with_warnings(res.id, res.point, res.warnings))
    }

    fn contents(
        &self,
        vault: &Vault,
        _id: &Id,
        point: &RecoveryPoint,
        query: &Query,
    ) -> Result<Listing, BrowseError> {
        let prefix = query.prefix.clone().unwrap_or_default();
        let index = vault
            .load_index()
            .map_err(|e| BrowseError::Vault(e.to_string()))?;
        let mut entries = Vec::new();
        let stop = "listing limit reached";
        let walked = crate::restore::walk(vault, &index, &point.tree, "", &mut |key, node| {
            if key.starts_with(&prefix) {
                if entries.len() > query.limit {
                    return Err(BucketError::BadPoint(stop.into()));
                }
                entries.push(Entry {
                    name: key,
                    kind: "object".into(),
                    size: node.size,
                    mtime: time_of(node.mtime_ns),
                });
            }
            Ok(())
        });
        match walked {
            Err(BucketError::BadPoint(m)) if m == stop => {}
            Err(e) => return Err(BrowseError::Vault(e.to_string())),
            Ok(()) => {}
        }
        Ok(Listing::cut(prefix, entries, query.limit))
    }

    /// Into a bucket location (keys under the options' `prefix` only): each
    /// object put whole; one that cannot be restored is named, the others
    /// are restored.
    fn restore(&self, job: &RestoreJob) -> Result<Restored, RestoreError> {
        let Target::Bucket(t) = &job.target else {
            return Err(job.wrong_target(TargetKind::Bucket));
        };
        job.no_roll_forward()?;
        let s: RestoreSettings = job.options()?;
        let bucket = crate::Bucket::open(&t.location, t.create).map_err(restore_error)?;
        let opts = crate::restore::RestoreOptions {
            prefix: s.prefix,
            ..Default::default()
        };
        let written = AtomicU64::new(0);
        // What the control plane has always shown of a bucket restore: the bytes.
        let read = || Reading {
            unit: "objects",
            items: 0,
            items_total: None,
            bytes: written.load(Relaxed),
            bytes_total: None,
        };
        let vault = job.vault;
        let rep = watched(job.watch, &read, || {
            crate::restore::restore(vault, job.id, &bucket, &opts, &written)
        })
        .map_err(restore_error)?;
        Ok(Restored {
            items: rep.objects,
            bytes: rep.bytes,
            summary: format!("{} objects, {} bytes", rep.objects, rep.bytes),
            data_time: self.data_time(vault, job.point),
            warnings: Vec::new(),
            not_restored: rep.failed.clone(),
            errors: Vec::new(),
            report: serde_json::to_value(&rep).unwrap_or_default(),
        })
    }
}

/// A bucket restore's options (the restore job's JSON).
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreSettings {
    /// Only keys starting with this.
    pub prefix: String,
}

/// A bucket restore's error through the interface: a target that cannot
/// be opened and a point that is no bucket point are refusals.
pub fn restore_error(e: BucketError) -> RestoreError {
    match e {
        BucketError::BadAddress { .. }
        | BucketError::NoBucket { .. }
        | BucketError::BadPoint(_) => RestoreError::Refused(e.to_string()),
        e => RestoreError::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_protector::{BucketTarget, RollForward, Unwatched};

    /// A directory bucket's point restored through the interface: only the
    /// keys under the options' prefix, said in the summary; a directory
    /// target and a roll forward are refused, writing nothing.
    #[test]
    fn a_bucket_point_is_restored_into_a_bucket_location_under_its_prefix() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("static")).unwrap();
        std::fs::write(src.join("static/app.js"), b"js").unwrap();
        std::fs::write(src.join("index.html"), b"<h1>shop</h1>").unwrap();
        let v = lifeboat_vault::vault::throwaway(&t.path().join("v"));
        let bucket =
            crate::Bucket::open_address(&format!("file://{}", src.display()), false).unwrap();
        let made = crate::snapshot::snapshot(&v, &bucket, &Default::default(), &Default::default())
            .unwrap();
        let to = t.path().join("to");
        let target = || {
            Target::Bucket(BucketTarget {
                location: crate::Bucket::parse(&format!("file://{}", to.display())).unwrap(),
                create: true,
            })
        };
        let job = |target, roll_forward| RestoreJob {
            vault: &v,
            id: &made.id,
            point: &made.point,
            target,
            roll_forward,
            options: serde_json::json!({"prefix": "static/"}),
            watch: &Unwatched,
        };
        let e = PROTECTOR
            .restore(&job(Target::Directory(to.clone()), None))
            .unwrap_err();
        assert!(e.nothing_written() && !to.exists(), "{e}");
        let e = PROTECTOR
            .restore(&job(target(), Some(RollForward::Latest)))
            .unwrap_err();
        assert!(e.nothing_written() && !to.exists(), "{e}");
        let r = PROTECTOR.restore(&job(target(), None)).unwrap();
        assert_eq!(r.summary, "1 objects, 2 bytes");
        assert_eq!((r.items, r.bytes, r.whole()), (1, 2, true));
        assert_eq!(std::fs::read(to.join("static/app.js")).unwrap(), b"js");
        assert!(!to.join("index.html").exists());
        assert_eq!(r.report["objects"], 1);
    }
}

// --- `[resource.NAME]` of kind `bucket`: its keys and their checks ---

/// A bucket resource's settings (`[resource.NAME]` of kind `bucket`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    location: String,
}

/// The keys of a bucket resource.
const KEYS: &[Key] = &[Key::new(
    "location",
    Shape::String,
    "file:///path or s3://bucket/prefix?endpoint=...&region=...",
)
.required("add `location = \"file:///path/to/bucket\"` (or an s3:// URL)")];

impl ResourceSettings for BucketProtector {
    fn settings(&self) -> Schema {
        Schema {
            implied_by: &["location"],
            keys: KEYS,
        }
    }

    /// The location is a bucket's address.
    fn check_settings(&self, settings: &serde_json::Value) -> Vec<Problem> {
        let s: Settings = match read_settings(settings) {
            Ok(s) => s,
            Err(p) => return vec![p],
        };
        let Err(e) = lifeboat_vault::Location::parse(&s.location) else {
            return Vec::new();
        };
        let reason = match e {
            lifeboat_vault::VaultError::BadLocation { reason, .. } => reason,
            other => other.to_string(),
        };
        vec![Problem::at(
            "location",
            format!("`{}` is not a bucket location: {reason}", s.location),
            "write `file:///path/to/bucket` or `s3://bucket/prefix?endpoint=...&region=...`",
        )]
    }
}
