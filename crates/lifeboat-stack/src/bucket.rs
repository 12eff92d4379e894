//! Bucket members on the S3 endpoint a site names (`[site.X] endpoint`).
//!
//! In a site with an endpoint, a stack's bucket member is an S3 bucket there
//! instead of a directory under the root:
//!
//! - **which bucket:** in the resource's own site, the `s3://` location it
//!   declares (used as it is, never removed); elsewhere a bucket named after
//!   the resource (`shop-assets`); in a drill, a scratch bucket
//!   `lifeboat-drill-<id>-<resource>`;
//! - **`stack up`:** the bucket is made when missing. One that exists and
//!   holds objects is refused unless a stack of this site recorded it as its
//!   own: `stack up` never provisions into someone's data;
//! - **`recover`:** the replica on the endpoint (a replication rule's `to`)
//!   is used in place when its newest object is at least as new as the newest
//!   bucket point's; otherwise the point is restored into the bucket;
//! - **a drill:** the scratch bucket is filled from the replica (copied; the
//!   replica is only read) or the point, and emptied and deleted at teardown;
//! - **`status`:** the endpoint answers and the bucket exists.
//!
//! Keys: the site's own (`credentials_env`, `credentials_file`), else the
//! process's AWS_* environment. An endpoint that does not answer is named
//! within the S3 connect timeout (`LIFEBOAT_S3_CONNECT_TIMEOUT`, 5 s).

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_bucket::Bucket;
use lifeboat_config::{Config, ResourceKind, Secret};
use lifeboat_vault::{Location, S3Credentials, Vault};

use crate::recover::{BucketSources, BucketWay, Recovery, Source, restore_bucket_point};
use crate::state::{MemberState, StackState};
use crate::{Result, StackError};

/// The S3 endpoint of a site, with its keys.
pub struct SiteStore {
    /// The site.
    pub site: String,
    /// `http(s)://host:port`, no trailing slash.
    pub endpoint: String,
    /// Its region.
    pub region: String,
    credentials: S3Credentials,
    probe: Duration,
}

