//! Leaving a recovered site protected at once, beyond its databases
//! (`protect.rs`): a first point of every other recovered member into the
//! vault it was recovered from — a bucket (the replica used in place, or the
//! bucket a point was restored into) as a bucket point, a files member as a
//! files point, an instance as an instance point of its recovered directory
//! — and the fence a recovery writes into a replica it uses in place.
//!
//! An instance's first point holds the recovered directory
//! (`ROOT/hosts/NAME/opt/app`, the paths and volumes as restored there) and
//! the launch spec the recovery started it with, re-rooted to those paths;
//! it is tagged `recovered`, and a later recovery from it starts the
//! instance with that spec (the file's still names the old primary's
//! paths) until the file declares the instance in this site.

use std::path::{Path, PathBuf};

use lifeboat_bucket::replicate::fence::{self, Fence};
use lifeboat_config::Config;
use lifeboat_vault::{Id, Vault};

use crate::protect::Protected;
use crate::state::MemberState;
use crate::{Result, StackError};

/// The tag of the first points of a recovered site.
pub const RECOVERED_TAG: &str = "recovered";

fn protected(member: &str, kind: &str, vault: &str, id: &Id) -> Protected {
    Protected {
        member: member.into(),
        kind: kind.into(),
        vault: vault.into(),
        snapshot: id.to_hex(),
        binlog_from: None,
        archive_pid: None,
    }
}

/// Opens a recovered bucket member (on the site's endpoint, or a directory).
fn open_bucket(cfg: &Config, site: &str, m: &MemberState) -> Result<lifeboat_bucket::Bucket> {
    let location = m
        .outputs
        .get("location")
        .ok_or_else(|| StackError::Process("the bucket member has no location".into()))?;
    if crate::bucket::is_s3(m)
        && let Some(store) = crate::bucket::SiteStore::of(cfg, site)?
    {
        return store.open(location);
    }
    lifeboat_bucket::Bucket::open_address(location, false)
        .map_err(|e| StackError::Process(e.to_string()))
}

/// A first point of recovered member `member` (not a database) into
/// `vault`; `spec` is an instance's spec as recovered (its launch spec the
/// one it was started with).
pub fn protect_member(
    cfg: &Config,
    site: &str,
    (vault_name, vault): (&str, &Vault),
    member: &str,
    m: &MemberState,
    spec: Option<&lifeboat_instance::InstanceSpec>,
) -> Result<Protected> {
    let tags = vec![RECOVERED_TAG.to_string()];
    let id = match m.kind.as_str() {
        "bucket" => {
            let b = open_bucket(cfg, site, m)?;
            let opts = lifeboat_bucket::snapshot::SnapshotOptions {
                resource: Some(member.into()),
                tags,
                ..Default::default()
            };
            lifeboat_bucket::snapshot::snapshot(vault, &b, &opts, &Default::default())
                .map_err(|e| {
                    StackError::Process(format!("a bucket point of {}: {e}", b.address()))
                })?
                .id
        }
        "files" => {
            let opts = lifeboat_files::BackupOptions {
                paths: vec![m.dir.clone()],
                resource: Some(member.into()),
                tags,
                ..Default::default()
            };
            lifeboat_files::backup(vault, &opts, &Default::default())
                .map_err(|e| {
                    StackError::Process(format!("a files point of {}: {e}", m.dir.display()))
                })?
                .id
        }
        "instance" => {
            let spec =
                spec.ok_or_else(|| StackError::Process("the instance's spec is not known".into()))?;
            let spec = recovered_spec(member, spec, &m.dir);
            lifeboat_instance::backup(vault, &spec, &tags, &Default::default())
                .map_err(|e| {
                    StackError::Process(format!("an instance point of {}: {e}", m.dir.display()))
                })?
                .id
        }
        k => {
            return Err(StackError::Process(format!(
                "a member of kind `{k}` is not protected here"
            )));
        }
    };
    Ok(protected(member, &m.kind, vault_name, &id))
}

