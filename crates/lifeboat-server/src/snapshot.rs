//! Vault reads shared by the routes: opened vaults (a vault's key is
//! derived once, not per request) and a few seconds' cache of what
//! `/resources`, `/report` and `/metrics` read (the compliance report and
//! every vault's points), so a 15 s scrape does not re-read the vaults.
//!
//! An unreachable vault never stalls a route: a vault is opened on a thread
//! of its own, outside any lock the routes share; a request waits for an
//! opening at most [`OPEN_WAIT`] after it began, then answers with the vault
//! marked unreachable; a failed opening is remembered for [`RETRY_AFTER`].
//! The snapshot is read on a thread of its own too: a request waits for it
//! at most [`SNAPSHOT_WAIT`], then gets the last one (or one read from the
//! vaults already open). A vault that went silent after it was opened (an
//! S3 endpoint that stops answering) does not stall a route either: a read
//! of it runs on a thread of its own ([`Vaults::bounded`]), waited for as
//! long as its store answers, and answered as unreachable once the store
//! has left its requests unanswered for [`SILENCE`] (the vault is then
//! marked unreachable for [`RETRY_AFTER`]; the read ends in the background).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lifeboat_config::{Config, VaultSpec};
use lifeboat_control::report::ResourceReport;
use lifeboat_vault::{Id, RecoveryPoint, Vault};

use crate::ApiError;

/// How long a snapshot of the vaults is served before it is read again.
pub const TTL: Duration = Duration::from_secs(5);
/// How long after a vault's opening began a request still waits for it.
pub const OPEN_WAIT: Duration = Duration::from_millis(1000);
/// How long a vault that could not be opened is answered as unreachable
/// before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long a request waits for a snapshot being read.
pub const SNAPSHOT_WAIT: Duration = Duration::from_millis(1500);
/// How long an open vault's store may leave every request unanswered
/// before a route answers the vault as unreachable.
pub const SILENCE: Duration = Duration::from_millis(1000);

enum Slot {
    Open(Arc<Vault>),
    Opening(Instant),
    Failed(Instant, String),
}

#[derive(Default)]
struct VaultsInner {
    map: Mutex<HashMap<String, (VaultSpec, Slot)>>,
    changed: Condvar,
}

impl Drop for VaultsInner {
    fn drop(&mut self) {
        // A vault owns an I/O runtime, which may not be dropped on a thread
        // of the server's runtime (tokio panics: "Cannot drop a runtime in a
        // context where blocking is not allowed"): dropped on a plain thread.
        let map = std::mem::take(self.map.get_mut().unwrap_or_else(|p| p.into_inner()));
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::spawn(move || drop(map)).join();
        }
    }
}

/// Vaults opened by name, reopened when the file changes them.
#[derive(Default, Clone)]
pub struct Vaults(Arc<VaultsInner>);

fn unavailable(m: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m)
}

impl Vaults {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (VaultSpec, Slot)>> {
        self.0.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts opening vault `name` (declared as `spec`) on a thread of its
    /// own, unless it is open, being opened, or failed a short while ago.
    fn begin(&self, m: &mut HashMap<String, (VaultSpec, Slot)>, cfg: &Arc<Config>, name: &str) {
        let Some(spec) = cfg.vaults.get(name) else {
            return;
        };
        match m.get(name) {
            Some((s, Slot::Open(_) | Slot::Opening(_))) if s == spec => return,
            Some((s, Slot::Failed(at, _))) if s == spec && at.elapsed() < RETRY_AFTER => return,
            _ => {}
        }
        m.insert(name.into(), (spec.clone(), Slot::Opening(Instant::now())));
        let (me, cfg, name, spec) = (self.clone(), cfg.clone(), name.to_string(), spec.clone());
        let _ = std::thread::Builder::new()
            .name("lifeboat-open-vault".into())
            .spawn(move || {
                let slot = match lifeboat_control::secret::open_vault(&cfg, &name) {
                    Ok(v) => Slot::Open(Arc::new(v)),
                    Err(e) => Slot::Failed(Instant::now(), e.to_string()),
                };
                let mut m = me.lock();
                if m.get(&name).is_some_and(|(s, _)| *s == spec) {
                    m.insert(name, (spec, slot));
                }
                drop(m);
                me.0.changed.notify_all();
            });
    }