impl SiteStore {
    /// The endpoint of `site`, when it names one.
    pub fn of(cfg: &Config, site: &str) -> Result<Option<SiteStore>> {
        let Some(s) = cfg.sites.get(site) else {
            return Ok(None);
        };
        let Some(endpoint) = &s.endpoint else {
            return Ok(None);
        };
        let credentials = match &s.credentials {
            None => Ok(S3Credentials::Environment),
            Some(Secret::Env(prefix)) => S3Credentials::from_env_prefix(prefix),
            Some(Secret::File(path)) => S3Credentials::from_file(path, None),
        }
        .map_err(|e| StackError::Refused(format!("site `{site}`: S3 credentials: {e}")))?;
        let probe = lifeboat_vault::timeouts::S3Timeouts::default()
            .effective()
            .map_err(StackError::Refused)?
            .connect
            .max(Duration::from_secs(1));
        Ok(Some(SiteStore {
            site: site.into(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region: s.region.clone().unwrap_or_else(|| "us-east-1".into()),
            credentials,
            probe,
        }))
    }

    /// The address of bucket `name` on the endpoint.
    pub fn address(&self, name: &str) -> String {
        format!(
            "s3://{name}?endpoint={}&region={}",
            self.endpoint, self.region
        )
    }

    /// Opens a bucket address with the site's keys.
    pub fn open(&self, address: &str) -> Result<Bucket> {
        let loc = self.location(address)?;
        Bucket::open(&loc, false).map_err(|e| StackError::Refused(e.to_string()))
    }

    /// A bucket address as a location with the site's keys.
    pub fn location(&self, address: &str) -> Result<Location> {
        Bucket::parse(address)
            .and_then(|l| {
                l.with_credentials(self.credentials.clone()).map_err(|e| {
                    lifeboat_bucket::BucketError::BadAddress {
                        address: address.to_string(),
                        reason: e.to_string(),
                    }
                })
            })
            .map_err(|e| StackError::Refused(e.to_string()))
    }

    /// Whether `address` is a bucket on this endpoint.
    pub fn holds(&self, address: &str) -> bool {
        matches!(
            Bucket::parse(address),
            Ok(Location::S3 { endpoint: Some(e), .. }) if e.trim_end_matches('/') == self.endpoint
        )
    }

    /// The bucket an address names on this endpoint (`None`: elsewhere).
    fn bucket_of(&self, address: &str) -> Option<String> {
        match Bucket::parse(address) {
            Ok(Location::S3 {
                bucket,
                endpoint: Some(e),
                ..
            }) if e.trim_end_matches('/') == self.endpoint => Some(bucket),
            _ => None,
        }
    }

    /// The replication rule whose destination is bucket `address` on this
    /// endpoint, if any: a live replica, never a restore's target.
    pub(crate) fn replication_into(&self, cfg: &Config, address: &str) -> Option<String> {
        let b = self.bucket_of(address)?;
        cfg.replications
            .values()
            .find(|r| self.bucket_of(&r.to).as_deref() == Some(b.as_str()))
            .map(|r| r.to.clone())
    }

    fn unreachable(&self, why: &str) -> StackError {
        StackError::Process(format!(
            "the S3 endpoint {} of site `{}` cannot be used: {why}; check that the object store runs and answers there, that `endpoint` in `[site.{}]` names the right scheme, host and port, and the site's credentials",
            self.endpoint, self.site, self.site
        ))
    }

    /// A bucket-level request, bounded by the probe time: an endpoint that
    /// accepts connections and never answers is named, not waited on.
    fn bounded<T>(
        &self,
        rt: &tokio::runtime::Runtime,
        fut: impl Future<Output = lifeboat_bucket::Result<T>>,
    ) -> Result<T> {
        match rt.block_on(async { tokio::time::timeout(self.probe, fut).await }) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.unreachable(&e.to_string())),
            Err(_) => Err(self.unreachable(&format!(
                "it did not answer within {} s",
                self.probe.as_secs_f64()
            ))),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // Multi-threaded: a directory bucket's store blocks in place.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| StackError::Process(format!("cannot start the I/O runtime: {e}")))
}

/// A valid S3 bucket name from `text`: lower case, `[a-z0-9-]`, 3 to 63
/// characters, starting and ending with a letter or digit.
fn bucket_name(text: &str) -> String {
    let mut n: String = text
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    n.truncate(63);
    let mut n = n.trim_matches('-').to_string();
    while n.len() < 3 {
        n.push('0');
    }
    n
}

/// The scratch bucket of a drill whose scratch directory is `scratch`
/// (`…/drills/STACK-TIME`): `lifeboat-drill-<time>-<resource>`.
pub fn scratch_name(scratch: &Path, resource: &str) -> String {
    let dir = scratch
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = dir.rsplit('-').next().unwrap_or(&dir);
    bucket_name(&format!("lifeboat-drill-{id}-{resource}"))
}

/// Where bucket member `name` lives on `store`'s endpoint, and whether it is
/// borrowed (declared by the file, never removed); `None`: a directory (the
/// resource's own site declares a directory).
fn target(
    cfg: &Config,
    store: &SiteStore,
    name: &str,
    scratch: Option<&Path>,
) -> Option<(String, bool)> {
    let r = cfg.resources.get(name)?;
    let ResourceKind::Bucket { location } = &r.kind else {
        return None;
    };
    if let Some(s) = scratch {
        return Some((store.address(&scratch_name(s, name)), false));
    }
    if r.site.as_deref() == Some(store.site.as_str()) {
        return location
            .starts_with("s3://")
            .then(|| (location.clone(), true));
    }
    Some((store.address(&bucket_name(name)), false))
}

/// Whether a stack of the site under `root` recorded `address` as its own.
fn recorded(root: &Path, address: &str) -> bool {
    let Ok(dir) = std::fs::read_dir(root.join("stacks")) else {
        return false;
    };
    dir.flatten().any(|e| {
        let stack = e.file_name().to_string_lossy().into_owned();
        StackState::read(root, &stack)
            .ok()
            .flatten()
            .is_some_and(|st| {
                st.members.iter().any(|(_, m)| {
                    !m.borrowed && m.outputs.get("location").map(String::as_str) == Some(address)
                })
            })
    })
}

fn member(root: &Path, name: &str, address: String, borrowed: bool) -> MemberState {
    MemberState {
        kind: "bucket".into(),
        dir: root.join("buckets").join(name),
        outputs: [("location".to_string(), address)].into(),
        borrowed,
        ..Default::default()
    }
}

/// Whether a member is a bucket on an S3 endpoint.
pub fn is_s3(m: &MemberState) -> bool {
    m.kind == "bucket"
        && m.outputs
            .get("location")
            .is_some_and(|l| l.starts_with("s3://"))
}

/// Provisions bucket member `name` on the endpoint: made when missing,
/// refused when it holds objects and is not this site's own. Returns the
/// member and whether the bucket was made now. `None`: not on the endpoint.
pub fn provision(
    cfg: &Config,
    store: &SiteStore,
    root: &Path,
    name: &str,
    scratch: Option<&Path>,
    before: Option<&MemberState>,
) -> Result<Option<(MemberState, bool)>> {
    let Some((address, borrowed)) = target(cfg, store, name, scratch) else {
        return Ok(None);
    };
    let b = store.open(&address)?;
    let s3 = b.s3().expect("an s3:// address");
    let rt = runtime()?;
    let created = if store.bounded(&rt, s3.exists())? {
        let ours = borrowed
            || before.and_then(|m| m.outputs.get("location")) == Some(&address)
            || (scratch.is_none() && recorded(root, &address));
        if !ours && !store.bounded(&rt, s3.is_empty())? {
            return Err(StackError::Refused(format!(
                "bucket `{}` on {} (site `{}`) already holds objects, and no stack of this site provisioned it: Lifeboat never provisions a stack into a bucket with data; empty or remove that bucket first",
                s3.name(),
                store.endpoint,
                store.site
            )));
        }
        false
    } else {
        store.bounded(&rt, s3.create(&store.region))?;
        true
    };
    let mut m = member(root, name, address, borrowed);
    // A drill's scratch bucket is Lifeboat's own by its name.
    m.provisioned =
        Some(created || scratch.is_some() || before.is_some_and(|b| b.provisioned == Some(true)));
    Ok(Some((m, created)))
}

/// A bucket of its own for a recovery's restore, when the usual one is a
/// replication destination or exists already (holding objects or not: a
/// recovery restores only into a bucket it makes, so `down --purge` removes
/// exactly that): `NAME-recovered-TIME`, made now. Returns the member and
/// why it was needed; `None`: the usual one is free.
fn provision_own(
    cfg: &Config,
    store: &SiteStore,
    root: &Path,
    name: &str,
) -> Result<Option<(MemberState, String)>> {
    let Some((address, _)) = target(cfg, store, name, None) else {
        return Ok(None);
    };
    let rt = runtime()?;
    let why = match store.replication_into(cfg, &address) {
        Some(rule) => format!("{address} is a replication destination ({rule})"),
        None => {
            let b = store.open(&address)?;
            let s3 = b.s3().expect("an s3:// address");
            if !store.bounded(&rt, s3.exists())? {
                return Ok(None);
            }
            match store.bounded(&rt, s3.is_empty())? {
                true => format!("{address} was there before (not the recovery's own)"),
                false => format!("{address} holds objects"),
            }
        }
    };
    let stamp = Utc::now().format("%Y%m%dt%H%M%S").to_string();
    let own = store.address(&bucket_name(&format!("{name}-recovered-{stamp}")));
    let b = store.open(&own)?;
    let s3 = b.s3().expect("an s3:// address");
    if store.bounded(&rt, s3.exists())? {
        return Err(StackError::Refused(format!(
            "{own} exists already: a recovery restores only into a bucket of its own; run it again in a second"
        )));
    }
    store.bounded(&rt, s3.create(&store.region))?;
    let mut m = member(root, name, own.clone(), false);
    m.provisioned = Some(true);
    Ok(Some((
        m,
        format!("restored into {own}, a bucket of its own: {why}"),
    )))
}

/// Every object of `bucket`, listed.
fn keys(rt: &tokio::runtime::Runtime, b: &Bucket) -> lifeboat_bucket::Result<Vec<String>> {
    let mut keys = Vec::new();
    rt.block_on(b.list("", &mut |o| keys.push(o.key)))?;
    Ok(keys)
}

/// Empties an S3 bucket (every object, 16 at a time), then deletes it.
pub fn remove(store: &SiteStore, address: &str) -> Result<()> {
    let b = store.open(address)?;
    let rt = runtime()?;
    let fail = |e: &dyn std::fmt::Display| {
        StackError::Process(format!(
            "bucket {address} could not be removed: {e} (remove it by hand: delete its objects, then the bucket)"
        ))
    };
    let all = match keys(&rt, &b) {
        Ok(k) => k,
        Err(lifeboat_bucket::BucketError::NoBucket { .. }) => return Ok(()),
        Err(e) => return Err(fail(&e)),
    };
    rt.block_on(async {
        let mut set: tokio::task::JoinSet<lifeboat_bucket::Result<()>> =
            tokio::task::JoinSet::new();
        for k in all {
            if set.len() >= 16
                && let Some(r) = set.join_next().await
            {
                r.map_err(|e| fail(&e))?.map_err(|e| fail(&e))?;
            }
            let b = b.clone();
            set.spawn(async move { b.delete(&k).await });
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| fail(&e))?.map_err(|e| fail(&e))?;
        }
        Ok::<(), StackError>(())
    })?;
    rt.block_on(b.s3().expect("an s3:// address").remove())
        .map_err(|e| fail(&e))
}

