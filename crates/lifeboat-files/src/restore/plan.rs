//! Restore planning: the point's trees as a flat list of entries, each with
//! its parent directory, a checked name and its hard-link group — no
//! filesystem access. Names that could leave the target, names that appear
//! twice in one directory, trees that cannot be read and trees nested deeper
//! than [`MAX_DEPTH`] become problems, not entries.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use lifeboat_vault::tree::{Node, NodeKind, Tree};
use lifeboat_vault::{Id, Index, Vault};
use rayon::prelude::*;

use crate::{FilesError, Result};

/// Directory levels a restore follows below its target.
pub(crate) const MAX_DEPTH: u32 = 4096;
/// The parent of an entry directly below the target.
pub(crate) const TARGET: u32 = u32::MAX;

/// One thing to restore.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Index of the directory entry holding it, or [`TARGET`].
    pub parent: u32,
    /// Checked name (one path component).
    pub name: Vec<u8>,
    /// What the point says about it (a directory's kind is `Dir`).
    pub node: Node,
    /// Levels below the target (1 = directly below).
    pub depth: u32,
    /// For a further name of a hard-linked file: the entry of its first name.
    pub link_to: Option<u32>,
    /// Whether the node's metadata is put back (not for the ancestors of `--path`).
    pub meta: bool,
    /// A directory at or below a backed-up path: `--delete` may remove what
    /// the point does not have in it.
    pub deletable: bool,
}

/// What to restore, and what cannot be.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Entries, every directory before what it holds.
    pub entries: Vec<Entry>,
    /// (parent entry, name or description, why): parts of the point that are not restored.
    pub problems: Vec<(u32, Vec<u8>, String)>,
    /// Directories (entries, or [`TARGET`]) whose tree cannot be read: what
    /// is below them on disk is unknown, so `--delete` leaves it alone.
    pub unknown: Vec<u32>,
    /// (parent entry, name): entries of the point left out on purpose (the
    /// caller's `skip`); `--delete` leaves them alone too.
    pub spared: Vec<(u32, Vec<u8>)>,
}

/// Why a tree name cannot be used, or `None` when it can: a name must be one
/// path component of a directory (not empty, not `.`/`..`, no `/`, no NUL).
pub(crate) fn bad_name(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        Some("an empty name")
    } else if name == b"." || name == b".." {
        Some("a `.` or `..` name")
    } else if name.contains(&b'/') {
        Some("a name with `/`")
    } else if name.contains(&0) {
        Some("a name with a NUL byte")
    } else {
        None
    }
}

impl Plan {
    /// The path of entry `i` below `to`.
    pub fn path(&self, to: &Path, i: u32) -> PathBuf {
        let mut names = Vec::new();
        let mut cur = i;
        while cur != TARGET {
            let e = &self.entries[cur as usize];
            names.push(&e.name);
            cur = e.parent;
        }
        let mut p = to.to_path_buf();
        for n in names.iter().rev() {
            p.push(std::ffi::OsStr::from_bytes(n));
        }
        p
    }

    /// The path of a problem's subject below `to`.
    pub fn problem_path(&self, to: &Path, parent: u32, name: &[u8]) -> PathBuf {
        let base = if parent == TARGET {
            to.to_path_buf()
        } else {
            self.path(to, parent)
        };
        if name.is_empty() {
            base
        } else {
            base.join(std::ffi::OsStr::from_bytes(name))
        }
    }

    fn push(&mut self, mut e: Entry, links: &mut HashMap<(u64, u64), u32>) -> u32 {
        let i = self.entries.len() as u32;
        if e.node.subtree.is_some() && e.node.kind != NodeKind::Dir {
            // A symlink the backup went through to reach a backed-up path:
            // it holds entries, so it is restored as a real directory.
            e.node.kind = NodeKind::Dir;
            e.node.mode = 0o40755;
            e.node.target = None;
        }
        if e.node.kind == NodeKind::File && e.node.links > 1 && e.node.inode != 0 {
            match links.get(&(e.node.dev, e.node.inode)) {
                Some(&first) => e.link_to = Some(first),
                None => {
                    links.insert((e.node.dev, e.node.inode), i);
                }
            }
        }
        self.entries.push(e);
        i
    }

