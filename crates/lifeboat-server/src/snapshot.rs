//! Vault reads shared by the routes: opened vaults (a vault's key is
//! derived once, not per request) and a few seconds' cache of what
//! `/resources`, `/report` and `/metrics` read (the compliance report and
//! every vault's points), so a 15 s scrape does not re-read the vaults.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lifeboat_config::{Config, VaultSpec};
use lifeboat_control::report::ResourceReport;
use lifeboat_vault::{Id, RecoveryPoint, Vault};

use crate::ApiError;

/// How long a snapshot of the vaults is served before it is read again.
pub const TTL: Duration = Duration::from_secs(5);

/// Vaults opened by name, reopened when the file changes them.
#[derive(Default)]
pub struct Vaults(Mutex<HashMap<String, (VaultSpec, Arc<Vault>)>>);

impl Vaults {
    /// Vault `name` of `cfg`: 404 when the file has none, 503 when it cannot be opened.
    pub fn open(&self, cfg: &Config, name: &str) -> Result<Arc<Vault>, ApiError> {
        let spec = cfg.vaults.get(name).ok_or_else(|| {
            ApiError::not_found(format!(
                "there is no vault `{name}` in the file (vaults: {})",
                cfg.vaults.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let mut m = self.0.lock().expect("vaults");
        if let Some((s, v)) = m.get(name)
            && s == spec
        {
            return Ok(v.clone());
        }
        let v = Arc::new(
            lifeboat_control::secret::open_vault(cfg, name).map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot open vault `{name}`: {e}"),
                )
            })?,
        );
        m.insert(name.to_string(), (spec.clone(), v.clone()));
        Ok(v)
    }

    /// Every point of vault `name`, under a reader lock.
    pub fn points(&self, cfg: &Config, name: &str) -> Result<Vec<(Id, RecoveryPoint)>, ApiError> {
        let v = self.open(cfg, name)?;
        let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "api").map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("vault `{name}`: {e}"),
            )
        })?;
        let (points, _damaged) = v.list_points().map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot list the points of vault `{name}`: {e}"),
            )
        })?;
        Ok(points)
    }
}

/// How long a vault's figures (`/vaults`: its statistics and lock, which
/// read its whole index) are served before they are read again.
pub const STATS_TTL: Duration = Duration::from_secs(60);

/// Each vault's figures when last read, by name (read again when older
/// than [`STATS_TTL`] or when the file changed the vault; failures are not
/// kept, so a vault that comes back is read at once).
#[derive(Default)]
pub struct VaultFigures(Mutex<HashMap<String, (Instant, VaultSpec, serde_json::Value)>>);

impl VaultFigures {
    /// The figures of vault `name` (declared as `spec`), read by `read` when stale.
    pub fn get(
        &self,
        name: &str,
        spec: &VaultSpec,
        read: impl FnOnce() -> Result<serde_json::Value, String>,
    ) -> Result<serde_json::Value, String> {
        if let Some((at, s, v)) = self.0.lock().expect("figures").get(name)
            && at.elapsed() < STATS_TTL
            && s == spec
        {
            return Ok(v.clone());
        }
        let v = read()?;
        self.0
            .lock()
            .expect("figures")
            .insert(name.to_string(), (Instant::now(), spec.clone(), v.clone()));
        Ok(v)
    }
}

/// What the vaults held when last read.
pub struct Snapshot {
    /// When.
    pub taken: DateTime<Utc>,
    /// The file it was read for.
    pub config: Arc<Config>,
    /// The compliance report.
    pub report: Vec<ResourceReport>,
    /// Every vault's points (or why not).
    pub points: BTreeMap<String, Result<Vec<(Id, RecoveryPoint)>, String>>,
    /// Each stack's live RPO exposure in each site that could recover it.
    pub exposure: Vec<lifeboat_stack::exposure::Exposure>,
}

impl Snapshot {
    /// The newest point of `resource` in any vault (binlog seals aside), with its vault.
    pub fn newest(&self, resource: &str) -> Option<(&str, &Id, &RecoveryPoint)> {
        self.points
            .iter()
            .filter_map(|(v, r)| r.as_ref().ok().map(|ps| (v, ps)))
            .flat_map(|(v, ps)| ps.iter().map(move |(id, p)| (v.as_str(), id, p)))
            .filter(|(_, _, p)| p.resource == resource && !is_seal(p))
            .max_by_key(|(_, _, p)| p.time)
    }
}

/// A binlog archive's seal point (many, short-lived, rolled up).
pub fn is_seal(p: &RecoveryPoint) -> bool {
    p.kind == lifeboat_mysql::KIND_BINLOG && p.meta["rollup"] != true
}

/// The cached snapshot.
#[derive(Default)]
pub struct Cache(Mutex<Option<(Instant, Arc<Snapshot>)>>);

impl Cache {
    /// A snapshot at most [`TTL`] old for `cfg` (read now when older, or
    /// when the file changed). Blocking: call on the blocking pool.
    pub fn get(&self, vaults: &Vaults, cfg: Arc<Config>) -> Arc<Snapshot> {
        let mut slot = self.0.lock().expect("snapshot");
        if let Some((at, s)) = slot.as_ref()
            && at.elapsed() < TTL
            && Arc::ptr_eq(&s.config, &cfg)
        {
            return s.clone();
        }
        let now = Utc::now();
        let open = |name: &str| {
            vaults
                .open(&cfg, name)
                .map(|v| (*v).clone())
                .map_err(|e| e.message)
        };
        let report = lifeboat_control::report::report_with(&cfg, now, &open);
        let exposure = lifeboat_stack::exposure::live_with(&cfg, now, &open);
        let points = cfg
            .vaults
            .keys()
            .map(|n| (n.clone(), vaults.points(&cfg, n).map_err(|e| e.message)))
            .collect();
        let s = Arc::new(Snapshot {
            taken: now,
            config: cfg,
            report,
            points,
            exposure,
        });
        *slot = Some((Instant::now(), s.clone()));
        s
    }
}
