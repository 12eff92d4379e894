//! The files protector as the layers above it see it (`lifeboat-protector`).

use std::path::Path;

use std::sync::atomic::Ordering::Relaxed;

use lifeboat_protector::{
    Backed, BackupError, BackupJob, Browse, BrowseError, Description, Entry, Key, Listing, Problem,
    Protector, Query, Reading, ResourceSettings, RestoreError, RestoreForm, RestoreJob, Restored,
    Schema, Shape, Target, TargetKind, read_settings, time_of, watched,
};
use lifeboat_vault::{Id, RecoveryPoint, Vault};

use crate::FilesError;

/// Directory trees.
pub struct FilesProtector;

/// The files protector, for the registry.
pub static PROTECTOR: FilesProtector = FilesProtector;

/// One directory of a tree point: `query.path` (default `/`), each entry
/// named by its absolute path in the point. Shared by every protector
/// whose points are directory trees (an instance's).
pub fn tree_contents(vault: &Vault, id: &Id, query: &Query) -> Result<Listing, BrowseError> {
    let path = query.path.clone().unwrap_or_else(|| "/".into());
    if path.contains('\0') {
        return Err(BrowseError::BadQuery("the path holds a NUL byte".into()));
    }
    let list =
        crate::list::list(vault, id, Some(Path::new(&path)), false).map_err(|e| match e {
            FilesError::NotInPoint(p) => BrowseError::NotInPoint(p.display().to_string()),
            e => BrowseError::Vault(e.to_string()),
        })?;
    let entries = list
        .into_iter()
        .map(|e| Entry {
            name: e.path,
            kind: format!("{:?}", e.kind).to_lowercase(),
            size: e.size,
            mtime: time_of(e.mtime_ns),
        })
        .collect();
    Ok(Listing::cut(path, entries, query.limit))
}

/// A files backup's progress: files seen, bytes read.
pub fn files_read(c: &crate::Counters) -> Reading {
    Reading {
        unit: "files",
        items: c.files.load(Relaxed),
        items_total: None,
        bytes: c.bytes_read.load(Relaxed),
        bytes_total: None,
    }
}

impl Protector for FilesProtector {
    fn describe(&self) -> Description {
        Description {
            kind: "files",
            point_kinds: &["files"],
            title: "Directory trees",
            browse: Some(Browse::Tree),
            levels: &[],
            restore: RestoreForm::Files,
            command: "lifeboat restore files",
            restores_into: TargetKind::Directory,
        }
    }

    fn back_up(&self, job: &BackupJob) -> Result<Backed, BackupError> {
        let s: Settings = BackupError::settings(job)?;
        let opts = crate::BackupOptions {
            paths: s.paths,
            excludes: s.excludes,
            exclude_files: Vec::new(),
            one_file_system: s.one_file_system,
            resource: Some(job.resource.to_string()),
            tags: job.tags.clone(),
            kind: None,
            force_full: false,
        };
        let counters = crate::Counters::default();
        let read = || files_read(&counters);
        let vault = job.vault;
        let res = watched(job.watch, &read, || crate::backup(vault, &opts, &counters))
            .map_err(|e| BackupError::Failed(e.to_string()))?;
        Ok(Backed {
            id: res.id,
            point: res.point,
            warnings: res.warnings,
            notes: res.notes,
        })
    }

    fn contents(
        &self,
        vault: &Vault,
        id: &Id,
        _point: &RecoveryPoint,
        query: &Query,
    ) -> Result<Listing, BrowseError> {
        tree_contents(vault, id, query)
    }

    /// Into a directory; a target that is not empty is refused unless an
    /// overwrite policy is given ([`RestoreSettings`]).
    fn restore(&self, job: &RestoreJob) -> Result<Restored, RestoreError> {
        let Target::Directory(to) = &job.target else {
            return Err(job.wrong_target(TargetKind::Directory));
        };
        job.no_roll_forward()?;
        let s: RestoreSettings = job.options()?;
        let opts = crate::RestoreOptions {
            to: to.clone(),
            path: s.path,
            overwrite: s.overwrite,
            as_target: s.as_target,
            ..Default::default()
        };
        let counters = crate::Counters::default();
        let read = || files_written(&counters);
        let vault = job.vault;
        let rep = watched(job.watch, &read, || {
            crate::restore(vault, job.id, &opts, &counters)
        })
        .map_err(restore_error)?;
        Ok(restored(&rep, Some(job.point.time)))
    }
}