/// Copies every object of `from` into `to` (bytes, content type, metadata,
/// tags), 16 at a time; `from` is only read.
pub(crate) fn copy_all(from: &Bucket, to: &Bucket) -> Result<u64> {
    let fail = |e: &dyn std::fmt::Display| {
        StackError::Process(format!(
            "copying {} into {}: {e}",
            from.address(),
            to.address()
        ))
    };
    let rt = runtime()?;
    let mut objects = Vec::new();
    rt.block_on(from.list("", &mut |o| objects.push(o)))
        .map_err(|e| fail(&e))?;
    let n = objects.len() as u64;
    rt.block_on(async {
        let mut set: tokio::task::JoinSet<lifeboat_bucket::Result<()>> =
            tokio::task::JoinSet::new();
        for o in objects {
            if set.len() >= 16
                && let Some(r) = set.join_next().await
            {
                r.map_err(|e| fail(&e))?.map_err(|e| fail(&e))?;
            }
            let (from, to) = (from.clone(), to.clone());
            set.spawn(async move {
                let mut src = from.open_read(&o.key, Some(&o.version)).await?;
                let meta = src.meta.clone();
                to.put(&o.key, &meta, &mut src).await.map(|_| ())
            });
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| fail(&e))?.map_err(|e| fail(&e))?;
        }
        Ok(n)
    })
}

