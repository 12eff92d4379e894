//! Retention policy: which recovery points to keep.
//!
//! Points are grouped by resource and kind. Some kinds are not kept by the
//! policy at all but by what other kept points need: a database's archived
//! binlog is kept exactly as long as a kept snapshot can be rolled forward
//! with it. The protector that writes such a kind says so with a
//! [`DependentKind`] rule, and [`apply`] takes the rules: the engine knows no
//! protector, and every caller (the CLI, a daemon) gets the same decisions
//! by passing the rules of the protectors it links (e.g.
//! `lifeboat_mysql::forget_rules()`). Within a group, newest first: `last` keeps
//! the newest N; `hourly` keeps the newest point of each of the N most recent
//! hours that have a point; likewise daily, weekly (ISO weeks), monthly and
//! yearly. A point kept by any rule is kept. A point under a retention lock is
//! always kept.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use crate::id::Id;
use crate::point::RecoveryPoint;

/// How many points to keep, per rule (0 = rule off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KeepPolicy {
    /// Newest N.
    pub last: u32,
    /// One per hour, N hours.
    pub hourly: u32,
    /// One per day, N days.
    pub daily: u32,
    /// One per ISO week, N weeks.
    pub weekly: u32,
    /// One per month, N months.
    pub monthly: u32,
    /// One per year, N years.
    pub yearly: u32,
    /// Every point stored within this many seconds before now (0 = off).
    /// Measured from now, by the vault's trusted times, never from the
    /// newest point (whose time a client may have forged).
    #[serde(default)]
    pub within_s: i64,
}

impl KeepPolicy {
    /// Whether no rule is set (such a policy would forget everything).
    pub fn is_empty(&self) -> bool {
        *self == KeepPolicy::default()
    }
}

/// The verdict on one point.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Point id.
    pub id: Id,
    /// Its resource.
    pub resource: String,
    /// Its kind.
    pub kind: String,
    /// Its time.
    pub time: DateTime<Utc>,
    /// Whether it is kept.
    pub keep: bool,
    /// Why it is kept (rules that selected it).
    pub reasons: Vec<String>,
}

/// A protector's rule for a kind of points that are kept by what other kept
/// points need, not by the keep policy (e.g. archived binlog: kept while a
/// kept snapshot needs it for point-in-time restore) — or by both, when
/// [`DependentKind::policy_too`] says so (e.g. the base of a kept
/// incremental point, kept though the policy would let it go).
pub trait DependentKind: Sync {
    /// The kind this rule decides (e.g. `mysql-binlog`).
    fn kind(&self) -> &str;
    /// Whether the keep policy keeps this kind's points too, the rule only
    /// adding those it needs; `false` (the default): the rule alone decides.
    /// Rules apply in the order given, so a rule that adds points of a kind
    /// another rule counts as kept comes before it.
    fn policy_too(&self) -> bool {
        false
    }
    /// Of `points` (every point considered, of every kind), the ids of this
    /// kind's points still needed, each with why, given which points of the
    /// other kinds are kept.
    fn needed(
        &self,
        points: &[(Id, RecoveryPoint)],
        kept: &dyn Fn(&Id) -> bool,
    ) -> Vec<(Id, String)>;
}

/// Applies `policy` to `points`, and `rules` to the kinds they decide;
/// returns one decision per point, newest first within each resource and
/// kind. A point under an unexpired retention lock is always kept.
pub fn apply(
    points: &[(Id, RecoveryPoint)],
    policy: &KeepPolicy,
    now: DateTime<Utc>,
    rules: &[&dyn DependentKind],
) -> Vec<Decision> {
    apply_with(points, policy, now, rules, false)
}

/// [`apply`]; with `bypass_governance`, a governance lock does not keep a
/// point (a compliance lock always does).
pub fn apply_with(
    points: &[(Id, RecoveryPoint)],
    policy: &KeepPolicy,
    now: DateTime<Utc>,
    rules: &[&dyn DependentKind],
    bypass_governance: bool,
) -> Vec<Decision> {
    let mut out = apply_policy(points, policy, now, bypass_governance);
    for rule in rules {
        let kept: std::collections::HashSet<Id> = out
            .iter()
            .filter(|d| d.keep && !rules.iter().any(|r| !r.policy_too() && r.kind() == d.kind))
            .map(|d| d.id)
            .collect();
        let needed = rule.needed(points, &|id| kept.contains(id));
        for d in out.iter_mut().filter(|d| d.kind == rule.kind()) {
            if rule.policy_too() {
                d.reasons.extend(
                    needed
                        .iter()
                        .filter(|(id, _)| *id == d.id)
                        .map(|(_, why)| why.clone()),
                );
                d.keep = !d.reasons.is_empty();
                continue;
            }
            d.reasons.clear();
            d.reasons.extend(
                needed
                    .iter()
                    .filter(|(id, _)| *id == d.id)
                    .map(|(_, why)| why.clone()),
            );
            if let Some(r) = points
                .iter()
                .find(|(id, _)| *id == d.id)
                .and_then(|(_, p)| p.retention.as_ref())
                .filter(|r| r.retain_until > now)
                .filter(|r| !(bypass_governance && r.mode == crate::point::LockMode::Governance))
            {
                d.reasons
                    .push(format!("locked until {}", r.retain_until.to_rfc3339()));
            }
            d.keep = !d.reasons.is_empty();
        }
    }
    out
}

