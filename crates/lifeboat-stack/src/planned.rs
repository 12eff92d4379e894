//! A planned switchover (`recover --planned`): the primary is alive, so
//! nothing need be lost. Before the recovery: the primary's instances are
//! stopped (the application's writes stop), each database is set read-only
//! and its binlog position read, the recovery waits until the target site's
//! vaults hold the archive up to that position (the binlog archive and its
//! copy drained), and each bucket is replicated once more into its replica
//! (a directory under the target's root, or a bucket on its S3 endpoint; the
//! replication engine signs with the process's AWS_* environment).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_config::{Config, ResourceKind};
use serde::{Deserialize, Serialize};

use crate::state::StackState;
use crate::{Result, StackError};

/// What the quiescing did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quiesced {
    /// When the primary's writes stopped (its instances stopped, databases read-only).
    pub writes_stopped_at: DateTime<Utc>,
    /// Per database: the binlog position it stopped at.
    pub positions: Vec<(String, String, u64)>,
    /// Seconds the archive took to reach the target's vaults.
    pub drain_s: f64,
    /// Buckets replicated once more: (member, objects copied).
    pub replicated: Vec<(String, u64)>,
}

/// Stops the writes of `stack` at its primary site (the members' own site)
/// and waits until `target`'s vaults hold every commit.
pub fn quiesce(cfg: &Config, stack: &str, target: &str, timeout: Duration) -> Result<Quiesced> {
    let s = &cfg.stacks[stack];
    let sites: Vec<&str> = s
        .members
        .iter()
        .filter_map(|m| cfg.resources.get(m)?.site.as_deref())
        .collect();
    let Some(primary) = sites.first().copied() else {
        return Err(StackError::Refused(format!(
            "a planned switchover needs the primary: give stack `{stack}`'s members their `site`"
        )));
    };
    if primary == target {
        return Err(StackError::Refused(format!(
            "stack `{stack}` already runs in site `{target}`: a switchover goes to another site"
        )));
    }
    let (_, proot) = crate::stack::resolve(cfg, stack, primary)?;
    // 1. The application stops: no new writes.
    if let Some(st) = StackState::read(&proot, stack)? {
        for (_, m) in st.members.iter().filter(|(_, m)| m.kind == "instance") {
            if m.dir
                .join(lifeboat_instance::supervise::LAUNCH_PID)
                .exists()
            {
                lifeboat_instance::supervise::stop(&m.dir)?;
            }
        }
    }
    // 2. Databases read-only; where each stopped.
    let mut positions = Vec::new();
    for m in &s.members {
        let Some(ResourceKind::Mysql { dsn, password, .. }) = cfg.resources.get(m).map(|r| &r.kind)
        else {
            continue;
        };
        let mut d =
            lifeboat_control::secret::mysql_dsn(m, dsn, password).map_err(StackError::Refused)?;
        // A server the stack provisioned: root's password from its state.
        if d.password.is_none() && d.user == "root" {
            d.password = StackState::read(&proot, stack)?
                .and_then(|st| st.member(m)?.password.clone())
                .map(|p| p.0);
        }
        let mut sess = lifeboat_mysql::server::Session::connect(&d)
            .map_err(|e| StackError::Process(e.to_string()))?;
        sess.exec("set the primary read-only", "SET GLOBAL read_only = 1")
            .map_err(|e| StackError::Process(e.to_string()))?;
        let row = sess
            .rows("read the binlog position", "SHOW MASTER STATUS")
            .map_err(|e| StackError::Process(e.to_string()))?;
        let (file, pos) = row
            .first()
            .and_then(|r| {
                let f = lifeboat_mysql::server::text(r.first().cloned().flatten());
                let p = lifeboat_mysql::server::text(r.get(1).cloned().flatten()).parse().ok()?;
                Some((f, p))
            })
            .ok_or_else(|| StackError::Process(format!("database `{m}` has no binary log: it cannot be archived, so a switchover cannot drain it")))?;
        sess.close();
        positions.push((m.clone(), file, pos));
    }
    let writes_stopped_at = Utc::now();
    // 3. The archive drains into the target's vaults.
    let started = Instant::now();
    let vaults: Vec<lifeboat_vault::Vault> = cfg
        .vaults
        .iter()
        .filter(|(_, v)| v.site.as_deref() == Some(target))
        .filter_map(|(n, _)| lifeboat_control::secret::open_vault(cfg, n).ok())
        .collect();
    for (m, file, pos) in &positions {
        let want = (lifeboat_mysql::binlog::file_number(file).unwrap_or(0), *pos);
        loop {
            let reached = vaults.iter().any(|v| {
                lifeboat_mysql::Catalog::load(v, m)
                    .ok()
                    .and_then(|c| {
                        c.head().map(|h| {
                            (
                                lifeboat_mysql::binlog::file_number(&h.file).unwrap_or(0),
                                h.end,
                            )
                        })
                    })
                    .is_some_and(|have| have >= want)
            });
            if reached {
                break;
            }
            if started.elapsed() > timeout {
                return Err(StackError::Process(format!(
                    "the binlog archive of `{m}` did not reach {file}:{pos} in site `{target}`'s vaults within {} s: is its archive running, and its copy to the secondary? (the primary is read-only now; `SET GLOBAL read_only = 0` on it resumes writes)",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let drain_s = started.elapsed().as_secs_f64();
    // 4. Buckets: one more pass of each replication rule into the target's
    // root or onto its S3 endpoint.
    let (_, troot) = crate::stack::resolve(cfg, stack, target)?;
    let endpoint = crate::bucket::SiteStore::of(cfg, target)?;
    let mut replicated = Vec::new();
    for m in &s.members {
        for rule in cfg.replications.values().filter(|r| &r.from == m) {
            let to = PathBuf::from(rule.to.strip_prefix("file://").unwrap_or(&rule.to));
            if !to.starts_with(&troot) && !endpoint.as_ref().is_some_and(|e| e.holds(&rule.to)) {
                continue;
            }
            let Some(ResourceKind::Bucket { location }) = cfg.resources.get(m).map(|r| &r.kind)
            else {
                continue;
            };
            let copied = replicate_once(location, &rule.to, &troot)?;
            replicated.push((m.clone(), copied));
        }
    }
    Ok(Quiesced {
        writes_stopped_at,
        positions,
        drain_s,
        replicated,
    })
}

fn replicate_once(from: &str, to: &str, root: &Path) -> Result<u64> {
    let from_n = lifeboat_bucket::Bucket::parse(from)
        .map_err(|e| StackError::Process(e.to_string()))?
        .to_string();
    let to_n = lifeboat_bucket::Bucket::parse(to)
        .map_err(|e| StackError::Process(e.to_string()))?
        .to_string();
    let mut opts = lifeboat_bucket::replicate::Options::new(&from_n, &to_n, "");
    opts.state_dir = root
        .join("stacks")
        .join(".switchover-replication")
        .join(lifeboat_bucket::replicate::rule_id(&from_n, &to_n, ""));
    opts.existing = true;
    opts.once = true;
    let rep = lifeboat_bucket::replicate::run_until_signalled(opts)
        .map_err(|e| StackError::Process(format!("replicating {from} into {to}: {e}")))?;
    Ok(rep.copied)
}
