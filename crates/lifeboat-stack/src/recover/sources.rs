//! Choosing each member's source: the site's vaults (opened, read-locked),
//! the newest point of a member at or before a moment, and for a bucket the
//! fresher of its newest point and its replica.

use chrono::{DateTime, Utc};
use lifeboat_config::Config;
use lifeboat_control::protectors::{
    BucketTarget, Protector, RestoreError, RestoreJob, Restored, Target, Unwatched, registry,
};
use lifeboat_vault::{Id, Location, RecoveryPoint, Vault};

use crate::{Result, StackError};

/// How a bucket member is recovered, once its sources are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BucketWay {
    /// The replica used in place (borrowed).
    InPlace,
    /// The replica copied into a drill's own bucket (only read).
    CopyReplica,
    /// The newest point restored.
    RestorePoint,
}

/// Which source of a bucket member is the fresher: its newest point (and
/// the time of the newest object in it) and its replica (address, newest
/// object), where `place` says where the replica is (`""`, ` on ENDPOINT`).
pub(crate) struct BucketSources<'v> {
    /// The newest point at or before `--at`.
    pub point: Option<(&'v str, &'v Vault, Id, RecoveryPoint)>,
    /// The newest object in that point (else the point's time).
    pub point_data: Option<DateTime<Utc>>,
    /// The replica, when there is one and it may be used.
    pub replica: Option<(String, DateTime<Utc>)>,
    /// The replica is at least as new as the point.
    pub use_replica: bool,
    /// A replica that exists but may not be used, with why (`--at`, a drill).
    pub unused: Option<String>,
    /// A recovery to an earlier time (`--at`).
    at: bool,
    place: String,
}

impl<'v> BucketSources<'v> {
    /// Compares the two; `to_the_second` when the replica keeps times to the
    /// second (S3).
    pub(crate) fn compare(
        vaults: &'v [(String, Vault)],
        member: &str,
        at: Option<DateTime<Utc>>,
        replica: Option<(String, DateTime<Utc>)>,
        to_the_second: bool,
        place: &str,
    ) -> Self {
        let point = newest(vaults, member, "bucket", at);
        let point_data = point
            .as_ref()
            .map(|p| lifeboat_bucket::protector::newest_object(p.1, &p.3).unwrap_or(p.3.time));
        let use_replica = match (&replica, point_data) {
            (Some((_, rt)), Some(pt)) if to_the_second => rt.timestamp() >= pt.timestamp(),
            (Some((_, rt)), Some(pt)) => *rt >= pt,
            (Some(_), None) => true,
            _ => false,
        };
        BucketSources {
            point,
            point_data,
            replica,
            use_replica,
            unused: None,
            at: at.is_some(),
            place: place.to_string(),
        }
    }

    /// The one choice of a bucket member's source, wherever its replica
    /// lies (a directory under the site's root, a bucket on its endpoint):
    /// `found` (the replica's address and newest object) against the newest
    /// point at or before `at` — a replica is as of now, so a recovery to
    /// an earlier time never uses it and says so —; then the way: the
    /// replica in place, or copied into a drill's own bucket (`scratch`),
    /// or the point restored; refused when there is neither.
    pub(crate) fn choose(
        vaults: &'v [(String, Vault)],
        member: &str,
        at: Option<DateTime<Utc>>,
        found: Option<(String, DateTime<Utc>)>,
        to_the_second: bool,
        place: &str,
        scratch: bool,
    ) -> Result<(Self, BucketWay)> {
        let rep = found.clone().filter(|_| at.is_none());
        let mut b = BucketSources::compare(vaults, member, at, rep, to_the_second, place);
        if at.is_some() {
            b.unused = found.map(|(loc, rt)| replica_as_of_now(&loc, rt));
        }
        let way = match (b.use_replica, scratch) {
            (true, false) => BucketWay::InPlace,
            (true, true) => BucketWay::CopyReplica,
            (false, _) if b.point.is_none() => return Err(b.nothing(member, at)),
            (false, _) => BucketWay::RestorePoint,
        };
        Ok((b, way))
    }