/// What [`forget`] did.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// One decision per point; a point that could not be deleted is kept,
    /// with the reason.
    pub decisions: Vec<Decision>,
    /// Points that were to be forgotten but could not be deleted, and why.
    pub not_deleted: Vec<(Id, String)>,
    /// Points judged by the storage's time rather than their own (stamped
    /// later than they were stored), and what was found.
    pub time_notes: TimeNotes,
}

/// Points whose time was corrected, each with a note saying why.
pub type TimeNotes = Vec<(Id, String)>;

/// How far a point's own time may be after the time its object was stored
/// (clock skew between the client and the storage) before the storage's time
/// is used instead.
pub const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Replaces each point's time by one the vault can trust: its own time, but
/// never later than when the storage says its object was written (`stored`,
/// from `Vault::point_times`). A client can stamp a point with any time; it
/// cannot choose an object's S3 `LastModified` (nor, through Lifeboat, a
/// file's mtime). Returns the points and a note per corrected point.
pub fn trusted_times(
    points: &[(Id, RecoveryPoint)],
    stored: &std::collections::HashMap<Id, DateTime<Utc>>,
) -> (Vec<(Id, RecoveryPoint)>, TimeNotes) {
    let mut notes = Vec::new();
    let out = points
        .iter()
        .map(|(id, p)| {
            let mut p = p.clone();
            if let Some(t) = stored.get(id)
                && p.time > *t + MAX_SKEW
            {
                notes.push((
                    *id,
                    format!(
                        "stamped {} but stored at {}: judged by the storage's time (a wrong clock or a forged point)",
                        p.time.to_rfc3339(),
                        t.to_rfc3339()
                    ),
                ));
                p.time = *t;
            }
            (*id, p)
        })
        .collect();
    (out, notes)
}

/// Decides with [`apply`] and deletes the points not kept (unless
/// `dry_run`). A point that cannot be deleted (a retention lock, a storage
/// failure) is reported in [`Outcome::not_deleted`]; the others still go.
/// "Now" is the storage's (`Vault::now`): when it cannot be had, nothing is
/// decided.
pub fn forget(
    vault: &crate::Vault,
    points: &[(Id, RecoveryPoint)],
    policy: &KeepPolicy,
    rules: &[&dyn DependentKind],
    dry_run: bool,
    override_lock: bool,
) -> crate::Result<Outcome> {
    let now = vault.now()?;
    let (points, time_notes) = trusted_times(points, &vault.point_times_or_none());
    let points = &points[..];
    let mut decisions = apply_with(points, policy, now, rules, override_lock);
    let mut not_deleted = Vec::new();
    if !dry_run {
        for d in decisions.iter_mut().filter(|d| !d.keep) {
            if let Err(e) = vault.remove_point(&d.id, override_lock) {
                d.keep = true;
                d.reasons.push(format!("not deleted: {e}"));
                not_deleted.push((d.id, e.to_string()));
            }
        }
    }
    Ok(Outcome {
        decisions,
        not_deleted,
        time_notes,
    })
}

