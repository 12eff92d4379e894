//! Drill and recovery reports kept in the vaults they used (format spec
//! §17, `control/reports/`): the site that recovered keeps the proof with
//! the data. After the primary's loss, `report` on the secondary — whose
//! local job history never saw the drills the primary's daemon ran — reads
//! the newest drill of each stack from the vaults and does not say "never
//! drilled".

use chrono::{DateTime, Utc};
use lifeboat_config::Config;
use lifeboat_vault::Vault;
use serde::{Deserialize, Serialize};

/// Associated data of a sealed report object.
pub const REPORT_AAD: &[u8] = b"lifeboat:control-report";
/// Where sealed reports live in a vault.
pub const REPORTS_PREFIX: &str = "control/reports/";

/// The plaintext of a kept report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptReport {
    /// `drill` or `recover`.
    pub kind: String,
    /// The stack.
    pub stack: String,
    /// The site whose vaults it used.
    pub site: String,
    /// When it was kept.
    pub kept_at: DateTime<Utc>,
    /// The host that ran it.
    pub host: String,
    /// Its job in that host's history, when it was recorded there.
    #[serde(default)]
    pub job: Option<i64>,
    /// The whole report (a drill's or a recovery's, as `--json` prints it).
    pub report: serde_json::Value,
}

fn open_site_vaults(cfg: &Config, site: &str) -> Vec<(String, Result<Vault, String>)> {
    cfg.vaults
        .iter()
        .filter(|(_, v)| v.site.as_deref() == Some(site))
        .map(|(n, _)| {
            (
                n.clone(),
                lifeboat_control::secret::open_vault(cfg, n).map_err(|e| e.to_string()),
            )
        })
        .collect()
}

/// Keeps `report` (of `kind`, `drill` or `recover`) in every vault of
/// `site`. Returns the vaults it was kept in and, per vault it could not be
/// kept in, why (a warning: the report is in the local history anyway).
pub fn keep(
    cfg: &Config,
    site: &str,
    kind: &str,
    stack: &str,
    job: Option<i64>,
    report: &serde_json::Value,
) -> (Vec<String>, Vec<String>) {
    let kept = KeptReport {
        kind: kind.into(),
        stack: stack.into(),
        site: site.into(),
        kept_at: Utc::now(),
        host: lifeboat_vault::host_name(),
        job,
        report: report.clone(),
    };
    let json = serde_json::to_vec(&kept).expect("json");
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for (name, v) in open_site_vaults(cfg, site) {
        let r = v.and_then(|v| {
            let mut rnd = [0u8; 4];
            lifeboat_vault::crypto::fill_random(&mut rnd);
            let path = format!(
                "{REPORTS_PREFIX}{}-{}",
                kept.kept_at.format("%Y%m%dT%H%M%S%.6fZ"),
                rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            v.storage()
                .write(&path, v.key().seal(REPORT_AAD, &json))
                .map_err(|e| e.to_string())
        });
        match r {
            Ok(()) => ok.push(name),
            Err(e) => failed.push(format!(
                "the {kind} report of stack `{stack}` was not kept in vault `{name}`: {e}"
            )),
        }
    }
    (ok, failed)
}

/// The newest kept report of `kind` for `stack` in `v`.
fn newest_in(v: &Vault, kind: &str, stack: &str) -> Option<KeptReport> {
    let mut listed = v.storage().list(REPORTS_PREFIX).ok()?;
    listed.sort_by(|a, b| b.path.cmp(&a.path));
    listed.into_iter().find_map(|l| {
        let sealed = v.storage().read(&l.path).ok()?;
        let json = v.key().open(REPORT_AAD, &sealed, &l.path).ok()?;
        serde_json::from_slice::<KeptReport>(&json)
            .ok()
            .filter(|k| k.kind == kind && k.stack == stack)
    })
}

/// The newest drill report of `stack` kept in any vault of the file, with
/// the vault's name (vaults that cannot be opened or read are passed over).
pub fn newest_drill(cfg: &Config, stack: &str) -> Option<(String, KeptReport)> {
    let mut best: Option<(String, KeptReport)> = None;
    for name in cfg.vaults.keys() {
        let Ok(v) = lifeboat_control::secret::open_vault(cfg, name) else {
            continue;
        };
        if let Some(k) = newest_in(&v, "drill", stack)
            && best.as_ref().is_none_or(|b| k.kept_at > b.1.kept_at)
        {
            best = Some((name.clone(), k));
        }
    }
    best
}

/// [`crate::drill::verification`], with the drills kept in the vaults: a
/// stack whose newest drill is one this host's history does not hold (none,
/// or an older one) is judged by the newest drill report kept in a vault.
pub fn verification(
    cfg: &Config,
    store: &dyn lifeboat_control::store::JobStore,
) -> crate::Result<Vec<crate::drill::StackVerification>> {
    let mut out = crate::drill::verification(cfg, store)?;
    let host = lifeboat_vault::host_name();
    for v in &mut out {
        let Some((vault, k)) = newest_drill(cfg, &v.stack) else {
            continue;
        };
        let same = |(id, _): &(i64, DateTime<Utc>)| k.host == host && k.job == Some(*id);
        let newer = |(_, at): &(i64, DateTime<Utc>)| k.kept_at > *at;
        if v.last_drill.as_ref().is_some_and(|l| same(l) || !newer(l)) {
            continue;
        }
        let Ok(r) = serde_json::from_value::<crate::drill::DrillReport>(k.report.clone()) else {
            continue;
        };
        let Some(s) = cfg.stacks.get(&v.stack) else {
            continue;
        };
        let summary = r.summary();
        v.failed = crate::drill::judge(cfg, &v.stack, s, Some(&summary), None);
        v.compliant = v.failed.is_empty();
        v.summary = Some(summary);
        v.last_drill = None;
        v.kept = Some(crate::drill::KeptDrill {
            vault,
            at: k.kept_at,
            host: k.host,
        });
    }
    Ok(out)
}
