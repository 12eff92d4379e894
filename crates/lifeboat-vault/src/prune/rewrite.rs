//! Steps 6 to 9 of a prune: the new index files, the old ones removed, the
//! packs deleted.

use std::collections::{HashMap, HashSet};

use super::{PruneProgress, PruneReport, Survey, Verdict, referenced_blobs};
use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::index::{Index, IndexFile, ObsoleteMark, index_path};
use crate::pack::pack_path;
use crate::vault::Vault;

/// Removes `path`; a refusal that retrying cannot cure (permissions, a
/// retention) is recorded in `rep` instead of failing the prune.
fn remove_or_note(storage: &crate::Storage, path: &str, rep: &mut PruneReport) -> Result<bool> {
    match storage.remove(path) {
        Ok(()) => Ok(true),
        Err(VaultError::Storage {
            retryable: false,
            no_space: false,
            message,
            ..
        }) => {
            tracing::warn!("prune: the storage refused to delete {path}: {message}; it is kept");
            rep.not_deleted.push(format!("{path}: {message}"));
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The index files a prune writes and the packs it deletes.
pub(super) struct Rewrite {
    /// The first new index: every pack still indexed with its mark.
    first: IndexFile,
    /// Its name.
    first_name: Id,
    /// Packs marked obsolete in this run.
    new_marks: Vec<Id>,
    /// Indexed packs to delete.
    delete: Vec<Id>,
    /// Unindexed packs to delete.
    delete_garbage: Vec<Id>,
    /// The last new index's name, when it differs from the first.
    last_name: Option<Id>,
}

impl Rewrite {
    /// Writes the first new index (step 6): every pack still indexed with its
    /// mark, the packs deleted below included (so that any reader whose
    /// listing holds this file sees them obsolete, whichever old files it
    /// also holds).
    pub(super) fn write_first(
        vault: &Vault,
        index: &Index,
        verdicts: &HashMap<Id, Verdict>,
        mut new_index: IndexFile,
    ) -> Result<Rewrite> {
        let mut new_marks = Vec::new();
        let now = vault.now()?.timestamp();
        let mut delete: Vec<Id> = Vec::new();
        for (pack, v) in verdicts {
            let entries = index.packs()[pack].clone();
            match v {
                Verdict::Delete => {
                    delete.push(*pack);
                    new_index.marks.push(index.marks()[pack].clone());
                }
                Verdict::Keep | Verdict::Unmark => {}
                Verdict::Deferred(m) => new_index.marks.push(m.clone()),
                Verdict::Mark | Verdict::Repack(_) => {
                    new_marks.push(*pack);
                    new_index.marks.push(ObsoleteMark {
                        pack: *pack,
                        marked_at: now,
                        blockers: None,
                    });
                }
            }
            new_index.packs.push((*pack, entries));
        }
        new_index.packs.sort_by_key(|(p, _)| *p);
        let (first_name, stored) = new_index.seal(vault.key());
        vault.storage().write(&index_path(&first_name), stored)?;
        Ok(Rewrite {
            first: new_index,
            first_name,
            new_marks,
            delete,
            delete_garbage: Vec::new(),
            last_name: None,
        })
    }

    /// Settles the new marks against the live shared locks `l1` (step 7):
    /// with none, the new marks no new point needs are deleted now (and the
    /// garbage a fresh index does not know); else the marks wait for them.
    /// Writes the last new index, without the packs about to go.
    pub(super) fn settle(
        &mut self,
        vault: &Vault,
        survey: &Survey,
        garbage: Vec<Id>,
        l1: &[Id],
        rep: &mut PruneReport,
    ) -> Result<()> {
        let mut last_index = self.first.clone();
        if l1.is_empty() {
            let (now_points, _) = vault.list_points()?;
            let fresh: Vec<Id> = now_points
                .iter()
                .filter(|(i, _)| !survey.seen_points.contains(i))
                .map(|(_, p)| p.tree)
                .collect();
            let fresh_index = vault.load_index()?;
            let needed = if fresh.is_empty() {
                HashSet::new()
            } else {
                referenced_blobs(vault, &fresh_index, &fresh)?
            };
            for p in &self.new_marks {
                let entries = &survey.index.packs()[p];
                if entries.iter().all(|e| !needed.contains(&e.id)) {
                    self.delete.push(*p);
                }
            }
            let known: HashSet<Id> = fresh_index.packs().keys().copied().collect();
            self.delete_garbage = garbage.into_iter().filter(|g| !known.contains(g)).collect();
        } else {
            for m in &mut last_index.marks {
                if m.blockers.is_none() {
                    m.blockers = Some(l1.to_vec());
                }
            }
            rep.deferred += self.new_marks.len();
        }
        // The last index: without the packs about to go, so that no index file
        // names a deleted pack once the first one is removed.
        let gone: HashSet<Id> = self.delete.iter().copied().collect();
        last_index.packs.retain(|(p, _)| !gone.contains(p));
        last_index.marks.retain(|m| !gone.contains(&m.pack));
        self.last_name = if last_index != self.first {
            let (name, stored) = last_index.seal(vault.key());
            vault.storage().write(&index_path(&name), stored)?;
            Some(name)
        } else {
            None
        };
        Ok(())
    }

    /// Removes the index files read in step 3, then the first new one (step
    /// 8): until every old file is gone, the marks of the first new one are
    /// visible to every listing.
    pub(super) fn replace_old_index(
        &self,
        vault: &Vault,
        index: &Index,
        rep: &mut PruneReport,
    ) -> Result<()> {
        let storage = vault.storage();
        crate::testhook::pause("prune-index-written");
        // An old file the storage refuses to delete stays; then the first new
        // one must stay too (it marks every pack this run deletes).
        let mut old_left = false;
        for f in index.files() {
            if remove_or_note(storage, &index_path(f), rep)? {
                rep.index_files_replaced += 1;
            } else {
                old_left = true;
            }
        }
        crate::testhook::pause("prune-old-index-removed");
        if !old_left && self.last_name.is_some_and(|n| n != self.first_name) {
            storage.remove(&index_path(&self.first_name))?;
        }
        Ok(())
    }

    /// Deletes the packs (step 9) and counts what went.
    pub(super) fn delete_packs(
        &self,
        vault: &Vault,
        listed: &HashMap<Id, u64>,
        progress: &PruneProgress,
        rep: &mut PruneReport,
    ) -> Result<()> {
        let (delete, delete_garbage) = (&self.delete, &self.delete_garbage);
        progress.begin(
            "deleting packs",
            (delete.len() + delete_garbage.len()) as u64,
        );
        let mut refused = HashSet::new();
        for p in delete.iter().chain(delete_garbage) {
            if let Some(size) = listed.get(p) {
                if remove_or_note(vault.storage(), &pack_path(p), rep)? {
                    rep.bytes_freed += size;
                } else {
                    refused.insert(*p);
                }
            }
            progress.add(1);
        }
        rep.deleted_packs = delete
            .iter()
            .filter(|p| listed.contains_key(*p) && !refused.contains(*p))
            .count();
        rep.deleted_garbage = delete_garbage
            .iter()
            .filter(|p| !refused.contains(*p))
            .count();
        Ok(())
    }
}
