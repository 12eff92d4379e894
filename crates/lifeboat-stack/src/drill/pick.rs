//! The moment a drill's `random-within` pick recovers to.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_config::Config;

use crate::{Result, StackError};

fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    lifeboat_vault::crypto::fill_random(&mut b);
    if n == 0 { 0 } else { u64::from_le_bytes(b) % n }
}

/// The time a `random-within` pick recovers to: a random second within the
/// last `within` that the site's databases can be restored to (their
/// restorable windows); without a database, a random point time. Never
/// before every other member has a point (a member with none at the
/// moment picked could not be recovered to it).
pub(super) fn pick_time(
    cfg: &Config,
    stack: &str,
    site: &str,
    within: Duration,
) -> Result<DateTime<Utc>> {
    let now = Utc::now();
    // However far back it is asked (a typo of many 9s), never an overflow.
    let from = chrono::Duration::from_std(within)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let s = &cfg.stacks[stack];
    let vaults: Vec<(String, lifeboat_vault::Vault)> = cfg
        .vaults
        .iter()
        .filter(|(_, v)| v.site.as_deref() == Some(site))
        .filter_map(|(n, _)| {
            lifeboat_control::secret::open_vault(cfg, n)
                .ok()
                .map(|v| (n.clone(), v))
        })
        .collect();
    let is_database = |m: &String| {
        matches!(
            cfg.resources.get(m).map(|r| &r.kind),
            Some(lifeboat_config::ResourceKind::Mysql { .. })
        )
    };
    let points: Vec<lifeboat_vault::RecoveryPoint> = vaults
        .iter()
        .filter_map(|(_, v)| v.list_points_trusted().ok())
        .flat_map(|points| points.into_iter().map(|(_, p)| p))
        .filter(|p| s.members.contains(&p.resource))
        .collect();
    // The first moment at which every other member has a point.
    let floor = s
        .members
        .iter()
        .filter(|m| !is_database(m))
        .filter_map(|m| {
            points
                .iter()
                .filter(|p| &p.resource == m)
                .map(|p| p.time)
                .min()
        })
        .max();
    let from = floor.map_or(from, |f| f.max(from));
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for m in s.members.iter().filter(|m| is_database(m)) {
        for (_, v) in &vaults {
            if let Ok(c) = lifeboat_mysql::Catalog::load(v, m) {
                spans.extend(
                    c.windows()
                        .iter()
                        .map(|w| (w.from.max(from), w.to))
                        .filter(|(a, b)| a <= b),
                );
            }
        }
    }
    if spans.is_empty() {
        spans.extend(
            points
                .iter()
                .filter(|p| p.time >= from)
                .map(|p| (p.time, p.time)),
        );
    }
    if spans.is_empty() {
        return Err(StackError::Refused(format!(
            "nothing of stack `{stack}` in site `{site}` is restorable within the last {} s: no drill can pick from it",
            within.as_secs()
        )));
    }
    let total: i64 = spans
        .iter()
        .map(|(a, b)| (*b - *a).num_milliseconds() + 1)
        .sum();
    let mut r = random_below(total as u64) as i64;
    for (a, b) in &spans {
        let len = (*b - *a).num_milliseconds() + 1;
        if r < len {
            return Ok(*a + chrono::Duration::milliseconds(r));
        }
        r -= len;
    }
    Ok(spans[0].1)
}