/// The replica of bucket `member` on the endpoint (a replication rule's
/// destination there) with the time of its newest object; `None` when no
/// rule replicates there, or the replica is gone or empty.
fn replica(
    cfg: &Config,
    store: &SiteStore,
    member: &str,
) -> Result<Option<(String, DateTime<Utc>)>> {
    let rt = runtime()?;
    for r in cfg.replications.values().filter(|r| r.from == member) {
        if !store.holds(&r.to) {
            continue;
        }
        let b = store.open(&r.to)?;
        if !store.bounded(&rt, b.s3().expect("an s3:// address").exists())? {
            continue;
        }
        let mut newest = 0i64;
        match rt.block_on(b.list("", &mut |o| newest = newest.max(o.modified_ns))) {
            Ok(()) if newest > 0 => {
                // As fresh as its replicator says, when that is later.
                let caught = rt.block_on(lifeboat_bucket::replicate::caught_up::read(&b));
                let t = DateTime::from_timestamp_nanos(newest).max(caught.unwrap_or_default());
                return Ok(Some((r.to.clone(), t)));
            }
            Ok(()) | Err(lifeboat_bucket::BucketError::NoBucket { .. }) => {}
            Err(e) => return Err(store.unreachable(&e.to_string())),
        }
    }
    Ok(None)
}

