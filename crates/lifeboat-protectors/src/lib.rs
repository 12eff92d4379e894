//! The protectors this build knows, in one registry: the configuration's
//! loader reads each kind's `[resource.NAME]` from its protector's keys
//! (`ResourceSettings`), and the layers above (the control plane, stacks,
//! the daemon, the API and its console) find a resource's or a point's
//! protector here instead of switching on its kind. A new kind of resource
//! is its crate plus one line below.

use std::sync::OnceLock;

pub use lifeboat_protector::Registry;

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