    /// Adds the checked nodes of `tree` below `parent`; returns the
    /// directories among them (entry, subtree).
    fn add_tree(
        &mut self,
        tree: Tree,
        parent: u32,
        depth: u32,
        deletable: bool,
        links: &mut HashMap<(u64, u64), u32>,
    ) -> Vec<(u32, Id)> {
        let names: Vec<Vec<u8>> = tree.nodes.iter().map(|n| n.name_bytes()).collect();
        let mut seen = HashSet::with_capacity(names.len());
        let twice: HashSet<&[u8]> = names
            .iter()
            .filter(|n| !seen.insert(n.as_slice()))
            .map(|n| n.as_slice())
            .collect();
        let twice: HashSet<Vec<u8>> = twice.into_iter().map(|n| n.to_vec()).collect();
        let mut dirs = Vec::new();
        for (node, name) in tree.nodes.into_iter().zip(names) {
            if let Some(why) = bad_name(&name) {
                self.problems.push((
                    parent,
                    Vec::new(),
                    format!(
                        "invalid name in the point ({why}: {:?}); not restored",
                        String::from_utf8_lossy(&name)
                    ),
                ));
                continue;
            }
            if twice.contains(&name) {
                self.problems.push((
                    parent,
                    name,
                    "the name appears twice in its directory in the point; neither is restored"
                        .into(),
                ));
                continue;
            }
            if node.kind == NodeKind::Socket {
                continue; // recorded, never recreated
            }
            if depth > MAX_DEPTH {
                self.problems.push((
                    parent,
                    name,
                    format!("too deep (more than {MAX_DEPTH} levels); not restored"),
                ));
                continue;
            }
            let sub = node.subtree;
            let i = self.push(
                Entry {
                    parent,
                    name,
                    node,
                    depth,
                    link_to: None,
                    meta: true,
                    deletable,
                },
                links,
            );
            if let Some(s) = sub {
                dirs.push((i, s));
            }
        }
        dirs
    }
}

/// A directory still to read: its entry, its subtree, its absolute path in
/// the point.
type Frontier = Vec<(u32, Id, PathBuf)>;

/// What a planning walk reads and where `--delete` may act.
struct Walk<'a> {
    vault: &'a Vault,
    index: &'a Index,
    /// The point's backed-up paths.
    roots: &'a [PathBuf],
    /// Absolute paths left out.
    skip: &'a [PathBuf],
    /// The selected path is the target itself: its contents directly below
    /// the target, no entries for the components leading to it.
    as_target: bool,
}

