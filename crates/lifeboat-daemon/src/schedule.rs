//! When each plan runs next, and which runs were missed while the daemon
//! was down.
//!
//! A run is *missed* when the newest scheduled time at or before now is
//! later than the last run of that plan in the job store — or, when the
//! store holds no run of the plan (it was deleted: the vaults are the
//! truth), later than the newest point of one of the plan's resources in
//! the plan's vault. It is caught up once, at start, if now is still inside
//! the plan's `window` after that time (unset: until the next scheduled time).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lifeboat_config::{Config, Schedule};
use lifeboat_control::store::{JobFilter, JobStore, status};

use crate::Store;

/// The next time of every plan and of retention.
#[derive(Debug, Default)]
pub struct Timetable {
    plans: BTreeMap<String, (Schedule, Option<DateTime<Utc>>)>,
    retention: Option<(Schedule, Option<DateTime<Utc>>)>,
    drills: BTreeMap<String, (Schedule, Option<DateTime<Utc>>)>,
}

impl Timetable {
    /// Every plan's first time after `now`.
    pub fn new(cfg: &Config, now: DateTime<Utc>) -> Timetable {
        let mut t = Timetable::default();
        t.update(cfg, now);
        t
    }

    /// After a reload: plans whose schedule is unchanged keep their next
    /// time; new or changed ones get their first time after `now`; removed
    /// ones go.
    pub fn update(&mut self, cfg: &Config, now: DateTime<Utc>) {
        let mut plans = BTreeMap::new();
        for (name, s) in crate::plan_schedules(cfg) {
            let next = match self.plans.remove(&name) {
                Some((old, next)) if old == s => next,
                _ => s.next_after(now),
            };
            plans.insert(name, (s, next));
        }
        self.plans = plans;
        let mut drills = BTreeMap::new();
        for (name, d) in &cfg.drills {
            let Some(s) = d.schedule.clone() else {
                continue;
            };
            let next = match self.drills.remove(name) {
                Some((old, next)) if old == s => next,
                _ => s.next_after(now),
            };
            drills.insert(name.clone(), (s, next));
        }
        self.drills = drills;
        let rs = cfg.daemon.retention_schedule.clone();
        self.retention = Some(match self.retention.take() {
            Some((old, next)) if old == rs => (old, next),
            _ => {
                let next = rs.next_after(now);
                (rs, next)
            }
        });
    }

    /// Plans whose time has come (each then moves to its next time).
    pub fn due_plans(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut due = Vec::new();
        for (name, (s, next)) in self.plans.iter_mut() {
            if let Some(t) = *next
                && t <= now
            {
                due.push(name.clone());
                *next = s.next_after(now.max(t));
            }
        }
        due
    }

    /// Drills whose time has come (each then moves to its next time).
    pub fn due_drills(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut due = Vec::new();
        for (name, (s, next)) in self.drills.iter_mut() {
            if let Some(t) = *next
                && t <= now
            {
                due.push(name.clone());
                *next = s.next_after(now.max(t));
            }
        }
        due
    }

    /// Whether retention's time has come (it then moves to its next time).
    pub fn retention_due(&mut self, now: DateTime<Utc>) -> bool {
        match &mut self.retention {
            Some((s, next)) if next.is_some_and(|t| t <= now) => {
                *next = s.next_after(now);
                true
            }
            _ => false,
        }
    }

    /// The earliest next time.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.plans
            .values()
            .filter_map(|(_, n)| *n)
            .chain(self.retention.as_ref().and_then(|(_, n)| *n))
            .chain(self.drills.values().filter_map(|(_, n)| *n))
            .min()
    }
}