    /// Why the replica is used.
    pub(crate) fn why_replica(&self) -> String {
        let (loc, rt) = self.replica.clone().unwrap_or_default();
        match &self.point {
            Some(p) => format!(
                "the replica {loc}{} (newest object {}) is at least as new as the newest bucket point {} (newest object {})",
                self.place,
                rt.to_rfc3339(),
                p.2.short(),
                self.point_data.unwrap_or(p.3.time).to_rfc3339()
            ),
            None => format!(
                "the replica {loc}{}; the site holds no bucket point",
                self.place
            ),
        }
    }

    /// Why the point is used (`into`: where it is restored, for the words).
    pub(crate) fn why_point(&self, into: &str) -> String {
        if let Some(u) = &self.unused {
            let at = if self.at { " at or before --at" } else { "" };
            format!("the newest bucket point{into}{at}; {u}")
        } else if let Some((loc, rt)) = &self.replica {
            format!(
                "the newest bucket point{into} holds newer objects than the replica {loc} (newest object {}): the replica is not used",
                rt.to_rfc3339()
            )
        } else {
            format!(
                "the newest bucket point{into}; the site holds no replica{}",
                self.place
            )
        }
    }

    /// The refusal when neither can be used.
    pub(crate) fn nothing(&self, member: &str, at: Option<DateTime<Utc>>) -> StackError {
        StackError::Refused(match at {
            Some(at) => format!(
                "the site holds no point of bucket `{member}` taken at or before {} (a replica is as of now: not used with --at)",
                at.to_rfc3339()
            ),
            None => format!(
                "the site holds neither a replica{} nor a point of bucket `{member}`",
                self.place
            ),
        })
    }
}

/// Why a replica that exists is not used for a recovery to an earlier time.
fn replica_as_of_now(location: &str, newest: DateTime<Utc>) -> String {
    format!(
        "the replica {location} (newest object {}) is as of now, not of --at: not used, and left as it is",
        newest.to_rfc3339()
    )
}

/// Restores point `id` (`p`) of `v` into `target` through the protector of
/// its kind (nobody watching); refused when no protector restores it.
pub(crate) fn restore_point(
    v: &Vault,
    id: &Id,
    p: &RecoveryPoint,
    target: Target,
    options: serde_json::Value,
) -> std::result::Result<Restored, RestoreError> {
    protector_of(&p.kind)?.restore(&RestoreJob {
        vault: v,
        id,
        point: p,
        target,
        roll_forward: None,
        options,
        watch: &Unwatched,
    })
}

/// The protector of points of kind `kind`.
pub(crate) fn protector_of(
    kind: &str,
) -> std::result::Result<&'static dyn Protector, RestoreError> {
    registry().of_point(kind).ok_or_else(|| {
        RestoreError::Refused(format!(
            "no protector of this build restores points of kind `{kind}`"
        ))
    })
}

/// Restores bucket point `id` (`p`) of `v` into the bucket at `location`
/// (a directory bucket made when `create`): every object must arrive.
pub(crate) fn restore_bucket_point(
    v: &Vault,
    id: &Id,
    p: &RecoveryPoint,
    location: Location,
    create: bool,
) -> Result<()> {
    let target = Target::Bucket(BucketTarget { location, create });
    let r = restore_point(v, id, p, target, serde_json::Value::Null)
        .map_err(|e| StackError::Process(format!("restoring bucket point {}: {e}", id.short())))?;
    match r.not_restored.first() {
        None => Ok(()),
        Some(f) => Err(StackError::Process(format!(
            "restoring bucket point {}: {} objects failed, e.g. {f}",
            id.short(),
            r.not_restored.len()
        ))),
    }
}