impl Walk<'_> {
    /// Whether absolute path `p` is at or below a backed-up path.
    fn inside(&self, p: &Path) -> bool {
        self.roots.iter().any(|r| p.starts_with(r))
    }

    /// Adds an entry for each component of the selected path `p` (only the
    /// last one's metadata is put back); returns the frontier below it (empty
    /// when it is no directory, or a socket).
    fn descend(
        &self,
        plan: &mut Plan,
        root: &Id,
        p: &Path,
        links: &mut HashMap<(u64, u64), u32>,
    ) -> Result<Frontier> {
        let mut frontier = Vec::new();
        let comps: Vec<&[u8]> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.as_bytes()),
                _ => None,
            })
            .collect();
        let mut cur = *root;
        let mut parent = TARGET;
        let mut abs = PathBuf::from("/");
        for (k, c) in comps.iter().enumerate() {
            let t = self.vault.read_tree(self.index, &cur)?;
            let Some(n) = t.find(c).cloned() else {
                return Err(FilesError::NotInPoint(p.to_path_buf()));
            };
            abs.push(std::ffi::OsStr::from_bytes(c));
            let last = k + 1 == comps.len();
            let sub = n.subtree;
            if !last && sub.is_none() {
                return Err(FilesError::NotInPoint(p.to_path_buf()));
            }
            if n.kind == NodeKind::Socket {
                return Ok(Vec::new());
            }
            if self.as_target {
                match (last, sub) {
                    (true, Some(s)) => frontier.push((TARGET, s, abs.clone())),
                    (true, None) => {
                        return Err(FilesError::Usage(format!(
                            "{} is not a directory in the point: only a directory can be restored as the target itself",
                            p.display()
                        )));
                    }
                    (false, Some(s)) => cur = s,
                    (false, None) => {}
                }
                continue;
            }
            parent = plan.push(
                Entry {
                    parent,
                    name: c.to_vec(),
                    node: n,
                    depth: k as u32 + 1,
                    link_to: None,
                    meta: last,
                    deletable: self.inside(&abs),
                },
                links,
            );
            match sub {
                Some(s) if last => frontier.push((parent, s, abs.clone())),
                Some(s) => cur = s,
                None => {}
            }
        }
        Ok(frontier)
    }

    /// Reads the trees of one level in parallel, adds their entries and
    /// returns the next level.
    fn next_level(
        &self,
        plan: &mut Plan,
        frontier: Frontier,
        links: &mut HashMap<(u64, u64), u32>,
    ) -> Frontier {
        let read: Vec<_> = frontier
            .into_par_iter()
            .map(|(dir, tree, abs)| {
                let t = self.vault.read_tree(self.index, &tree);
                (dir, abs, t)
            })
            .collect();
        let mut next = Vec::new();
        for (dir, abs, t) in read {
            let depth = if dir == TARGET {
                1
            } else {
                plan.entries[dir as usize].depth + 1
            };
            let mut t = match t {
                Ok(t) => t,
                Err(e) => {
                    plan.problems.push((
                        dir,
                        Vec::new(),
                        format!(
                            "its tree cannot be read ({e}); nothing below it is restored or deleted"
                        ),
                    ));
                    plan.unknown.push(dir);
                    continue;
                }
            };
            if !self.skip.is_empty() {
                t.nodes.retain(|n| {
                    let name = n.name_bytes();
                    let skipped = self
                        .skip
                        .contains(&abs.join(std::ffi::OsStr::from_bytes(&name)));
                    if skipped {
                        plan.spared.push((dir, name));
                    }
                    !skipped
                });
            }
            for (i, sub) in plan.add_tree(t, dir, depth, false, links) {
                let e = &mut plan.entries[i as usize];
                let p = abs.join(std::ffi::OsStr::from_bytes(&e.name));
                e.deletable = self.inside(&p);
                next.push((i, sub, p));
            }
        }
        next
    }
}

