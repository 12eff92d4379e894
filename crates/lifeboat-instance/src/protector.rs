//! The instance protector as the layers above it see it (`lifeboat-protector`).

use lifeboat_protector::{
    Backed, BackupError, BackupJob, Browse, BrowseError, Description, Listing, Protector, Query,
    RestoreForm, watched,
};
use lifeboat_vault::{Id, RecoveryPoint, Vault};

/// App hosts: paths, volumes and a launch spec.
pub struct InstanceProtector;

/// The instance protector, for the registry.
pub static PROTECTOR: InstanceProtector = InstanceProtector;

/// An instance resource's settings: its spec.
#[derive(serde::Deserialize)]
struct Settings {
    spec: crate::InstanceSpec,
}

impl Protector for InstanceProtector {
    fn describe(&self) -> Description {
        Description {
            kind: crate::KIND,
            point_kinds: &[crate::KIND],
            title: "App hosts (paths, volumes, launch spec)",
            browse: Some(Browse::Tree),
            levels: &[],
            restore: RestoreForm::CommandOnly,
            command: "lifeboat restore instance",
        }
    }

    /// A point of the host; a crash-consistent one is complete (as
    /// `backup instance` exits 0 for it): its warning is a note of the job.
    fn back_up(&self, job: &BackupJob) -> Result<Backed, BackupError> {
        let s: Settings = BackupError::settings(job)?;
        let counters = lifeboat_files::Counters::default();
        let read = || lifeboat_files::protector::files_read(&counters);
        let (vault, tags) = (job.vault, &job.tags);
        let res = watched(job.watch, &read, || {
            crate::backup(vault, &s.spec, tags, &counters)
        })
        .map_err(|e| BackupError::Failed(e.to_string()))?;
        let (notes, warnings): (Vec<String>, Vec<String>) = res
            .warnings
            .into_iter()
            .partition(|w| w.contains("crash-consistent"));
        Ok(Backed {
            id: res.id,
            point: res.point,
            warnings,
            notes: res.notes.into_iter().chain(notes).collect(),
        })
    }

    fn contents(
        &self,
        vault: &Vault,
        id: &Id,
        _point: &RecoveryPoint,
        query: &Query,
    ) -> Result<Listing, BrowseError> {
        lifeboat_files::protector::tree_contents(vault, id, query)
    }
}
