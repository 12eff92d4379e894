//! The last step: what the recovery achieved — each member's RPO and the
//! stack's, the downtime and the recovery's own time — judged against the
//! stack's objectives, and the report built from the steps.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lifeboat_config::Config;

use super::sources::SiteVaults;
use super::{Clock, Objectives, Recovered, Recovery, RecoveryReport, Source};
use crate::planned::Quiesced;

/// When every required member was healthy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Healthy {
    /// The moment.
    pub at: DateTime<Utc>,
    /// Seconds from the recovery's start.
    pub recovery_s: f64,
}

impl Healthy {
    /// Now, on the recovery's clock.
    pub(crate) fn now(clock: &Clock) -> Healthy {
        Healthy {
            at: Utc::now(),
            recovery_s: clock.elapsed_s(),
        }
    }
}

/// Step: the recovery measured and reported.
pub(crate) struct Measure {
    /// When the stack was healthy.
    pub healthy: Healthy,
    /// A planned switchover's quiescing.
    pub switchover: Option<Quiesced>,
    /// What protects the recovered members now.
    pub protection: Vec<crate::protect::Protected>,
}

impl Measure {
    /// The report of recovery `r` whose steps brought up `got`.
    pub(crate) fn report(
        self,
        r: &Recovery,
        vaults: &SiteVaults,
        got: Recovered,
    ) -> RecoveryReport {
        let Recovered {
            state,
            mut sources,
            mut warnings,
        } = got;
        if let Some(q) = &self.switchover {
            complete_to_the_fence(q, vaults, &mut sources, &mut warnings);
        }
        let failed_at = self
            .switchover
            .as_ref()
            .map(|q| q.writes_stopped_at)
            .or(r.opts.failed_at)
            .unwrap_or(r.started_at);
        let failed_known = self.switchover.is_some() || r.opts.failed_at.is_some();
        let downtime_s = failed_known.then(|| seconds(self.healthy.at - failed_at));
        let rto_s = downtime_s.unwrap_or(self.healthy.recovery_s);
        // A recovery to a chosen moment (--at, a drill's random pick) is
        // measured from that moment: what it lost of the moment asked for,
        // as a failure then would have lost; else from the failure.
        let (newest_data, rpo_s) = member_rpos(r.cfg, &mut sources, r.opts.at.unwrap_or(failed_at));
        let objectives = judge(r.declared, rpo_s, rto_s);
        let outputs: BTreeMap<String, String> = crate::stack::outputs_of(&state)
            .into_iter()
            .filter(|(k, _)| !k.ends_with(".socket"))
            .collect();
        let mut steps = std::mem::take(&mut *r.steps.lock().expect("steps"));
        steps.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        RecoveryReport {
            stack: r.stack.into(),
            site: r.site.into(),
            started_at: r.started_at,
            healthy_at: self.healthy.at,
            failed_at,
            newest_data,
            rpo_s,
            rto_s,
            downtime_s,
            recovery_s: self.healthy.recovery_s,
            objectives,
            sources,
            steps,
            outputs,
            warnings,
            switchover: self.switchover,
            protection: self.protection,
        }
    }
}