/// A files restore's options (the restore job's JSON).
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreSettings {
    /// Only this path of the point (absolute, as backed up).
    pub path: Option<std::path::PathBuf>,
    /// What to do with what is in a non-empty target (`None`: refused).
    pub overwrite: Option<crate::Overwrite>,
    /// With `path` (a directory): restored as the target itself.
    pub as_target: bool,
}

/// A files restore's progress: files finished, bytes written of those to write.
pub fn files_written(c: &crate::Counters) -> Reading {
    let total = c.size.load(Relaxed);
    Reading {
        unit: "files",
        items: c.files.load(Relaxed),
        items_total: None,
        bytes: c.bytes_written.load(Relaxed),
        bytes_total: (total > 0).then_some(total),
    }
}

/// A files restore's error through the interface: what the protector
/// refuses before writing (a target that is not empty, a path not in the
/// point, a wrong call) apart from what failed.
pub fn restore_error(e: FilesError) -> RestoreError {
    match e {
        FilesError::TargetNotEmpty(_) | FilesError::NotInPoint(_) | FilesError::Usage(_) => {
            RestoreError::Refused(e.to_string())
        }
        e => RestoreError::Failed(e.to_string()),
    }
}

/// A files restore's report through the interface (its data from `data_time`).
pub fn restored(
    rep: &crate::RestoreReport,
    data_time: Option<chrono::DateTime<chrono::Utc>>,
) -> Restored {
    Restored {
        items: rep.files,
        bytes: rep.bytes,
        summary: format!(
            "{} files, {} directories, {} bytes",
            rep.files, rep.dirs, rep.bytes
        ),
        data_time,
        warnings: rep.warnings.clone(),
        not_restored: rep.damaged.clone(),
        errors: rep.errors.clone(),
        report: serde_json::to_value(rep).unwrap_or_default(),
    }
}

// --- `[resource.NAME]` of kind `files`: its keys and their checks ---

/// A files resource's settings (`[resource.NAME]` of kind `files`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    paths: Vec<std::path::PathBuf>,
    #[serde(default)]
    excludes: Vec<String>,
    #[serde(default)]
    one_file_system: bool,
}

/// The keys of a files resource.
const KEYS: &[Key] = &[
    Key::new(
        "paths",
        Shape::Strings,
        "absolute paths of the trees backed up",
    )
    .required("add `paths = [\"/abs/path\", ...]`"),
    Key::new(
        "exclude",
        Shape::Strings,
        "gitignore-style patterns left out",
    )
    .field("excludes"),
    Key::new(
        "one_file_system",
        Shape::Bool,
        "stay on each path's file system",
    ),
];

impl ResourceSettings for FilesProtector {
    fn settings(&self) -> Schema {
        Schema {
            implied_by: &["paths"],
            keys: KEYS,
        }
    }

