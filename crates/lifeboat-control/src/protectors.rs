//! The protectors this build knows, in one registry: the layers above the
//! protectors (this crate, stacks, the daemon, the API and its console)
//! find a resource's or a point's protector here instead of switching on
//! its kind. The list itself is `lifeboat-protectors`' (the configuration's
//! loader reads it too): a new kind of resource is its crate plus one line
//! there.

pub use lifeboat_protector::{
    ARCHIVE, Browse, BucketTarget, DatabaseTarget, Description, Follow, FollowJob, Protector,
    Query, Reading, Registry, RestoreError, RestoreForm, RestoreJob, Restored, RollForward, Stage,
    Target, TargetKind, Unwatched, Watch,
};

/// Every protector of this build (`lifeboat-protectors`, which the
/// configuration's loader reads the kinds' keys from too).
pub use lifeboat_protectors::registry;

/// A continuous job a resource's protector declares, with the vault it
/// writes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Followed {
    /// The job, as the protector declares it.
    pub follow: Follow,
    /// Its vault: its own, else the first plan's that holds the resource;
    /// `None`: neither names one.
    pub vault: Option<String>,
}

/// The continuous jobs of resource `name` in `cfg` (a database's binlog
/// archive), each with its vault; spools go under `spools`. A resource
/// whose settings its protector cannot read declares none (`validate`
/// refuses such a file).
pub fn follows(
    cfg: &lifeboat_config::Config,
    name: &str,
    spools: &std::path::Path,
) -> Vec<Followed> {
    let Some(r) = cfg.resources.get(name) else {
        return Vec::new();
    };
    let Some(protector) = registry().of_resource(r.kind.name()) else {
        return Vec::new();
    };
    let Ok(settings) = serde_json::to_value(&r.kind) else {
        return Vec::new();
    };
    let spool = spools.join(name);
    let job = FollowJob {
        resource: name,
        settings: &settings,
        spool: &spool,
    };
    let plan_vault = || {
        cfg.plans_of(name)
            .first()
            .map(|p| cfg.plans[*p].vault.clone())
    };
    protector
        .follows(&job)
        .unwrap_or_default()
        .into_iter()
        .map(|follow| Followed {
            vault: follow.vault.clone().or_else(plan_vault),
            follow,
        })
        .collect()
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
        for k in ["mysql-binlog", "mysql-physical"] {
            assert_eq!(r.of_point(k).unwrap().describe().kind, "mysql", "{k}");
        }
        assert_eq!(
            r.point_kinds(),
            [
                "files",
                "mysql",
                "mysql-binlog",
                "mysql-physical",
                "bucket",
                "instance"
            ]
        );
    }
}