/// Why the policy keeps each of `ps` (one group's points, newest first):
/// the `last`, bucket (hourly … yearly) and `within` rules that count it;
/// none for a point the policy lets go.
fn keep_reasons(
    ps: &[&(Id, RecoveryPoint)],
    policy: &KeepPolicy,
    now: DateTime<Utc>,
) -> Vec<Vec<String>> {
    type Bucket = fn(&DateTime<Utc>) -> i64;
    let rules: [(&str, u32, Bucket); 5] = [
        ("hourly", policy.hourly, |t| t.timestamp().div_euclid(3600)),
        ("daily", policy.daily, |t| t.num_days_from_ce() as i64),
        ("weekly", policy.weekly, |t| {
            let w = t.iso_week();
            w.year() as i64 * 100 + w.week() as i64
        }),
        ("monthly", policy.monthly, |t| {
            t.year() as i64 * 100 + t.month() as i64
        }),
        ("yearly", policy.yearly, |t| t.year() as i64),
    ];
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); ps.len()];
    for (i, r) in reasons.iter_mut().enumerate().take(policy.last as usize) {
        r.push(format!("last {}", i + 1));
    }
    for (name, n, bucket) in rules {
        if n == 0 {
            continue;
        }
        let mut last_bucket = None;
        let mut count = 0;
        for (i, p) in ps.iter().enumerate() {
            let b = bucket(&p.1.time);
            if last_bucket != Some(b) {
                last_bucket = Some(b);
                count += 1;
                if count > n {
                    break;
                }
                reasons[i].push(format!("{name} {count}"));
            }
        }
    }
    if policy.within_s > 0 {
        let since = now - chrono::Duration::seconds(policy.within_s);
        for (i, p) in ps.iter().enumerate() {
            if p.1.time >= since {
                reasons[i].push(format!(
                    "within {}",
                    crate::retention::format_duration(chrono::Duration::seconds(policy.within_s))
                ));
            }
        }
    }
    reasons
}

