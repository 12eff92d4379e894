//! Compliance (`lifeboat report`) and drift (`lifeboat plan --drift`),
//! computed from the file and the vaults (the truth), not from the history.
//!
//! Per resource, controls: `in-plan`; `rpo:PLAN` (the newest point's age
//! against the plan's schedule: the longest gap between runs plus the start
//! window); `copy:PLAN:VAULT` (a copy of the resource in each copy target,
//! as recent); `lock:VAULT` (a vault that declares a lock: the newest point
//! carries one at least as strong; earliest unlock shown); `archive` (a
//! database's binlog archive: the newest archived segment's age);
//! `restorable-window` (a database: the windows a restore can reach).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use lifeboat_config::{Config, LockMode, ResourceKind};
use lifeboat_vault::RecoveryPoint;
use serde::Serialize;

/// The archive may lag this much before the control fails.
pub const ARCHIVE_LAG_LIMIT_S: i64 = 60;

/// One control of one resource.
#[derive(Debug, Clone, Serialize)]
pub struct Control {
    /// `in-plan`, `rpo:PLAN`, `copy:PLAN:VAULT`, `lock:VAULT`, `archive`.
    pub name: String,
    /// Met.
    pub ok: bool,
    /// The measurement, or why it failed.
    pub detail: String,
}

/// One resource's controls.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceReport {
    /// The resource.
    pub resource: String,
    /// Its kind.
    pub kind: String,
    /// The plans that hold it.
    pub plans: Vec<String>,
    /// Its newest point's age in seconds (any plan vault), if any.
    pub newest_age_s: Option<i64>,
    /// Every control.
    pub controls: Vec<Control>,
    /// All controls met.
    pub compliant: bool,
}

/// Points of every vault the report needs, read once (under a reader lock).
struct Points<'o> {
    open: &'o Opener<'o>,
    by_vault: BTreeMap<String, std::result::Result<Vec<RecoveryPoint>, String>>,
}

impl Points<'_> {
    fn of(&mut self, vault: &str) -> std::result::Result<&Vec<RecoveryPoint>, String> {
        self.by_vault
            .entry(vault.to_string())
            .or_insert_with(|| {
                let v = (self.open)(vault)?;
                let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "report")
                    .map_err(|e| e.to_string())?;
                let points = v.list_points_trusted().map_err(|e| e.to_string())?;
                Ok(points.into_iter().map(|(_, p)| p).collect())
            })
            .as_ref()
            .map_err(|e| format!("cannot read vault `{vault}`: {e}"))
    }
}

fn newest<'a>(
    points: &'a [RecoveryPoint],
    resource: &str,
    binlog: bool,
) -> Option<&'a RecoveryPoint> {
    points
        .iter()
        .filter(|p| p.resource == resource && (p.kind == "mysql-binlog") == binlog)
        .max_by_key(|p| p.time)
}

fn age(d: Duration) -> String {
    lifeboat_config::Dur(d.num_seconds().max(1) as u64).to_string()
}

/// How the report opens a vault by name (the REST API passes its opened vaults).
pub type Opener<'a> = dyn Fn(&str) -> std::result::Result<lifeboat_vault::Vault, String> + 'a;

/// Every resource's controls, at `now`.
pub fn report(cfg: &Config, now: DateTime<Utc>) -> Vec<ResourceReport> {
    report_with(cfg, now, &|name: &str| {
        crate::secret::open_vault(cfg, name).map_err(|e| e.to_string())
    })
}

/// [`report`], opening vaults with `open` (a caller that keeps vaults open
/// saves deriving each vault's key again).
pub fn report_with(cfg: &Config, now: DateTime<Utc>, open: &Opener<'_>) -> Vec<ResourceReport> {
    let mut pts = Points {
        open,
        by_vault: BTreeMap::new(),
    };
    let mut out = Vec::new();
    for (name, r) in &cfg.resources {
        let plans: Vec<String> = cfg.plans_of(name).into_iter().map(String::from).collect();
        let mut controls = vec![in_plan(&plans)];
        let mut newest_age = None;
        for pn in &plans {
            let check = Freshness::of_plan(cfg, now, name, pn);
            if let Some(a) = check.plan_and_copies(&mut pts, &mut controls) {
                newest_age = Some(newest_age.map_or(a, |b: i64| b.min(a)));
            }
        }
        // A binlog archive that names its vault: how far behind it is.
        let archives = crate::protectors::follows(cfg, name, std::path::Path::new("spool"));
        for vault in archives
            .iter()
            .filter(|f| f.follow.job == crate::protectors::ARCHIVE)
            .filter_map(|f| f.follow.vault.as_deref())
        {
            controls.push(archive_lag(&mut pts, name, vault, now));
        }
        if let ResourceKind::Mysql { .. } = &r.kind
            && let Some(pn) = plans.first()
        {
            controls.push(restorable_window(open, &cfg.plans[pn].vault, name));
        }
        controls.dedup_by(|a, b| a.name == b.name && a.detail == b.detail);
        let compliant = controls.iter().all(|c| c.ok);
        out.push(ResourceReport {
            resource: name.clone(),
            kind: r.kind.name().into(),
            plans,
            newest_age_s: newest_age,
            controls,
            compliant,
        });
    }
    out
}

/// The resource is in some plan.
fn in_plan(plans: &[String]) -> Control {
    Control {
        name: "in-plan".into(),
        ok: !plans.is_empty(),
        detail: if plans.is_empty() {
            "in no plan: nothing backs it up".into()
        } else {
            plans.join(", ")
        },
    }
}

