//! The protectors this build knows, in one registry: the layers above the
//! protectors (this crate, stacks, the daemon, the API and its console)
//! find a resource's or a point's protector here instead of switching on
//! its kind. A new kind of resource is its crate plus one line below.

use std::sync::OnceLock;

pub use lifeboat_protector::{
    Browse, BucketTarget, DatabaseTarget, Description, Protector, Query, Reading, Registry,
    RestoreError, RestoreForm, RestoreJob, Restored, RollForward, Stage, Target, TargetKind,
    Unwatched, Watch,
};

/// Every protector of this build.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Registry::new(vec![
            &lifeboat_files::protector::PROTECTOR,
            &lifeboat_mysql::protector::PROTECTOR,
            &lifeboat_bucket::protector::PROTECTOR,
            &lifeboat_instance::protector::PROTECTOR,
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every resource kind the file knows has its protector, and every
    /// point kind a protector writes leads back to it.
    #[test]
    fn every_kind_of_the_file_has_its_protector() {
        let r = registry();
        for kind in lifeboat_config::ResourceKind::NAMES {
            let p = r.of_resource(kind).expect(kind);
            assert_eq!(p.describe().kind, kind);
        }
        assert_eq!(r.of_point("mysql-binlog").unwrap().describe().kind, "mysql");
        assert_eq!(
            r.point_kinds(),
            ["files", "mysql", "mysql-binlog", "bucket", "instance"]
        );
    }
}