/// An instance spec as recovered under `dir`: its paths and volumes where
/// the recovery restored them, its launch spec re-rooted to them, no hooks
/// (they name the old primary's application; the point is crash-consistent).
pub fn recovered_spec(
    member: &str,
    spec: &lifeboat_instance::InstanceSpec,
    dir: &Path,
) -> lifeboat_instance::InstanceSpec {
    let under = |p: &PathBuf| dir.join(p.strip_prefix("/").unwrap_or(p));
    let roots: Vec<PathBuf> = spec.paths.iter().chain(&spec.volumes).cloned().collect();
    let r = |s: &String| lifeboat_instance::launch::reroot(s, &roots, dir);
    let launch = spec.launch.clone().map(|mut l| {
        l.command = l.command.iter().map(r).collect();
        l.cwd = l.cwd.as_ref().map(r);
        l.env = l.env.iter().map(|(k, v)| (k.clone(), r(v))).collect();
        l
    });
    lifeboat_instance::InstanceSpec {
        name: Some(member.into()),
        paths: spec.paths.iter().map(under).collect(),
        volumes: spec.volumes.iter().map(under).collect(),
        launch,
        hooks: Default::default(),
        ..spec.clone()
    }
}

/// Writes the replicator fence into the replica member `m` now is.
pub fn fence_replica(cfg: &Config, site: &str, m: &MemberState, f: &Fence) -> Result<()> {
    let b = open_bucket(cfg, site, m)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StackError::Process(format!("cannot start the I/O runtime: {e}")))?;
    rt.block_on(fence::write(&b, f))
        .map_err(|e| StackError::Process(format!("writing the fence into {}: {e}", b.address())))
}

/// The hand-run command that protects member `member` (`m`) into `vault`.
fn by_hand(cfg: &Config, vault: &str, member: &str, m: &MemberState) -> String {
    let at = cfg
        .vaults
        .get(vault)
        .map(|v| v.location.clone())
        .unwrap_or_default();
    match m.kind.as_str() {
        "bucket" => format!(
            "lifeboat backup bucket --vault {at} --bucket '{}' --resource {member} --tag {RECOVERED_TAG}",
            m.outputs.get("location").cloned().unwrap_or_default()
        ),
        "files" => format!(
            "lifeboat backup files --vault {at} --resource {member} {}",
            m.dir.display()
        ),
        _ => format!(
            "lifeboat backup instance --vault {at} --spec SPEC.toml, SPEC naming `{member}`'s paths and volumes under {}",
            m.dir.display()
        ),
    }
}

/// The spec instance `member` was recovered with: the point's, with the
/// launch spec the recovery chose (the file's, else the point's).
fn instance_spec(
    cfg: &Config,
    member: &str,
    vault: &Vault,
    point: &str,
) -> Result<lifeboat_instance::InstanceSpec> {
    let id = Id::parse(point)
        .ok_or_else(|| StackError::Process(format!("{point:?} is not a point id")))?;
    let p = vault
        .read_point(&id)
        .map_err(|e| StackError::Process(format!("reading point {}: {e}", id.short())))?;
    let mut spec = lifeboat_instance::restore::meta_of(&p)?.spec;
    spec.launch = crate::launch::LaunchChoice::of(cfg, member, &p)?.spec;
    Ok(spec)
}

/// Protects every recovered member that is not a database (those are
/// `protect::protect`'s): a first point each into the vault it was
/// recovered from (a replica used in place: the site's first vault).
/// Failures are warnings naming the member and the command to run by hand.
pub(crate) fn protect_others(
    cfg: &Config,
    site: &str,
    members: &[(String, MemberState)],
    sources: &[crate::recover::Source],
    vaults: &[(String, Vault)],
    mut done: impl FnMut(&str, std::time::Instant),
) -> (Vec<Protected>, Vec<String>) {
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    for (name, m) in members.iter().filter(|(_, m)| m.kind != "mysql") {
        let src = sources.iter().find(|x| &x.member == name);
        let Some((vn, v)) = src
            .and_then(|x| x.vault.as_deref())
            .and_then(|vn| vaults.iter().find(|(n, _)| n == vn))
            .or(vaults.first())
        else {
            continue;
        };
        let t = std::time::Instant::now();
        let spec = match (m.kind.as_str(), src.and_then(|x| x.point.as_deref())) {
            ("instance", Some(point)) => instance_spec(cfg, name, v, point).map(Some),
            _ => Ok(None),
        };
        match spec.and_then(|s| protect_member(cfg, site, (vn, v), name, m, s.as_ref())) {
            Ok(p) => {
                done(name, t);
                out.push(p);
            }
            Err(e) => warnings.push(format!(
                "the recovered `{name}` is NOT protected yet: {e} (protect it by hand: {})",
                by_hand(cfg, vn, name, m)
            )),
        }
    }
    (out, warnings)
}