    /// Each path is absolute.
    fn check_settings(&self, settings: &serde_json::Value) -> Vec<Problem> {
        let s: Settings = match read_settings(settings) {
            Ok(s) => s,
            Err(p) => return vec![p],
        };
        let relative = s.paths.iter().enumerate().filter(|(_, p)| !p.has_root());
        relative
            .map(|(i, p)| {
                Problem::item(
                    "paths",
                    i,
                    format!("`{}` is not an absolute path", p.display()),
                    "write each path from `/`",
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vault in `t` holding one files point of directory `data`, which
    /// holds `a.txt` (`hello`) and `sub/b.txt` (`b`).
    fn point_of(t: &Path, data: &Path) -> (Vault, crate::BackupResult) {
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("a.txt"), b"hello").unwrap();
        std::fs::write(data.join("sub/b.txt"), b"b").unwrap();
        let v = lifeboat_vault::vault::throwaway(&t.join("v"));
        let backup = crate::BackupOptions {
            paths: vec![data.to_path_buf()],
            ..Default::default()
        };
        let made = crate::backup(&v, &backup, &Default::default()).unwrap();
        (v, made)
    }

    #[test]
    fn a_tree_point_lists_one_directory_and_names_what_it_lacks() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        let (v, made) = point_of(t.path(), &data);
        let query = |path: &str| Query {
            path: Some(path.into()),
            limit: 10,
            ..Default::default()
        };
        let list = |path: &str| PROTECTOR.contents(&v, &made.id, &made.point, &query(path));
        let l = list(&data.display().to_string()).unwrap();
        let names: Vec<(String, String)> = l
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.kind.clone()))
            .collect();
        let at = |n: &str| data.join(n).display().to_string();
        assert_eq!(
            names,
            [(at("a.txt"), "file".into()), (at("sub"), "dir".into())]
        );
        assert_eq!(l.entries[0].size, 5);
        assert!(matches!(list("/nowhere"), Err(BrowseError::NotInPoint(p)) if p == "/nowhere"));
        assert!(matches!(list("/a\0b"), Err(BrowseError::BadQuery(_))));
    }

    /// Through the interface: into a directory, said in the summary; a
    /// target that is not empty refused in the protector's words (nothing
    /// written), written over with the options' policy; a roll forward
    /// and a target of another kind refused.
    #[test]
    fn a_files_point_is_restored_through_the_interface_and_a_full_target_refused() {
        use lifeboat_protector::{RollForward, Unwatched};
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        let (v, made) = point_of(t.path(), &data);
        let to = t.path().join("to");
        let job = |options, roll_forward| RestoreJob {
            vault: &v,
            id: &made.id,
            point: &made.point,
            target: Target::Directory(to.clone()),
            roll_forward,
            options,
            watch: &Unwatched,
        };
        let r = PROTECTOR
            .restore(&job(serde_json::Value::Null, None))
            .unwrap();
        assert_eq!((r.items, r.bytes, r.whole()), (2, 6, true));
        assert!(r.summary.starts_with("2 files, "), "{}", r.summary);
        assert!(
            r.summary.ends_with(" directories, 6 bytes"),
            "{}",
            r.summary
        );
        assert_eq!(r.data_time, Some(made.point.time));
        let inside = to.join(data.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read(inside.join("a.txt")).unwrap(), b"hello");
        let e = PROTECTOR
            .restore(&job(serde_json::Value::Null, None))
            .unwrap_err();
        assert!(e.nothing_written(), "{e}");
        assert_eq!(
            e.to_string(),
            FilesError::TargetNotEmpty(to.clone()).to_string()
        );
        let again = serde_json::json!({"overwrite": "if-changed"});
        assert!(PROTECTOR.restore(&job(again, None)).is_ok());
        let e = PROTECTOR
            .restore(&job(serde_json::Value::Null, Some(RollForward::Latest)))
            .unwrap_err();
        assert!(e.nothing_written(), "{e}");
    }

    /// A directory of a point restored as the target itself: its files
    /// directly below the target; a file cannot be the target.
    #[test]
    fn a_directory_restored_as_the_target_lands_directly_in_it() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("srv/app/data");
        let (v, made) = point_of(t.path(), &data);
        let restore = |to: &str, path: std::path::PathBuf| {
            let ropts = crate::RestoreOptions {
                to: t.path().join(to),
                path: Some(path),
                as_target: true,
                ..Default::default()
            };
            crate::restore(&v, &made.id, &ropts, &Default::default())
        };
        restore("to", data.clone()).unwrap();
        let to = t.path().join("to");
        assert_eq!(std::fs::read(to.join("a.txt")).unwrap(), b"hello");
        assert_eq!(std::fs::read(to.join("sub/b.txt")).unwrap(), b"b");
        assert!(!to.join("srv").exists());
        let e = restore("to2", data.join("a.txt")).unwrap_err();
        assert!(
            e.to_string()
                .contains("only a directory can be restored as the target"),
            "{e}"
        );
    }
}