    /// Starts opening every vault of `cfg` (at the server's start, and
    /// before a snapshot), without waiting.
    pub fn prefetch(&self, cfg: &Arc<Config>) {
        let mut m = self.lock();
        for name in cfg.vaults.keys() {
            self.begin(&mut m, cfg, name);
        }
    }

    /// Vault `name` of `cfg`: 404 when the file has none, 503 when it
    /// cannot be opened or does not answer within [`OPEN_WAIT`] of its
    /// opening (the vault is then marked unreachable; the opening goes on).
    pub fn open(&self, cfg: &Arc<Config>, name: &str) -> Result<Arc<Vault>, ApiError> {
        let spec = cfg.vaults.get(name).ok_or_else(|| {
            ApiError::not_found(format!(
                "there is no vault `{name}` in the file (vaults: {})",
                cfg.vaults.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let mut m = self.lock();
        loop {
            self.begin(&mut m, cfg, name);
            let wait = match m.get(name) {
                Some((s, Slot::Open(v))) if s == spec => return Ok(v.clone()),
                Some((_, Slot::Failed(at, e))) => {
                    return Err(unavailable(format!(
                        "vault `{name}` is unreachable: {e} (tried {}s ago; tried again {}s after that)",
                        at.elapsed().as_secs(),
                        RETRY_AFTER.as_secs()
                    )));
                }
                Some((_, Slot::Opening(since))) => match OPEN_WAIT.checked_sub(since.elapsed()) {
                    Some(left) => left,
                    None => {
                        return Err(unavailable(format!(
                            "vault `{name}` is unreachable: it has not answered for {:.1}s (still trying, in the background)",
                            since.elapsed().as_secs_f64()
                        )));
                    }
                },
                _ => Duration::from_millis(10),
            };
            m = self
                .0
                .changed
                .wait_timeout(m, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Vault `name` if it is open now and its store is not waiting for an
    /// answer (the snapshot's own read of it may be stuck there): never waits.
    fn open_now(&self, cfg: &Config, name: &str) -> Result<Arc<Vault>, String> {
        match (self.lock().get(name), cfg.vaults.get(name)) {
            (Some((s, Slot::Open(v))), Some(spec)) if s == spec => match v.storage().silent_for() {
                None => Ok(v.clone()),
                Some(d) => Err(format!(
                    "vault `{name}` is unreachable: it has not answered for {:.1}s (still trying, in the background)",
                    d.as_secs_f64()
                )),
            },
            _ => Err(format!(
                "vault `{name}` is unreachable: it has not answered yet (still trying, in the background)"
            )),
        }
    }

    /// Every point of vault `name`, under a reader lock.
    pub fn points(
        &self,
        cfg: &Arc<Config>,
        name: &str,
    ) -> Result<Vec<(Id, RecoveryPoint)>, ApiError> {
        let v = self.open(cfg, name)?;
        let (w, n) = (v.clone(), name.to_string());
        self.bounded(name, &v, move || points_of(&w, &n))
    }

    /// Runs `f`, which reads open vault `name` (`v`), on a thread of its
    /// own: waited for while the vault's store answers (a slow vault is
    /// waited for), answered as unreachable once the store has left its
    /// requests unanswered for [`SILENCE`]; the vault is then marked
    /// unreachable (tried again after [`RETRY_AFTER`]) and `f` ends in the
    /// background.
    pub fn bounded<T: Send + 'static>(
        &self,
        name: &str,
        v: &Arc<Vault>,
        f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        use std::sync::mpsc::RecvTimeoutError;
        if let Some(e) = self.silent(name, v) {
            return Err(e);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("lifeboat-vault-read".into())
            .spawn(move || {
                let _ = tx.send(f());
            })
            .map_err(|e| ApiError::internal(format!("cannot start a vault read: {e}")))?;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => return r,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ApiError::internal(format!(
                        "the read of vault `{name}` ended without an answer"
                    )));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(e) = self.silent(name, v) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// 503 when open vault `name`'s store has left its requests unanswered
    /// for [`SILENCE`]; the vault is marked unreachable.
    fn silent(&self, name: &str, v: &Arc<Vault>) -> Option<ApiError> {
        let d = v.storage().silent_for().filter(|d| *d >= SILENCE)?;
        let msg = format!(
            "vault `{name}` is unreachable: its store has answered nothing for {:.1}s (tried again in {}s)",
            d.as_secs_f64(),
            RETRY_AFTER.as_secs()
        );
        let mut m = self.lock();
        if let Some((spec, Slot::Open(o))) = m.get(name)
            && Arc::ptr_eq(o, v)
        {
            let spec = spec.clone();
            m.insert(
                name.into(),
                (spec, Slot::Failed(Instant::now(), msg.clone())),
            );
        }
        drop(m);
        Some(unavailable(msg))
    }
}

fn points_of(v: &Vault, name: &str) -> Result<Vec<(Id, RecoveryPoint)>, ApiError> {
    let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "api")
        .map_err(|e| unavailable(format!("vault `{name}`: {e}")))?;
    let (points, _damaged) = v
        .list_points()
        .map_err(|e| unavailable(format!("cannot list the points of vault `{name}`: {e}")))?;
    Ok(points)
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

#[derive(Default)]
struct CacheState {
    snap: Option<(Instant, Arc<Snapshot>)>,
    reading: bool,
}

#[derive(Default)]
struct CacheInner {
    state: Mutex<CacheState>,
    done: Condvar,
}

/// The cached snapshot.
#[derive(Default, Clone)]
pub struct Cache(Arc<CacheInner>);

/// Clears `reading` however the reading thread ends.
struct Reading(Cache);

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.lock().reading = false;
        self.0.0.done.notify_all();
    }
}

impl Cache {
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot at most [`TTL`] old for `cfg` (read again when older, or
    /// when the file changed, on a thread of its own). When the reading
    /// takes longer than [`SNAPSHOT_WAIT`]: the last snapshot of this file,
    /// else one read from the vaults open now (the others unreachable).
    /// Blocking: call on the blocking pool.
    pub fn get(&self, vaults: &Vaults, cfg: Arc<Config>) -> Arc<Snapshot> {
        let deadline = Instant::now() + SNAPSHOT_WAIT;
        let mut g = self.lock();
        loop {
            if let Some((at, s)) = g.snap.as_ref()
                && at.elapsed() < TTL
                && Arc::ptr_eq(&s.config, &cfg)
            {
                return s.clone();
            }
            if !g.reading {
                g.reading = true;
                let (me, vaults, cfg) = (self.clone(), vaults.clone(), cfg.clone());
                let _ = std::thread::Builder::new()
                    .name("lifeboat-snapshot".into())
                    .spawn(move || {
                        let _reading = Reading(me.clone());
                        vaults.prefetch(&cfg);
                        let s = Arc::new(read(&cfg, &|n| {
                            vaults
                                .open(&cfg, n)
                                .map(|v| (*v).clone())
                                .map_err(|e| e.message)
                        }));
                        me.lock().snap = Some((Instant::now(), s));
                    });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if let Some((_, s)) = g.snap.as_ref()
                    && Arc::ptr_eq(&s.config, &cfg)
                {
                    return s.clone();
                }
                drop(g);
                return Arc::new(read(&cfg, &|n| {
                    vaults.open_now(&cfg, n).map(|v| (*v).clone())
                }));
            }
            g = self
                .0
                .done
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Reads a snapshot of `cfg`'s vaults, each opened by `open`.
fn read(cfg: &Arc<Config>, open: &dyn Fn(&str) -> Result<Vault, String>) -> Snapshot {
    let now = Utc::now();
    let report = lifeboat_control::report::report_with(cfg, now, open);
    let exposure = lifeboat_stack::exposure::live_with(cfg, now, open);
    let points = cfg
        .vaults
        .keys()
        .map(|n| {
            let r = open(n).and_then(|v| points_of(&v, n).map_err(|e| e.message));
            (n.clone(), r)
        })
        .collect();
    Snapshot {
        taken: now,
        config: cfg.clone(),
        report,
        points,
        exposure,
    }
}
