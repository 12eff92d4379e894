//! Live RPO exposure: per stack and per site that could recover it, how many
//! seconds of the stack's data that site does not hold yet — what a failure
//! now would lose, before any drill measures it.
//!
//! Per member, the newest data the site's vaults hold: a database's newest
//! restorable second (its copied binlog archive; an idle database's archive
//! moves that mark on its heartbeat, so an idle one shows up to the heartbeat,
//! 30 s by default), any other member's newest point. The stack's exposure is
//! that of its database members when it has any (as a recovery report's RPO
//! is measured from the databases' last commit), else that of all members;
//! the largest of them.
//!
//! A site the stack runs in is left out: after a failover the secondary
//! runs the stack, and its vaults' points are the running site's own data,
//! not what a failure would lose.

use chrono::{DateTime, Utc};
use lifeboat_config::Config;
use serde::{Deserialize, Serialize};

/// One member's exposure in one site.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberExposure {
    /// The resource.
    pub member: String,
    /// Its kind (`mysql`, `bucket`, `files`, `instance`).
    pub kind: String,
    /// The newest data of it the site holds (`None`: nothing).
    pub data_time: Option<DateTime<Utc>>,
    /// `now − data_time` (`None`: the site holds nothing of it).
    pub seconds: Option<f64>,
}

/// A stack's exposure in one site.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exposure {
    /// The stack.
    pub stack: String,
    /// The site that would recover it.
    pub site: String,
    /// When it was measured.
    pub at: DateTime<Utc>,
    /// Seconds of data a failure now would lose (`None`: the site cannot
    /// recover a member it needs, or its vaults could not be read).
    pub seconds: Option<f64>,
    /// Per member.
    pub members: Vec<MemberExposure>,
    /// Why the site's vaults could not be read, when they could not.
    pub error: Option<String>,
}

impl Exposure {
    /// The same exposure as of `now` (a cached one grows with the time since
    /// it was measured: no newer data is known to have arrived).
    pub fn as_of(&self, now: DateTime<Utc>) -> Exposure {
        let d = ((now - self.at).num_milliseconds().max(0) as f64) / 1000.0;
        let mut e = self.clone();
        e.at = now;
        e.seconds = e.seconds.map(|s| s + d);
        for m in &mut e.members {
            m.seconds = m.seconds.map(|s| s + d);
        }
        e
    }
}

/// The newest data of `member` the vaults hold.
fn newest_data(
    vaults: &[(String, lifeboat_vault::Vault)],
    member: &str,
    kind: &str,
) -> Option<DateTime<Utc>> {
    let mut best: Option<DateTime<Utc>> = None;
    for (_, v) in vaults {
        let t = if kind == "mysql" {
            lifeboat_mysql::Catalog::load(v, member)
                .ok()
                .and_then(|c| c.windows().iter().map(|w| w.to).max())
        } else {
            v.list_points().ok().and_then(|(points, _)| {
                points
                    .into_iter()
                    .filter(|(_, p)| p.resource == member && p.kind == kind)
                    .map(|(_, p)| p.time)
                    .max()
            })
        };
        if let Some(t) = t {
            best = Some(best.map_or(t, |b| b.max(t)));
        }
    }
    best
}

/// Whether `stack` runs in `site` now (recovered or brought up there: its
/// stack state in the site's root has a member whose process is alive, or,
/// a stack of data members only — files, buckets — whose state is there).
/// The data of a stack that runs in a site is that site's own, not its
/// exposure.
pub fn runs_in(cfg: &Config, stack: &str, site: &str) -> bool {
    let Some(root) = cfg.sites.get(site).and_then(|s| s.root.as_ref()) else {
        return false;
    };
    crate::state::StackState::read(root, stack)
        .ok()
        .flatten()
        .is_some_and(|st| {
            let runs =
                |m: &crate::state::MemberState| matches!(m.kind.as_str(), "mysql" | "instance");
            st.members
                .iter()
                .any(|(_, m)| m.process.as_ref().is_some_and(|p| p.alive()))
                || (!st.members.is_empty() && !st.members.iter().any(|(_, m)| runs(m)))
        })
}

/// Every stack's exposure in every site that has a vault and runs none of
/// the stack's members (neither the members' declared site nor one the
/// stack was recovered into and runs in), at `now`, opening the vaults with the file's secrets.
pub fn live(cfg: &Config, now: DateTime<Utc>) -> Vec<Exposure> {
    live_with(cfg, now, &|n: &str| {
        lifeboat_control::secret::open_vault(cfg, n).map_err(|e| e.to_string())
    })
}

/// [`live`], opening vault `name` with `open` (a server's opened vaults).
pub fn live_with(
    cfg: &Config,
    now: DateTime<Utc>,
    open: &dyn Fn(&str) -> Result<lifeboat_vault::Vault, String>,
) -> Vec<Exposure> {
    let mut out = Vec::new();
    for (name, stack) in &cfg.stacks {
        let home: Vec<&str> = stack
            .members
            .iter()
            .filter_map(|m| cfg.resources.get(m)?.site.as_deref())
            .collect();
        let sites: std::collections::BTreeSet<&str> = cfg
            .vaults
            .values()
            .filter_map(|v| v.site.as_deref())
            .filter(|s| !home.contains(s))
            .filter(|s| !runs_in(cfg, name, s))
            .collect();
        for site in sites {
            let opened: Result<Vec<_>, String> = cfg
                .vaults
                .iter()
                .filter(|(_, v)| v.site.as_deref() == Some(site))
                .map(|(n, _)| {
                    open(n)
                        .map(|v| (n.clone(), v))
                        .map_err(|e| format!("vault `{n}`: {e}"))
                })
                .collect();
            let vaults = match opened {
                Ok(v) => v,
                Err(e) => {
                    out.push(Exposure {
                        stack: name.clone(),
                        site: site.to_string(),
                        at: now,
                        seconds: None,
                        members: Vec::new(),
                        error: Some(e),
                    });
                    continue;
                }
            };
            let members: Vec<MemberExposure> = stack
                .members
                .iter()
                .filter_map(|m| {
                    let kind = cfg.resources.get(m)?.kind.name();
                    let data_time = newest_data(&vaults, m, kind);
                    Some(MemberExposure {
                        member: m.clone(),
                        kind: kind.to_string(),
                        data_time,
                        seconds: data_time
                            .map(|t| ((now - t).num_milliseconds().max(0) as f64) / 1000.0),
                    })
                })
                .collect();
            let has_db = members.iter().any(|m| m.kind == "mysql");
            let counted = members
                .iter()
                .filter(|m| !has_db || m.kind == "mysql")
                .filter(|m| !stack.optional.contains(&m.member));
            let mut seconds = Some(0.0f64);
            for m in counted {
                seconds = match (seconds, m.seconds) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            out.push(Exposure {
                stack: name.clone(),
                site: site.to_string(),
                at: now,
                seconds,
                members,
                error: None,
            });
        }
    }
    out
}