/// Plans the restore of a whole point (`select` = None) or of one absolute
/// path of it. `roots` are the point's backed-up paths (where `--delete` may act);
/// the nodes at the absolute paths `skip` are left out.
pub(crate) fn plan(
    vault: &Vault,
    index: &Index,
    root: &Id,
    select: Option<&Path>,
    roots: &[PathBuf],
    skip: &[PathBuf],
    as_target: bool,
) -> Result<Plan> {
    let walk = Walk {
        vault,
        index,
        roots,
        skip,
        as_target,
    };
    let mut plan = Plan::default();
    let mut links = HashMap::new();
    let mut frontier = match select {
        None => vec![(TARGET, *root, PathBuf::from("/"))],
        Some(p) => walk.descend(&mut plan, root, p, &mut links)?,
    };
    // Breadth first, the trees of one level read in parallel.
    while !frontier.is_empty() {
        frontier = walk.next_level(&mut plan, frontier, &mut links);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &[u8], kind: NodeKind) -> Node {
        let mut n = Node {
            kind,
            ..Node::default()
        };
        n.set_name_bytes(name);
        n
    }

    #[test]
    fn names_that_could_leave_a_directory_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/abs", b"nul\0", b"../x"] {
            assert!(bad_name(bad).is_some(), "{bad:?}");
        }
        for good in [
            &b"a"[..],
            b"...",
            b".hidden",
            b"-rf",
            b"\xff\xfe",
            b"a\nb",
            b" ",
        ] {
            assert_eq!(bad_name(good), None, "{good:?}");
        }
    }

    #[test]
    fn a_tree_becomes_entries_without_bad_or_doubled_names() {
        let mut plan = Plan::default();
        let mut links = HashMap::new();
        let mut dir = node(b"dup", NodeKind::Dir);
        dir.subtree = Some(Id::default());
        let t = Tree {
            nodes: vec![
                node(b"..", NodeKind::Dir),
                node(b"dup", NodeKind::Symlink),
                dir,
                node(b"ok", NodeKind::File),
                node(b"sock", NodeKind::Socket),
                node(b"a/b", NodeKind::File),
            ],
        };
        let dirs = plan.add_tree(t, TARGET, 1, true, &mut links);
        assert!(dirs.is_empty());
        let names: Vec<_> = plan.entries.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, vec![b"ok".to_vec()]);
        assert_eq!(plan.problems.len(), 4, "{:?}", plan.problems);
        assert!(plan.problems.iter().any(|p| p.2.contains("twice")));
    }

    #[test]
    fn a_symlink_with_entries_below_it_is_a_directory() {
        let mut plan = Plan::default();
        let mut links = HashMap::new();
        let mut n = node(b"datalink", NodeKind::Symlink);
        n.set_target_bytes(b"/tmp/x/realdata");
        n.subtree = Some(Id::default());
        let dirs = plan.add_tree(Tree { nodes: vec![n] }, TARGET, 1, false, &mut links);
        assert_eq!(dirs.len(), 1);
        let e = &plan.entries[0];
        assert_eq!(e.node.kind, NodeKind::Dir);
        assert_eq!(e.node.target, None);
        assert_eq!(e.node.mode & 0o170000, 0o040000);
    }

    #[test]
    fn hard_links_point_to_the_first_name_of_their_inode() {
        let mut plan = Plan::default();
        let mut links = HashMap::new();
        let nodes: Vec<Node> = (0..5)
            .map(|i| {
                let mut n = node(format!("f{i}").as_bytes(), NodeKind::File);
                n.links = 2;
                n.inode = 10 + (i % 2);
                n.dev = 1;
                n
            })
            .collect();
        plan.add_tree(Tree { nodes }, TARGET, 1, false, &mut links);
        let to: Vec<_> = plan.entries.iter().map(|e| e.link_to).collect();
        assert_eq!(to, vec![None, None, Some(0), Some(1), Some(0)]);
    }

    #[test]
    fn nodes_past_the_depth_guard_are_problems() {
        let mut plan = Plan::default();
        let mut links = HashMap::new();
        let t = Tree {
            nodes: vec![node(b"f", NodeKind::File)],
        };
        plan.add_tree(t, TARGET, MAX_DEPTH + 1, false, &mut links);
        assert!(plan.entries.is_empty());
        assert!(plan.problems[0].2.contains("too deep"));
    }

    #[test]
    fn paths_are_built_from_parents() {
        let mut plan = Plan::default();
        let mut links = HashMap::new();
        let mut d = node(b"d", NodeKind::Dir);
        d.subtree = Some(Id::default());
        plan.add_tree(Tree { nodes: vec![d] }, TARGET, 1, false, &mut links);
        plan.add_tree(
            Tree {
                nodes: vec![node(b"\xe9t\xe9", NodeKind::File)],
            },
            0,
            2,
            false,
            &mut links,
        );
        let p = plan.path(Path::new("/to"), 1);
        assert_eq!(p.as_os_str().as_bytes(), b"/to/d/\xe9t\xe9");
        assert_eq!(
            plan.problem_path(Path::new("/to"), TARGET, b"x"),
            PathBuf::from("/to/x")
        );
    }
}