/// The site's vaults (`[vault.X] site = SITE`), opened, each under a
/// reader lock for the whole recovery: no prune removes what it reads
/// (Velero's runbook sets the storage read-only by hand).
pub(crate) struct SiteVaults {
    vaults: Vec<(String, Vault)>,
    _readers: Vec<Option<lifeboat_vault::lock::LockGuard>>,
}

impl SiteVaults {
    /// Opens and read-locks the vaults of the recovery's site (a step).
    pub(crate) fn open(r: &super::Recovery) -> Result<SiteVaults> {
        let t = std::time::Instant::now();
        let vaults = SiteVaults::of(r.cfg, r.site)?;
        r.step("open the site's vaults (reader locks)", None, t);
        Ok(vaults)
    }

    /// Opens and read-locks the vaults of `site`.
    pub(crate) fn of(cfg: &Config, site: &str) -> Result<SiteVaults> {
        let names: Vec<&String> = cfg
            .vaults
            .iter()
            .filter(|(_, v)| v.site.as_deref() == Some(site))
            .map(|(n, _)| n)
            .collect();
        if names.is_empty() {
            return Err(StackError::Refused(format!(
                "site `{site}` has no vault: a recovery restores from the vaults in the site it recovers into (declare `site = \"{site}\"` on the vault the points are copied to)"
            )));
        }
        let vaults = names
            .into_iter()
            .map(|n| {
                lifeboat_control::secret::open_vault(cfg, n)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| StackError::Refused(format!("vault `{n}` of site `{site}`: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let readers = vaults
            .iter()
            .map(|(_, v)| lifeboat_vault::lock::reader_lock(v.storage(), "recover"))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                StackError::Process(format!("cannot lock the site's vaults for reading: {e}"))
            })?;
        Ok(SiteVaults {
            vaults,
            _readers: readers,
        })
    }

    /// The vaults, by name.
    pub(crate) fn list(&self) -> &[(String, Vault)] {
        &self.vaults
    }

    /// Vault `name` of the site.
    pub(crate) fn get(&self, name: &str) -> Option<&Vault> {
        self.vaults.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// The newest point of `resource` and `kind` over the site's vaults (at or
/// before `at`, when given).
pub(crate) fn newest<'v>(
    vaults: &'v [(String, Vault)],
    resource: &str,
    kind: &str,
    at: Option<DateTime<Utc>>,
) -> Option<(&'v str, &'v Vault, Id, RecoveryPoint)> {
    let mut best: Option<(&str, &Vault, Id, RecoveryPoint)> = None;
    for (n, v) in vaults {
        // Judged by the storage's times where a point's own is later.
        let Ok(points) = v.list_points_trusted() else {
            continue;
        };
        for (id, p) in points {
            if p.kind == kind
                && p.resource == resource
                && at.is_none_or(|at| p.time <= at)
                && best.as_ref().is_none_or(|b| p.time > b.3.time)
            {
                best = Some((n.as_str(), v, id, p));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recover::tests::vault_in;

    /// A files point of `resource` in `v`, of the tree at `dir`.
    fn files_point(v: &Vault, resource: &str, dir: &std::path::Path) -> Id {
        let opts = lifeboat_files::BackupOptions {
            paths: vec![dir.to_path_buf()],
            resource: Some(resource.into()),
            ..Default::default()
        };
        lifeboat_files::backup(v, &opts, &Default::default())
            .unwrap()
            .id
    }

    /// The newest point over every vault of the site wins; `--at` keeps
    /// only points taken at or before it; other resources and kinds are
    /// never chosen.
    #[test]
    fn the_newest_point_over_the_sites_vaults_is_chosen_at_or_before_at() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("a"), b"one").unwrap();
        let (a, b) = (
            vault_in(&dir.path().join("a")),
            vault_in(&dir.path().join("b")),
        );
        let older = files_point(&a, "site-files", &data);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let between = Utc::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let newer = files_point(&b, "site-files", &data);
        files_point(&a, "other", &data);
        let vaults = vec![("a".to_string(), a), ("b".to_string(), b)];
        let got = newest(&vaults, "site-files", "files", None).unwrap();
        assert_eq!((got.0, got.2), ("b", newer));
        let got = newest(&vaults, "site-files", "files", Some(between)).unwrap();
        assert_eq!((got.0, got.2), ("a", older));
        assert!(newest(&vaults, "site-files", "bucket", None).is_none());
        assert!(newest(&vaults, "nobody", "files", None).is_none());
    }

    /// A bucket with a replica and no point recovers from the replica; with
    /// neither, the refusal says what the site lacks (and, with `--at`,
    /// why the replica is no use).
    #[test]
    fn a_bucket_uses_its_replica_without_a_point_and_refuses_with_neither() {
        let dir = tempfile::tempdir().unwrap();
        let vaults = vec![("a".to_string(), vault_in(&dir.path().join("a")))];
        let now = Utc::now();
        let b = BucketSources::compare(
            &vaults,
            "assets",
            None,
            Some(("file:///r".into(), now)),
            false,
            "",
        );
        assert!(b.use_replica);
        assert!(b.why_replica().contains("the site holds no bucket point"));
        let none = BucketSources::compare(&vaults, "assets", None, None, false, "");
        assert!(!none.use_replica && none.point.is_none());
        let e = none.nothing("assets", None).to_string();
        assert!(
            e.contains("neither a replica nor a point of bucket `assets`"),
            "{e}"
        );
        let e = none.nothing("assets", Some(now)).to_string();
        assert!(e.contains("not used with --at"), "{e}");
    }

    /// The one choice of a bucket member's way: a replica without a point
    /// is used in place (copied in a drill); with `--at` a replica is never
    /// used, said in the point's why, and without a point that is a
    /// refusal; a newer point is restored.
    #[test]
    fn a_bucket_members_way_is_chosen_once_for_directories_and_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("a"), b"one").unwrap();
        let v = vault_in(&dir.path().join("a"));
        let vaults = vec![("a".to_string(), v)];
        let now = Utc::now();
        let found = || Some(("file:///r".to_string(), now));
        let way = |at, scratch| {
            BucketSources::choose(&vaults, "assets", at, found(), false, "", scratch)
                .map(|(_, w)| w)
        };
        assert_eq!(way(None, false).unwrap(), BucketWay::InPlace);
        assert_eq!(way(None, true).unwrap(), BucketWay::CopyReplica);
        let e = way(Some(now), false).unwrap_err().to_string();
        assert!(e.contains("taken at or before"), "{e}");
        // A bucket point of the member, newer than the replica.
        let bucket =
            lifeboat_bucket::Bucket::open_address(&format!("file://{}", data.display()), false)
                .unwrap();
        let opts = lifeboat_bucket::snapshot::SnapshotOptions {
            resource: Some("assets".into()),
            ..Default::default()
        };
        lifeboat_bucket::snapshot::snapshot(&vaults[0].1, &bucket, &opts, &Default::default())
            .unwrap();
        let old = Some(("file:///r".to_string(), now - chrono::Duration::days(1)));
        let (b, w) = BucketSources::choose(&vaults, "assets", None, old, false, "", false).unwrap();
        assert_eq!(w, BucketWay::RestorePoint);
        assert!(
            b.why_point("")
                .contains("holds newer objects than the replica file:///r")
        );
        let later = Some(Utc::now() + chrono::Duration::seconds(5));
        let (b, w) =
            BucketSources::choose(&vaults, "assets", later, found(), false, "", false).unwrap();
        assert_eq!(w, BucketWay::RestorePoint);
        let why = b.why_point("");
        assert!(
            why.starts_with("the newest bucket point at or before --at; the replica file:///r"),
            "{why}"
        );
    }
}
