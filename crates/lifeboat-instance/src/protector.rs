//! The instance protector as the layers above it see it (`lifeboat-protector`).

use lifeboat_protector::{
    Browse, BrowseError, Description, Listing, Protector, Query, RestoreForm,
};
use lifeboat_vault::{Id, RecoveryPoint, Vault};

/// App hosts: paths, volumes and a launch spec.
pub struct InstanceProtector;

/// The instance protector, for the registry.
pub static PROTECTOR: InstanceProtector = InstanceProtector;

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