/// How fresh a resource's points of one plan must be: its newest point in
/// each vault the plan writes no older than the schedule allows.
struct Freshness<'c> {
    cfg: &'c Config,
    now: DateTime<Utc>,
    resource: &'c str,
    plan: &'c str,
    /// The time between runs plus the window (or twice the time between runs).
    allowed: Duration,
}

impl<'c> Freshness<'c> {
    /// The freshness plan `pn` asks of `resource` at `now`.
    fn of_plan(cfg: &'c Config, now: DateTime<Utc>, resource: &'c str, pn: &'c str) -> Self {
        let p = &cfg.plans[pn];
        let every = p.schedule.max_interval(now).unwrap_or(Duration::days(1));
        let allowed = every
            + p.window
                .map(|w| Duration::seconds(w.0 as i64))
                .unwrap_or(every);
        Freshness {
            cfg,
            now,
            resource,
            plan: pn,
            allowed,
        }
    }

    /// The plan's vault (`rpo:PLAN`) and each copy's (`copy:PLAN:VAULT`);
    /// the age in seconds of the newest point in the plan's vault.
    fn plan_and_copies(&self, pts: &mut Points, controls: &mut Vec<Control>) -> Option<i64> {
        let p = &self.cfg.plans[self.plan];
        let pn = self.plan;
        let age = self.in_vault(pts, &p.vault, format!("rpo:{pn}"), "point", controls);
        for c in &p.copy {
            let cname = format!("copy:{pn}:{}", c.vault);
            self.in_vault(pts, &c.vault, cname, "copy", controls);
        }
        age
    }

    /// The control `cname` of the newest `what` in `vault` (and its lock's);
    /// that point's age in seconds.
    fn in_vault(
        &self,
        pts: &mut Points,
        vault: &str,
        cname: String,
        what: &str,
        controls: &mut Vec<Control>,
    ) -> Option<i64> {
        let list = match pts.of(vault) {
            Err(e) => {
                controls.push(Control {
                    name: cname,
                    ok: false,
                    detail: e,
                });
                return None;
            }
            Ok(list) => list,
        };
        let Some(np) = newest(list, self.resource, false) else {
            controls.push(Control {
                name: cname,
                ok: false,
                detail: format!("no {what} in vault `{vault}`"),
            });
            return None;
        };
        let a = self.now - np.time;
        controls.push(Control {
            name: cname,
            ok: a <= self.allowed,
            detail: format!(
                "newest {what} is {} old (the schedule allows {})",
                age(a),
                age(self.allowed)
            ),
        });
        lock_control(self.cfg, vault, np, self.now, controls);
        Some(a.num_seconds())
    }
}

/// A database's binlog archive is no further behind than the limit.
fn archive_lag(pts: &mut Points, name: &str, vault: &str, now: DateTime<Utc>) -> Control {
    match pts.of(vault) {
        Err(e) => Control {
            name: "archive".into(),
            ok: false,
            detail: e,
        },
        Ok(list) => match newest(list, name, true) {
            None => Control {
                name: "archive".into(),
                ok: false,
                detail: format!(
                    "no archived binlog in vault `{vault}`: is `lifeboat archive mysql` running?"
                ),
            },
            Some(np) => {
                let lag = now - np.time;
                Control {
                    name: "archive".into(),
                    ok: lag.num_seconds() <= ARCHIVE_LAG_LIMIT_S,
                    detail: format!("archive lag {} (limit {ARCHIVE_LAG_LIMIT_S}s)", age(lag)),
                }
            }
        },
    }
}

/// A database's restorable windows in its plan's vault (snapshots joined by
/// contiguous archived binlog): met when there is at least one.
fn restorable_window(open: &Opener<'_>, vault: &str, resource: &str) -> Control {
    let name = "restorable-window".to_string();
    let windows = open(vault)
        .and_then(|v| {
            let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "report")
                .map_err(|e| e.to_string())?;
            lifeboat_mysql::Catalog::load(&v, resource).map_err(|e| e.to_string())
        })
        .map(|c| c.windows());
    match windows {
        Err(e) => Control {
            name,
            ok: false,
            detail: format!("cannot read vault `{vault}`: {e}"),
        },
        Ok(w) if w.is_empty() => Control {
            name,
            ok: false,
            detail: format!("nothing restorable in vault `{vault}`"),
        },
        Ok(w) => {
            let last = w.last().expect("non-empty");
            Control {
                name,
                ok: true,
                detail: format!(
                    "{} window(s); the newest from {} to {}",
                    w.len(),
                    last.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    last.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            }
        }
    }
}

/// A vault that declares a lock: is the newest point locked at least as strongly?
fn lock_control(
    cfg: &Config,
    vault: &str,
    p: &RecoveryPoint,
    now: DateTime<Utc>,
    controls: &mut Vec<Control>,
) {
    let Some(want) = cfg.vaults.get(vault).and_then(|v| v.lock.as_ref()) else {
        return;
    };
    let name = format!("lock:{vault}");
    let c = match &p.retention {
        None => Control { name, ok: false, detail: format!("vault `{vault}` declares a {:?} lock but its newest point of this resource carries none", want.mode).to_lowercase() },
        Some(r) => {
            let strong = !matches!(
                (want.mode, r.mode),
                (LockMode::Compliance, lifeboat_vault::LockMode::Governance)
            );
            let min_ok = want.min_retention.is_none_or(|m| r.retain_until >= p.time + Duration::seconds(m.0 as i64));
            Control {
                name,
                ok: strong && min_ok && r.retain_until > now,
                detail: format!("{:?} lock until {}{}", r.mode, r.retain_until.to_rfc3339(), if strong && min_ok { "" } else { " (weaker than declared)" }),
            }
        }
    };
    controls.push(c);
}
