//! The protectors this build knows, in one registry: the layers above the
//! protectors (this crate, stacks, the daemon, the API and its console)
//! find a resource's or a point's protector here instead of switching on
//! its kind. The list itself is `lifeboat-protectors`' (the configuration's
//! loader reads it too): a new kind of resource is its crate plus one line
//! there.

pub use lifeboat_protector::{Browse, Description, Protector, Query, Registry, RestoreForm};
/// Every protector of this build (`lifeboat-protectors`, which the
/// configuration's loader reads the kinds' keys from too).
pub use lifeboat_protectors::registry;

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
