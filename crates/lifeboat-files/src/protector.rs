//! The files protector as the layers above it see it (`lifeboat-protector`).

use std::path::Path;

use std::sync::atomic::Ordering::Relaxed;

use lifeboat_protector::{
    Backed, BackupError, BackupJob, Browse, BrowseError, Description, Entry, Key, Listing, Problem,
    Protector, Query, Reading, ResourceSettings, RestoreForm, Schema, Shape, read_settings,
    time_of, watched,
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