/// Plans whose newest scheduled time was missed and is still inside their
/// window, with why (for the log).
pub fn missed_runs(cfg: &Config, store: &Store, now: DateTime<Utc>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, p) in &cfg.plans {
        let Some(prev) = p.schedule.previous_at_or_before(now) else {
            continue;
        };
        let window = match p.window {
            Some(w) => chrono::Duration::seconds(w.0 as i64),
            None => match p.schedule.next_after(prev) {
                Some(n) => n - prev,
                None => continue,
            },
        };
        if now - prev > window {
            continue; // outside the window: the next scheduled run will do
        }
        let last_run = {
            let s = store.lock().unwrap_or_else(|e| e.into_inner());
            s.list(&JobFilter {
                plan: Some(name.clone()),
                limit: Some(50),
                ..JobFilter::default()
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|j| j.kind == "backup" && j.status != status::SKIPPED)
            .map(|j| j.started)
            .max()
        };
        let why = match last_run {
            Some(t) if t >= prev => continue,
            Some(t) => format!(
                "the run due at {} was missed (the last run started at {})",
                prev.to_rfc3339(),
                t.to_rfc3339()
            ),
            // No history (a new or deleted store): the vault says.
            None => match newest_points(cfg, name) {
                Ok(newest) if newest.iter().all(|(_, t)| t.is_some_and(|t| t >= prev)) => continue,
                Ok(newest) => format!(
                    "the run due at {} was missed (no run in the job history; in vault `{}` the newest point of {} is older)",
                    prev.to_rfc3339(),
                    p.vault,
                    newest
                        .iter()
                        .filter(|(_, t)| t.is_none_or(|t| t < prev))
                        .map(|(r, _)| format!("`{r}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(e) => format!(
                    "the run due at {} may have been missed (no run in the job history, and the vault cannot be read: {e})",
                    prev.to_rfc3339()
                ),
            },
        };
        out.push((name.clone(), why));
    }
    out
}

/// A resource and the time of its newest point.
type Newest = (String, Option<DateTime<Utc>>);

/// The newest point time of each of plan `plan`'s resources in its vault
/// (under a reader lock).
fn newest_points(cfg: &Config, plan: &str) -> Result<Vec<Newest>, String> {
    let p = &cfg.plans[plan];
    let v = lifeboat_control::secret::open_vault(cfg, &p.vault).map_err(|e| e.to_string())?;
    let _reader =
        lifeboat_vault::lock::reader_lock(v.storage(), "daemon").map_err(|e| e.to_string())?;
    let points = v.list_points_trusted().map_err(|e| e.to_string())?;
    Ok(p.resources
        .iter()
        .map(|r| {
            let t = points
                .iter()
                .filter(|(_, x)| &x.resource == r && x.kind != "mysql-binlog")
                .map(|(_, x)| x.time)
                .max();
            (r.clone(), t)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        lifeboat_config::parse(
            "x.toml",
            &format!(
                "vault.main.location = \"/nonexistent/v\"\nresource.etc.paths = [\"/etc\"]\n[plan.p]\nresources = [\"etc\"]\nvault = \"main\"\n{extra}"
            ),
        )
        .unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn plans_come_due_once_at_their_time_and_reload_keeps_unchanged_times() {
        let c = cfg("schedule = \"0 * * * *\"");
        let mut tt = Timetable::new(&c, t("2026-01-01T10:20:00Z"));
        assert_eq!(tt.next_wake(), Some(t("2026-01-01T11:00:00Z")));
        assert!(tt.due_plans(t("2026-01-01T10:59:59Z")).is_empty());
        assert_eq!(tt.due_plans(t("2026-01-01T11:00:00.3Z")), ["p"]);
        assert!(tt.due_plans(t("2026-01-01T11:00:01Z")).is_empty());
        assert_eq!(tt.next_wake(), Some(t("2026-01-01T12:00:00Z")));
        tt.update(&c, t("2026-01-01T11:30:00Z"));
        assert_eq!(tt.next_wake(), Some(t("2026-01-01T12:00:00Z")));
        let c2 = cfg("schedule = \"45 * * * *\"");
        tt.update(&c2, t("2026-01-01T11:30:00Z"));
        assert_eq!(tt.next_wake(), Some(t("2026-01-01T11:45:00Z")));
    }

    fn store_with(started: Option<&str>) -> (tempfile::TempDir, Store) {
        use lifeboat_control::store::{JobEnd, NewJob, SqliteStore};
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("jobs.sqlite")).unwrap();
        if let Some(_at) = started {
            let id = s
                .start(&NewJob {
                    kind: "backup".into(),
                    resource: Some("etc".into()),
                    plan: Some("p".into()),
                    trigger: "schedule".into(),
                    vault: Some("main".into()),
                })
                .unwrap();
            s.finish(
                id,
                &JobEnd {
                    status: status::SUCCEEDED.into(),
                    ..JobEnd::default()
                },
            )
            .unwrap();
        }
        (d, std::sync::Arc::new(std::sync::Mutex::new(s)))
    }

    #[test]
    fn a_missed_run_is_caught_up_inside_its_window_only() {
        // A run recorded now; the schedule's newest time was an hour ago → not missed.
        let (_d, s) = store_with(Some("now"));
        let now = Utc::now();
        let c = cfg("schedule = \"0 0 * * *\"");
        assert!(missed_runs(&c, &s, now).is_empty());
        // The run "now" is older than a time one second in the future: missed,
        // inside the default window (until the next day's run).
        let later = now + chrono::Duration::days(1);
        let m = missed_runs(&c, &s, later);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].1.contains("was missed (the last run started at"),
            "{m:?}"
        );
        // Outside a declared window of one minute (unless the day turned within it).
        let c = cfg("schedule = \"0 0 * * *\"\nwindow = \"1m\"");
        let prev = c.plans["p"].schedule.previous_at_or_before(later).unwrap();
        if later - prev > chrono::Duration::minutes(1) {
            assert!(missed_runs(&c, &s, later).is_empty());
        }
        // No history and an unreadable vault: caught up, saying why.
        let (_d2, empty) = store_with(None);
        let c = cfg("schedule = \"0 0 * * *\"");
        let m = missed_runs(&c, &empty, now);
        assert_eq!(m.len(), 1);
        assert!(m[0].1.contains("the vault cannot be read"), "{m:?}");
    }
}
