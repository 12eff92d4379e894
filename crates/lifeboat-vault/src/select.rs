//! Choosing a recovery point for a command: `latest`, a full id, or a unique
//! id prefix — of the kinds the command handles.
//!
//! `latest` means the newest point *of the caller's kinds* (and of one
//! resource when given): a vault holds points of many kinds side by side (files,
//! buckets, database snapshots, and a running binlog archive's seal points every
//! second), so "the newest point" alone is almost never what a restore wants.
//! A point named by id whose kind the caller does not handle is refused with
//! [`VaultError::WrongKind`], which names the point's kind and resource, so the
//! caller can point the user at the right command.

use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::point::RecoveryPoint;
use crate::vault::Vault;

/// Which points a command may choose from.
#[derive(Debug, Clone, Copy, Default)]
pub struct PointFilter<'a> {
    /// Kinds the command handles (empty: any kind).
    pub kinds: &'a [&'a str],
    /// Only points of this resource.
    pub resource: Option<&'a str>,
}

impl<'a> PointFilter<'a> {
    /// Points of `kinds` (empty: any kind), of any resource.
    pub fn kinds(kinds: &'a [&'a str]) -> PointFilter<'a> {
        PointFilter {
            kinds,
            resource: None,
        }
    }

    /// Restricts to one resource (when given).
    pub fn resource(self, resource: Option<&'a str>) -> PointFilter<'a> {
        PointFilter { resource, ..self }
    }

    /// Whether `p` passes the filter.
    pub fn matches(&self, p: &RecoveryPoint) -> bool {
        self.kind_ok(p) && self.resource.is_none_or(|r| p.resource == r)
    }

    fn kind_ok(&self, p: &RecoveryPoint) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&p.kind.as_str())
    }

    /// "latest files point of R", for messages.
    fn describe_latest(&self) -> String {
        let mut s = "latest".to_string();
        if !self.kinds.is_empty() {
            s.push(' ');
            s.push_str(&self.kinds.join("/"));
        }
        s.push_str(" point");
        if let Some(r) = self.resource {
            s.push_str(&format!(" of resource {r:?}"));
        }
        s
    }
}

/// The newest point of `points` (oldest first, as [`Vault::list_points`]
/// returns them) that passes `filter`.
pub fn newest<'p>(
    points: &'p [(Id, RecoveryPoint)],
    filter: &PointFilter,
) -> Option<&'p (Id, RecoveryPoint)> {
    points.iter().rev().find(|(_, p)| filter.matches(p))
}

impl Vault {
    /// The vault's readable points, oldest first, each judged by the time
    /// the storage gave its object when its own stamp is later (a wrong
    /// clock or a forged point, as `forget` judges them): what `latest` and
    /// a recovery choose by. A point stamped years ahead is never "the
    /// newest" for ever; at most until the next point is written.
    pub fn list_points_trusted(&self) -> Result<Vec<(Id, RecoveryPoint)>> {
        let (points, _) = self.list_points()?;
        let (mut points, notes) =
            crate::forget::trusted_times(&points, &self.point_times_or_none());
        for (id, why) in &notes {
            tracing::warn!("recovery point {}: {why}", id.short());
        }
        points.sort_by_key(|(_, p)| p.time);
        Ok(points)
    }

    /// Finds a point for a command that handles `filter.kinds`: `latest` is
    /// the newest point of those kinds (and of `filter.resource`); a full id
    /// or unique prefix must name a point of one of those kinds (else
    /// [`VaultError::WrongKind`]) and, when a resource is given, of it.
    pub fn select_point(&self, spec: &str, filter: &PointFilter) -> Result<(Id, RecoveryPoint)> {
        if spec == "latest" {
            let points = self.list_points_trusted()?;
            return newest(&points, filter)
                .cloned()
                .ok_or_else(|| VaultError::NoSuchPoint(filter.describe_latest()));
        }
        let (id, p) = self.find_point(spec, None)?;
        if !filter.kind_ok(&p) {
            return Err(VaultError::WrongKind {
                point: id.short(),
                kind: p.kind,
                resource: p.resource,
                wanted: filter.kinds.join(" or "),
            });
        }
        if let Some(r) = filter.resource.filter(|r| *r != p.resource) {
            return Err(VaultError::Refused(format!(
                "recovery point {} is of resource {:?}, not {r:?}",
                id.short(),
                p.resource
            )));
        }
        Ok((id, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KdfParams;
    use crate::storage::Location;
    use crate::vault::InitOptions;

    fn vault(dir: &std::path::Path) -> Vault {
        let opts = InitOptions {
            kdf: KdfParams {
                m_cost: 8,
                t_cost: 1,
                p_cost: 1,
            },
            ..InitOptions::default()
        };
        Vault::init(&Location::Dir(dir.join("v")), b"pw", &opts).unwrap()
    }

    fn add(v: &Vault, resource: &str, kind: &str, secs: i64) -> Id {
        let mut p = RecoveryPoint::new(resource, kind, Id::default());
        p.time = chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap();
        v.write_point(&p).unwrap()
    }

    #[test]
    fn latest_is_the_newest_point_of_the_commands_kind_and_resource() {
        let d = tempfile::tempdir().unwrap();
        let v = vault(d.path());
        let files_a = add(&v, "/a", "files", 1);
        let files_b = add(&v, "/b", "files", 2);
        let bucket = add(&v, "s3://x", "bucket", 3);
        let snap = add(&v, "db", "mysql", 4);
        let _seal = add(&v, "db", "mysql-binlog", 5);

        let files = PointFilter::kinds(&["files"]);
        assert_eq!(v.select_point("latest", &files).unwrap().0, files_b);
        assert_eq!(
            v.select_point("latest", &files.resource(Some("/a")))
                .unwrap()
                .0,
            files_a
        );
        assert_eq!(
            v.select_point("latest", &PointFilter::kinds(&["bucket"]))
                .unwrap()
                .0,
            bucket
        );
        assert_eq!(
            v.select_point("latest", &PointFilter::kinds(&["mysql"]))
                .unwrap()
                .0,
            snap
        );
        match v.select_point("latest", &files.resource(Some("/none"))) {
            Err(VaultError::NoSuchPoint(what)) => {
                assert!(what.contains("files") && what.contains("/none"), "{what}")
            }
            other => panic!("expected NoSuchPoint, got {other:?}"),
        }
    }

    #[test]
    fn a_point_of_another_kind_is_refused_naming_its_kind() {
        let d = tempfile::tempdir().unwrap();
        let v = vault(d.path());
        let bucket = add(&v, "s3://x", "bucket", 1);
        let e = v
            .select_point(&bucket.to_hex()[..12], &PointFilter::kinds(&["files"]))
            .unwrap_err();
        match &e {
            VaultError::WrongKind { kind, wanted, .. } => {
                assert_eq!((kind.as_str(), wanted.as_str()), ("bucket", "files"))
            }
            other => panic!("expected WrongKind, got {other:?}"),
        }
        assert!(e.to_string().contains("bucket"), "{e}");
        // Any kind: accepted.
        assert!(
            v.select_point(&bucket.to_hex(), &PointFilter::default())
                .is_ok()
        );
    }
}
