//! What a backup stores for the paths it is given: the selection as a tree of
//! path components below `/`, and where a given path that lies inside
//! another given path is stored.
//!
//! Overlapping paths lose nothing. A path inside another (`x` and `x/sub`)
//! is stored once, by the walk of the outer one, and whole: excludes and
//! `--one-file-system` of the walk around it do not apply to it, as they do
//! not to any given path. A path reached through a symlink that the walk of
//! another given path stores as a link (`x` and `x/dir/app`, `x/dir` a link
//! to `live`) is stored at its real path (`live/app`), and the link stays a
//! link: a restore in place gives back exactly what was there, and a restore
//! elsewhere never writes through a link. (restic stores such a link as a
//! directory holding the target's entries, which a restore in place turns
//! into a real directory; GNU tar stores both and writes through the link
//! when it extracts.)

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use lifeboat_vault::tree::Node;

use crate::{FilesError, Result};

/// The selection at one path.
#[derive(Debug, Default)]
pub(crate) struct Sel {
    /// A given path: stored whole.
    pub whole: bool,
    /// A node built by the caller, placed here.
    pub built: Option<Node>,
    /// Given paths (or built nodes) below it, by name.
    pub children: BTreeMap<OsString, Sel>,
}

impl Sel {
    /// The selection of `paths` (absolute, normalized) and of the caller's
    /// `extra` nodes (which must not lie inside a given path).
    pub fn new(paths: &[PathBuf], extra: Vec<(PathBuf, Node)>) -> Result<Sel> {
        let mut sel = Sel::default();
        for p in paths {
            let mut cur = &mut sel;
            for c in p.components().skip(1) {
                cur = cur
                    .children
                    .entry(c.as_os_str().to_os_string())
                    .or_default();
            }
            cur.whole = true;
        }
        for (p, node) in extra {
            let mut cur = &mut sel;
            for c in p.components().skip(1) {
                if cur.whole {
                    return Err(FilesError::Usage(format!(
                        "{} lies inside a backed-up path; give it only once",
                        p.display()
                    )));
                }
                cur = cur
                    .children
                    .entry(c.as_os_str().to_os_string())
                    .or_default();
            }
            if cur.whole || !cur.children.is_empty() || cur.built.is_some() {
                return Err(FilesError::Usage(format!(
                    "{} is given twice, or contains a backed-up path",
                    p.display()
                )));
            }
            cur.built = Some(node);
        }
        Ok(sel)
    }
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

/// The paths to store for `paths` (absolute, normalized, sorted): a path whose
/// way from another given path passes a symlink (which that path's walk
/// stores as a link) is replaced by its real path. Returns the paths (sorted,
/// without duplicates) and a note per path moved.
pub(crate) fn relocate(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let mut out = Vec::with_capacity(paths.len());
    let mut notes = Vec::new();
    for p in paths {
        let outer = paths.iter().filter(|q| *q != p && p.starts_with(q)).min();
        let link = outer.and_then(|q| {
            p.ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(q))
                .filter(|a| is_symlink(a))
                .last()
        });
        let (Some(q), Some(link)) = (outer, link) else {
            out.push(p.clone());
            continue;
        };
        let parent = p.parent().expect("a path inside another has a parent");
        let name = p.file_name().expect("a path inside another has a name");
        let real = std::fs::canonicalize(parent)
            .map_err(|e| FilesError::io("resolve the symlinks of", parent, e))?
            .join(name);
        let target = std::fs::read_link(link)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".into());
        notes.push(format!(
            "{} is reached through the symlink {} (to {target}), which the backup of {} stores as a link: stored at its real path {}",
            p.display(),
            link.display(),
            q.display(),
            real.display()
        ));
        out.push(real);
    }
    out.sort();
    out.dedup();
    Ok((out, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_below_another_paths_symlink_moves_to_its_real_path() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        let (x, live) = (root.join("x"), root.join("live"));
        std::fs::create_dir_all(live.join("app")).unwrap();
        std::fs::create_dir_all(x.join("sub")).unwrap();
        std::os::unix::fs::symlink(&live, x.join("dir")).unwrap();
        let given = vec![x.clone(), x.join("dir/app"), x.join("sub")];
        let (paths, notes) = relocate(&given).unwrap();
        assert_eq!(paths, vec![live.join("app"), x.clone(), x.join("sub")]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("x/dir (to "), "{notes:?}");
        // Alone, a path through a symlink is kept as given (mirrored).
        let alone = vec![x.join("dir/app")];
        assert_eq!(relocate(&alone).unwrap(), (alone, Vec::new()));
    }

    #[test]
    fn selection_holds_nested_given_paths() {
        let sel = Sel::new(&[PathBuf::from("/a"), PathBuf::from("/a/b/c")], Vec::new()).unwrap();
        let a = &sel.children[&OsString::from("a")];
        assert!(a.whole);
        let c = &a.children[&OsString::from("b")].children[&OsString::from("c")];
        assert!(c.whole && !a.children[&OsString::from("b")].whole);
        let err = Sel::new(
            &[PathBuf::from("/a")],
            vec![(PathBuf::from("/a/v.img"), Node::default())],
        );
        assert!(err.is_err());
    }
}