/// Decides, per resource and kind, which points the policy keeps and why
/// (points stamped in the future and locked points are kept too).
fn apply_policy(
    points: &[(Id, RecoveryPoint)],
    policy: &KeepPolicy,
    now: DateTime<Utc>,
    bypass_governance: bool,
) -> Vec<Decision> {
    let mut groups: BTreeMap<(&str, &str), Vec<&(Id, RecoveryPoint)>> = BTreeMap::new();
    for p in points {
        groups
            .entry((p.1.resource.as_str(), p.1.kind.as_str()))
            .or_default()
            .push(p);
    }
    let mut out = Vec::new();
    for (_, ps) in groups {
        // A point stamped in the future (beyond clock skew) takes no slot
        // of any rule: counted, it would stay "the newest" and push real
        // points out. It is kept, and named.
        let (future, mut ps): (Vec<_>, Vec<_>) =
            ps.into_iter().partition(|p| p.1.time > now + MAX_SKEW);
        for p in future {
            out.push(Decision {
                id: p.0,
                resource: p.1.resource.clone(),
                kind: p.1.kind.clone(),
                time: p.1.time,
                keep: true,
                reasons: vec!["stamped in the future: not counted by the policy".into()],
            });
        }
        ps.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.0.cmp(&a.0)));
        let reasons = keep_reasons(&ps, policy, now);
        for (p, mut why) in ps.into_iter().zip(reasons) {
            if let Some(r) = p
                .1
                .retention
                .as_ref()
                .filter(|r| r.retain_until > now)
                .filter(|r| !(bypass_governance && r.mode == crate::point::LockMode::Governance))
            {
                why.push(format!("locked until {}", r.retain_until.to_rfc3339()));
            }
            out.push(Decision {
                id: p.0,
                resource: p.1.resource.clone(),
                kind: p.1.kind.clone(),
                time: p.1.time,
                keep: !why.is_empty(),
                reasons: why,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};

    fn pt(resource: &str, t: DateTime<Utc>) -> (Id, RecoveryPoint) {
        let mut p = RecoveryPoint::new(resource, "files", Id::default());
        p.time = t;
        (Id::random(), p)
    }

    #[test]
    fn daily_and_last_select_expected_points() {
        let base = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        // Two points a day for five days.
        let mut points = Vec::new();
        for d in 0..5 {
            for h in [1, 5] {
                points.push(pt(
                    "r",
                    base - chrono::Duration::days(d) + chrono::Duration::hours(h),
                ));
            }
        }
        let policy = KeepPolicy {
            last: 1,
            daily: 3,
            ..Default::default()
        };
        let ds = apply(&points, &policy, base + chrono::Duration::hours(6), &[]);
        let kept: Vec<_> = ds.iter().filter(|d| d.keep).collect();
        // last 1 and daily 1 are the same point; daily 2 and 3 are the newest of the two days before.
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().all(|d| d.time.hour() == 17));
        assert_eq!(ds.iter().filter(|d| !d.keep).count(), 7);
    }

    #[test]
    fn kinds_of_one_resource_are_kept_separately() {
        let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        let mut points = Vec::new();
        for (i, kind) in ["mysql", "mysql-binlog", "mysql-binlog", "mysql"]
            .iter()
            .enumerate()
        {
            let mut p = pt("db", now - chrono::Duration::hours(i as i64));
            p.1.kind = kind.to_string();
            points.push(p);
        }
        let ds = apply(
            &points,
            &KeepPolicy {
                last: 1,
                ..Default::default()
            },
            now,
            &[],
        );
        let kept: Vec<_> = ds
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.kind.as_str())
            .collect();
        assert_eq!(kept.len(), 2, "one of each kind: {kept:?}");
        assert!(kept.contains(&"mysql") && kept.contains(&"mysql-binlog"));
    }

    #[test]
    fn locked_points_are_always_kept_and_groups_are_separate() {
        let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        let mut a = pt("a", now - chrono::Duration::days(3));
        a.1.retention = Some(crate::point::Retention {
            retain_until: now + chrono::Duration::days(1),
            mode: crate::point::LockMode::Compliance,
        });
        let b = pt("a", now - chrono::Duration::days(1));
        let c = pt("b", now - chrono::Duration::days(2));
        let ds = apply(
            &[a.clone(), b.clone(), c.clone()],
            &KeepPolicy {
                last: 1,
                ..Default::default()
            },
            now,
            &[],
        );
        let keep = |id: Id| ds.iter().find(|d| d.id == id).unwrap().keep;
        assert!(keep(a.0), "locked");
        assert!(keep(b.0), "newest of a");
        assert!(keep(c.0), "newest of b");
    }

    #[test]
    fn future_points_take_no_slot_and_keep_within_counts_from_now() {
        let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        let real = pt("r", now - chrono::Duration::hours(1));
        let old = pt("r", now - chrono::Duration::days(40));
        let future = pt("r", now + chrono::Duration::days(365));
        let points = [real.clone(), old.clone(), future.clone()];
        let last1 = KeepPolicy {
            last: 1,
            ..Default::default()
        };
        let ds = apply(&points, &last1, now, &[]);
        let keep = |ds: &[Decision], id: Id| ds.iter().find(|d| d.id == id).unwrap().keep;
        assert!(keep(&ds, real.0), "the newest real point keeps its slot");
        assert!(keep(&ds, future.0), "kept, but named");
        assert!(!keep(&ds, old.0));
        let within = KeepPolicy {
            within_s: 30 * 86_400,
            ..Default::default()
        };
        let ds = apply(&points, &within, now, &[]);
        assert!(keep(&ds, real.0) && !keep(&ds, old.0));
    }

    /// A rule adding to the policy (the base of a kept "inc" point), then
    /// a rule alone deciding its kind ("log": kept for the oldest kept
    /// "inc"-kind point) that sees what the first one added.
    #[test]
    fn a_rule_may_add_to_the_policy_before_another_counts_it() {
        struct Bases;
        impl DependentKind for Bases {
            fn kind(&self) -> &str {
                "inc"
            }
            fn policy_too(&self) -> bool {
                true
            }
            fn needed(
                &self,
                ps: &[(Id, RecoveryPoint)],
                kept: &dyn Fn(&Id) -> bool,
            ) -> Vec<(Id, String)> {
                // Each point's base is the one before it (the oldest is full).
                let inc: Vec<_> = ps.iter().filter(|p| p.1.kind == "inc").collect();
                let newest_kept = inc.iter().rposition(|p| kept(&p.0));
                inc[..newest_kept.unwrap_or(0)]
                    .iter()
                    .map(|p| (p.0, "base".to_string()))
                    .collect()
            }
        }
        struct Logs;
        impl DependentKind for Logs {
            fn kind(&self) -> &str {
                "log"
            }
            fn needed(
                &self,
                ps: &[(Id, RecoveryPoint)],
                kept: &dyn Fn(&Id) -> bool,
            ) -> Vec<(Id, String)> {
                let oldest = ps
                    .iter()
                    .filter(|p| p.1.kind == "inc" && kept(&p.0))
                    .map(|p| p.1.time)
                    .min();
                ps.iter()
                    .filter(|p| p.1.kind == "log" && oldest.is_some_and(|t| p.1.time >= t))
                    .map(|p| (p.0, "log".to_string()))
                    .collect()
            }
        }
        let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        let at = |h: i64, kind: &str| {
            let mut p = pt("db", now - chrono::Duration::hours(h));
            p.1.kind = kind.into();
            p
        };
        let points = [
            at(5, "log"),
            at(4, "inc"),
            at(3, "log"),
            at(2, "inc"),
            at(1, "inc"),
        ];
        let last1 = KeepPolicy {
            last: 1,
            ..Default::default()
        };
        let ds = apply(&points, &last1, now, &[&Bases, &Logs]);
        let keep = |i: usize| ds.iter().find(|d| d.id == points[i].0).unwrap().keep;
        assert!(
            keep(1) && keep(3) && keep(4),
            "the chain stays whole: {ds:?}"
        );
        assert!(
            !keep(0) && keep(2),
            "the log from the oldest kept link on: {ds:?}"
        );
    }
}