/// Recovers bucket member `name` onto the site's endpoint: the replica in
/// place when it is at least as new as the newest point (a drill copies it
/// into its scratch bucket instead), else the newest point restored. A
/// bucket made here and not filled whole is removed again.
pub(crate) fn recover_member(
    r: &Recovery,
    store: &SiteStore,
    name: &str,
    vaults: &[(String, Vault)],
) -> Result<Option<(MemberState, Source)>> {
    let (cfg, root, opts) = (r.cfg, r.root.as_path(), r.opts);
    let scratch = opts.scratch.as_deref();
    if target(cfg, store, name, scratch).is_none() {
        return Ok(None);
    }
    let t = Instant::now();
    let found = replica(cfg, store, name)?;
    // S3 keeps an object's modification time to the second: compared so.
    let place = format!(" on {}", store.endpoint);
    let (b, way) = BucketSources::choose(
        vaults,
        name,
        opts.at,
        found,
        true,
        &place,
        scratch.is_some(),
    )?;
    if way == BucketWay::InPlace {
        let (address, rt) = b.replica.clone().expect("checked");
        r.step("use the bucket replica in place", Some(name), t);
        return Ok(Some((
            member(root, name, address, true),
            Source::replica(name, rt, b.why_replica()),
        )));
    }
    // Never into a replica, never over objects: a bucket of its own then.
    let own = match scratch {
        None => provision_own(cfg, store, root, name)?,
        Some(_) => None,
    };
    let (m, created, note) = match own {
        Some((m, why)) => (m, true, Some(why)),
        None => {
            let (m, c) = provision(cfg, store, root, name, scratch, None)?.expect("a target");
            (m, c, None)
        }
    };
    r.step("provision the bucket on the endpoint", Some(name), t);
    let address = m.outputs["location"].clone();
    let to = store.open(&address)?;
    let t = Instant::now();
    let filled: Result<Source> = if way == BucketWay::CopyReplica {
        let (from, rt) = b.replica.clone().expect("checked");
        let src = store.open(&from)?;
        copy_all(&src, &to).map(|n| {
            r.step(
                "copy the bucket replica into the scratch bucket",
                Some(name),
                t,
            );
            Source::replica(
                name,
                rt,
                format!(
                    "{}; its {n} objects copied into the scratch bucket (the replica is only read)",
                    b.why_replica()
                ),
            )
        })
    } else {
        let (vn, v, id, p) = b.point.as_ref().expect("checked");
        let location = store.location(&address)?;
        restore_bucket_point(v, id, p, location, false).map(|()| {
            r.step("restore the bucket point", Some(name), t);
            let mut why = b.why_point(&format!(", restored into the bucket{place}"));
            if let Some(n) = &note {
                why = format!("{why}; {n}");
            }
            Source::point(name, "bucket", vn, id, Some(p.time), why)
        })
    };
    match filled {
        Ok(src) => Ok(Some((m, src))),
        Err(e) => {
            // Never leave a half-filled bucket that this recovery made.
            if created && let Err(r) = remove(store, &address) {
                return Err(StackError::Process(format!("{e}; and {r}")));
            }
            Err(e)
        }
    }
}

/// A bucket member's health: the endpoint answers and the bucket exists.
pub fn status(cfg: &Config, site: &str, m: &MemberState) -> (&'static str, Option<String>) {
    let address = m.outputs.get("location").cloned().unwrap_or_default();
    let store = match SiteStore::of(cfg, site) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return (
                "down",
                Some(format!(
                    "site `{site}` names no S3 endpoint any more (bucket {address})"
                )),
            );
        }
        Err(e) => return ("down", Some(e.to_string())),
    };
    let exists = store
        .open(&address)
        .and_then(|b| runtime().map(|rt| (b, rt)))
        .and_then(|(b, rt)| store.bounded(&rt, b.s3().expect("an s3:// address").exists()));
    match exists {
        Ok(true) => ("up", None),
        Ok(false) => (
            "missing",
            Some(format!("bucket {address} no longer exists")),
        ),
        Err(e) => ("down", Some(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert_eq!(bucket_name("shop_Assets"), "shop-assets");
        assert_eq!(bucket_name("db"), "db0");
        assert_eq!(bucket_name(&"x".repeat(80)).len(), 63);
        let n = scratch_name(
            Path::new("/srv/dr/drills/unishop-20261201T153252432Z"),
            "shop-assets",
        );
        assert_eq!(n, "lifeboat-drill-20261201t153252432z-shop-assets");
        let long = scratch_name(Path::new("/d/s-20261201T153252432Z"), &"r".repeat(60));
        assert!(long.len() <= 63 && !long.ends_with('-'), "{long}");
    }
}