/// A duration in seconds, never below zero.
fn seconds(d: chrono::TimeDelta) -> f64 {
    (d.num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// A planned switchover's members complete up to its fence: a database
/// recovered to the position it stopped at lost nothing — measured, not
/// assumed: the vault it came from holds the archive to that position
/// (short of it: a warning); a replica replicated once more after the
/// writes stopped is complete then.
fn complete_to_the_fence(
    q: &Quiesced,
    vaults: &SiteVaults,
    sources: &mut [Source],
    warnings: &mut Vec<String>,
) {
    for x in sources.iter_mut().filter(|x| x.kind == "mysql") {
        let Some((_, file, pos)) = q.positions.iter().find(|p| p.0 == x.member) else {
            continue;
        };
        let want = (lifeboat_mysql::binlog::file_number(file).unwrap_or(0), *pos);
        let reached = x
            .vault
            .as_deref()
            .and_then(|vn| vaults.get(vn))
            .and_then(|v| crate::planned::archived_to(v, &x.member));
        if reached.is_some_and(|r| r >= want) {
            x.data_time = Some(q.writes_stopped_at);
            x.why = format!(
                "recovered to {file}:{pos}, where the fenced primary stopped (planned switchover)"
            );
        } else {
            warnings.push(format!(
                "`{}` was recovered short of {file}:{pos}, where the fenced primary stopped: commits after its newest restorable second are lost",
                x.member
            ));
        }
    }
    let replicated = |m: &str| q.replicated.iter().any(|(r, _)| r == m);
    for x in sources
        .iter_mut()
        .filter(|x| x.from == "replica" && replicated(&x.member))
    {
        x.data_time = Some(q.writes_stopped_at);
    }
}

/// Each member's RPO (`from`: the failure, or the moment a recovery to an
/// earlier time asked for − the time its data is from); the stack's: the
/// worst of those not declared stateless, with the time its data is from
/// (the oldest of theirs).
pub(crate) fn member_rpos(
    cfg: &Config,
    sources: &mut [Source],
    from: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<f64>) {
    for x in sources.iter_mut() {
        x.stateless = cfg.resources.get(&x.member).is_some_and(|r| r.stateless);
        x.rpo_s = x.data_time.map(|t| seconds(from - t));
    }
    let counted = sources.iter().filter(|x| !x.stateless);
    let oldest = counted.clone().filter_map(|x| x.data_time).min();
    let worst = counted.filter_map(|x| x.rpo_s).reduce(f64::max);
    (oldest, worst)
}

/// The stack's objectives against the RPO and RTO achieved.
pub(crate) fn judge(s: &lifeboat_config::Stack, rpo_s: Option<f64>, rto_s: f64) -> Objectives {
    Objectives {
        rpo_s: s.objectives.rpo.map(|d| d.0),
        rto_s: s.objectives.rto.map(|d| d.0),
        rpo_met: s.objectives.rpo.zip(rpo_s).map(|(o, a)| a <= o.0 as f64),
        rto_met: s.objectives.rto.map(|o| rto_s <= o.0 as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(member: &str, data_time: Option<DateTime<Utc>>) -> Source {
        Source {
            data_time,
            ..Source::replica(member, Utc::now(), String::new())
        }
    }

    /// Each member's RPO is measured from the moment given; the stack's is
    /// the worst of its members', a stateless one apart; its data is as old
    /// as its oldest counted member's.
    #[test]
    fn the_stacks_rpo_is_its_worst_members_stateless_ones_apart() {
        let dir = tempfile::tempdir().unwrap();
        let extra = "[resource.site]\nkind = \"files\"\npaths = [\"/srv\"]\nstateless = true\n";
        let cfg = crate::recover::tests::config(dir.path(), extra);
        let from = Utc::now();
        let s = |secs: i64| Some(from - chrono::TimeDelta::seconds(secs));
        let mut sources = vec![
            source("shop-db", s(2)),
            source("shop-assets", s(30)),
            source("site", s(86_400)),
            source("shop-host", None),
        ];
        let (oldest, worst) = member_rpos(&cfg, &mut sources, from);
        assert_eq!(worst, Some(30.0));
        assert_eq!(oldest, s(30));
        assert!(sources[2].stateless && sources[2].rpo_s == Some(86_400.0));
        assert_eq!(sources[3].rpo_s, None);
        // A data time after the moment asked for loses nothing.
        let mut later = vec![source(
            "shop-db",
            Some(from + chrono::TimeDelta::seconds(5)),
        )];
        assert_eq!(member_rpos(&cfg, &mut later, from).1, Some(0.0));
    }

    /// The objectives are met or missed by what was achieved; an RPO that
    /// could not be measured is neither.
    #[test]
    fn objectives_are_judged_against_what_was_achieved() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::recover::tests::config(dir.path(), "");
        let s = &cfg.stacks["shop"];
        let o = judge(s, Some(4.9), 119.0);
        assert_eq!((o.rpo_s, o.rto_s), (Some(5), Some(120)));
        assert_eq!((o.rpo_met, o.rto_met), (Some(true), Some(true)));
        let o = judge(s, Some(5.1), 121.0);
        assert_eq!((o.rpo_met, o.rto_met), (Some(false), Some(false)));
        assert_eq!(judge(s, None, 1.0).rpo_met, None);
    }
}
