//! Live RPO exposure: per stack and per site that could recover it, how many
//! seconds of the stack's data that site does not hold yet — what a failure
//! now would lose, before any drill measures it.
//!
//! Per member, the newest data the site's vaults hold: a database's newest
//! restorable second (its copied binlog archive; an idle database's archive
//! moves that mark on each of its checks, every second by default, so an
//! idle one trails the present by about that much, as a busy one does), any
//! other member's newest point. The stack's exposure follows the recovery
//! report's RPO rule: the worst of every member, database or not, except
//! those declared `stateless = true` (their content changes only by deploy;
//! their own exposure is still given, marked). A member the site holds
//! nothing of leaves the stack's exposure unknown, unless it is optional
//! (a recovery goes on without it).
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
    /// Declared `stateless`: given, never counted in the stack's exposure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stateless: bool,
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
    // How far each vault's restorable data reaches, as the member's
    // protector judges it (a database's archive reaches past its snapshots).
    let protector = lifeboat_control::protectors::registry().of_resource(kind)?;
    vaults
        .iter()
        .filter_map(|(_, v)| protector.restorable_until(v, member))
        .max()
}

/// The stack's exposure from its members': the worst of those not declared
/// stateless (as a recovery report's RPO, `recover.rs`'s `member_rpos`);
/// `None` when the site holds nothing of a required one. An optional member
/// the site holds nothing of is left out, as a recovery goes on without it.
fn stack_seconds(members: &[MemberExposure], optional: &[String]) -> Option<f64> {
    let mut seconds = Some(0.0f64);
    for m in members.iter().filter(|m| !m.stateless) {
        seconds = match (seconds, m.seconds) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (s, None) if optional.contains(&m.member) => s,
            _ => None,
        };
    }
    seconds
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
                    let r = cfg.resources.get(m)?;
                    let kind = r.kind.name();
                    let data_time = newest_data(&vaults, m, kind);
                    Some(MemberExposure {
                        member: m.clone(),
                        kind: kind.to_string(),
                        data_time,
                        seconds: data_time
                            .map(|t| ((now - t).num_milliseconds().max(0) as f64) / 1000.0),
                        stateless: r.stateless,
                    })
                })
                .collect();
            let seconds = stack_seconds(&members, &stack.optional);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, kind: &str, seconds: Option<f64>, stateless: bool) -> MemberExposure {
        MemberExposure {
            member: name.into(),
            kind: kind.into(),
            data_time: None,
            seconds,
            stateless,
        }
    }

    /// Issue 21 C14: a stack whose app host's newest point is an hour old is
    /// an hour exposed, however fresh its database; a stateless member is
    /// given apart.
    #[test]
    fn the_stack_is_as_exposed_as_its_worst_member_stateless_ones_apart() {
        let db = member("db", "mysql", Some(1.2), false);
        let host = member("host", "instance", Some(3600.0), false);
        let site = member("site", "files", Some(86_400.0), true);
        let all = [db.clone(), host.clone(), site.clone()];
        assert_eq!(stack_seconds(&all, &[]), Some(3600.0));
        // Without the host: the stateless member's day does not count.
        assert_eq!(stack_seconds(&[db.clone(), site], &[]), Some(1.2));
        // A required member the site holds nothing of: unknown.
        let none = member("assets", "bucket", None, false);
        assert_eq!(stack_seconds(&[db.clone(), none.clone()], &[]), None);
        // An optional one: left out.
        assert_eq!(
            stack_seconds(&[db, none], &["assets".to_string()]),
            Some(1.2)
        );
    }
}
