//! Read-only routes: resources, points and their contents, vaults, the
//! compliance report, replication rules.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use lifeboat_config::ResourceKind;
use lifeboat_vault::{Id, RecoveryPoint};

use crate::error::{ErrorBody, blocking};
use crate::snapshot::{Snapshot, is_seal};
use crate::views::*;
use crate::{ApiError, AppState};

/// Liveness: answers without a token.
#[utoipa::path(get, path = "/healthz", tag = "server",
    responses((status = 200, description = "The server answers", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

fn resource_views(s: &Snapshot) -> Vec<ResourceView> {
    s.report
        .iter()
        .map(|r| ResourceView {
            name: r.resource.clone(),
            kind: r.kind.clone(),
            site: s
                .config
                .resources
                .get(&r.resource)
                .and_then(|x| x.site.clone()),
            plans: r.plans.clone(),
            compliant: r.compliant,
            newest_age_s: r.newest_age_s,
            newest_point: s
                .newest(&r.resource)
                .map(|(v, id, p)| PointView::new(v, id, p)),
            controls: r
                .controls
                .iter()
                .map(|c| ControlView {
                    name: c.name.clone(),
                    ok: c.ok,
                    detail: c.detail.clone(),
                })
                .collect(),
        })
        .collect()
}

/// The file's resources with their newest point and compliance (vaults read at most every 5 s).
#[utoipa::path(get, path = "/api/v1/resources", tag = "resources",
    responses((status = 200, body = Vec<ResourceView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resources(State(st): State<AppState>) -> Result<Json<Vec<ResourceView>>, ApiError> {
    let s = snapshot(&st).await?;
    Ok(Json(resource_views(&s)))
}

pub(crate) async fn snapshot(st: &AppState) -> Result<std::sync::Arc<Snapshot>, ApiError> {
    let st = st.clone();
    blocking(move || {
        let cfg = st.cfg();
        Ok(st.0.snapshot.get(&st.0.vaults, cfg))
    })
    .await
}

/// Compliance of every resource (`lifeboat report`), from the vaults (read at most every 5 s).
#[utoipa::path(get, path = "/api/v1/report", tag = "resources",
    responses((status = 200, body = ReportView), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn report(State(st): State<AppState>) -> Result<Json<ReportView>, ApiError> {
    let s = snapshot(&st).await?;
    let resources = resource_views(&s);
    Ok(Json(ReportView {
        generated: s.taken,
        compliant: resources.iter().all(|r| r.compliant),
        resources,
    }))
}

/// Query of a resource's points.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PointsQuery {
    /// Only this vault.
    pub vault: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Also the binlog archive's seal points (many, rolled up every few minutes).
    pub seals: Option<bool>,
    /// At most this many, newest first (default 500, at most 10000).
    #[param(minimum = 0, maximum = 10000)]
    pub limit: Option<u32>,
}

/// A resource's points in every vault of the file (copies too), newest first.
#[utoipa::path(get, path = "/api/v1/resources/{name}/points", tag = "points",
    params(("name" = String, Path, description = "The resource"), PointsQuery),
    responses((status = 200, body = PointList), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resource_points(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<PointsQuery>,
) -> Result<Json<PointList>, ApiError> {
    blocking(move || {
        let cfg = st.cfg();
        if !cfg.resources.contains_key(&name) {
            return Err(ApiError::not_found(format!(
                "there is no resource `{name}` in the file"
            )));
        }
        if let Some(v) = &q.vault
            && !cfg.vaults.contains_key(v)
        {
            return Err(ApiError::not_found(format!(
                "there is no vault `{v}` in the file"
            )));
        }
        let mut points = Vec::new();
        let mut unreadable = Vec::new();
        for vname in cfg.vaults.keys() {
            if q.vault.as_ref().is_some_and(|v| v != vname) {
                continue;
            }
            match st.0.vaults.points(&cfg, vname) {
                Err(e) => unreadable.push(VaultProblem {
                    vault: vname.clone(),
                    error: e.message,
                }),
                Ok(list) => points.extend(
                    list.iter()
                        .filter(|(_, p)| p.resource == name)
                        .filter(|(_, p)| q.kind.as_ref().is_none_or(|k| &p.kind == k))
                        .filter(|(_, p)| q.seals == Some(true) || !is_seal(p))
                        .map(|(id, p)| PointView::new(vname, id, p)),
                ),
            }
        }
        points.sort_by(|a, b| b.time.cmp(&a.time).then(a.vault.cmp(&b.vault)));
        points.truncate(q.limit.unwrap_or(500).min(10_000) as usize);
        Ok(Json(PointList { points, unreadable }))
    })
    .await
}

fn find(
    st: &AppState,
    vault: &str,
    point: &str,
) -> Result<(std::sync::Arc<lifeboat_vault::Vault>, Id, RecoveryPoint), ApiError> {
    let cfg = st.cfg();
    let v = st.0.vaults.open(&cfg, vault)?;
    if point.is_empty() || !point.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::not_found(format!(
            "`{point}` is not a point id (hexadecimal, or a unique prefix of one)"
        )));
    }
    let (id, p) = v.find_point(point, None)?;
    Ok((v, id, p))
}

/// One point in full (lineage, lock, consistency, summary).
#[utoipa::path(get, path = "/api/v1/points/{vault}/{id}", tag = "points",
    params(("vault" = String, Path, description = "The vault's name in the file"),
           ("id" = String, Path, description = "The point's id or a unique prefix")),
    responses((status = 200, body = PointView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn point(
    State(st): State<AppState>,
    Path((vault, id)): Path<(String, String)>,
) -> Result<Json<PointView>, ApiError> {
    blocking(move || {
        // Bounded: a vault that went silent after it was opened is answered
        // as unreachable within about a second (snapshot.rs).
        let watched = st.0.vaults.open(&st.cfg(), &vault)?;
        let (vaults, name) = (st.0.vaults.clone(), vault.clone());
        vaults.bounded(&name, &watched, move || {
            let (v, pid, p) = find(&st, &vault, &id)?;
            let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "api")
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(Json(PointView::new(&vault, &pid, &p)))
        })
    })
    .await
}

/// What a point holds: a files or instance point's directory, a database
/// point's databases or one database's tables, a bucket point's keys.
#[utoipa::path(get, path = "/api/v1/points/{vault}/{id}/contents", tag = "points",
    params(("vault" = String, Path, description = "The vault's name in the file"),
           ("id" = String, Path, description = "The point's id or a unique prefix"), ContentsQuery),
    responses((status = 200, body = Contents), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn contents(
    State(st): State<AppState>,
    Path((vault, id)): Path<(String, String)>,
    Query(q): Query<ContentsQuery>,
) -> Result<Json<Contents>, ApiError> {
    blocking(move || {
        // Bounded: a vault that went silent after it was opened is answered
        // as unreachable within about a second (snapshot.rs).
        let watched = st.0.vaults.open(&st.cfg(), &vault)?;
        let (vaults, name) = (st.0.vaults.clone(), vault.clone());
        vaults.bounded(&name, &watched, move || contents_of(&st, &vault, &id, &q))
    })
    .await
}

/// The body of [`contents`], run by `Vaults::bounded`.
fn contents_of(
    st: &AppState,
    vault: &str,
    id: &str,
    q: &ContentsQuery,
) -> Result<Json<Contents>, ApiError> {
    let (v, pid, p) = find(st, vault, id)?;
    let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "api")
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // Each protector walks its own points (`lifeboat-protector`).
    let protector = lifeboat_control::protectors::registry()
        .of_point(&p.kind)
        .filter(|x| x.describe().browse.is_some())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "a point of kind `{}` has no contents to list (files, instance, mysql and bucket points do)",
                p.kind
            ))
        })?;
    let query = lifeboat_protector::Query {
        path: q.path.clone(),
        prefix: q.prefix.clone(),
        limit: q.limit.unwrap_or(1000).min(10_000) as usize,
    };
    let listing = protector
        .contents(&v, &pid, &p, &query)
        .map_err(browse_error)?;
    Ok(Json(Contents {
        kind: p.kind,
        listing: listing.listing,
        entries: listing
            .entries
            .into_iter()
            .map(|e| EntryView {
                name: e.name,
                kind: e.kind,
                size: e.size,
                mtime: e.mtime,
            })
            .collect(),
        truncated: listing.truncated,
    }))
}

/// A protector's refusal to list, as the API answers it.
pub(crate) fn browse_error(e: lifeboat_protector::BrowseError) -> ApiError {
    use lifeboat_protector::BrowseError as B;
    match e {
        B::NotInPoint(_) => ApiError::not_found(e.to_string()),
        B::BadQuery(m) => ApiError::bad_request(m),
        B::Vault(m) => ApiError::internal(m),
    }
}

/// What each kind of resource is and how its points are walked and
/// restored, from its protector: the console reads it instead of knowing
/// the kinds itself.
#[utoipa::path(get, path = "/api/v1/kinds", tag = "points",
    responses((status = 200, body = [KindView]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn kinds() -> Json<Vec<KindView>> {
    Json(
        lifeboat_control::protectors::registry()
            .all()
            .map(KindView::of)
            .collect(),
    )
}

/// A vault's figures: statistics (its whole index) and lock configuration.
fn figures(v: &lifeboat_vault::Vault) -> Result<serde_json::Value, String> {
    let _reader =
        lifeboat_vault::lock::reader_lock(v.storage(), "api").map_err(|e| e.to_string())?;
    let index = v.load_index().map_err(|e| e.to_string())?;
    let s = lifeboat_vault::stats::stats(v, &index, Utc::now()).map_err(|e| e.to_string())?;
    let l = lifeboat_vault::retention::load(v, Utc::now()).map_err(|e| e.to_string())?;
    let lock = match &l.effective {
        None => serde_json::json!({"configured": false}),
        Some(c) => serde_json::json!({
            "configured": true,
            "mode": c.mode.as_str(),
            "min_retention_s": c.min_retention_s,
            "max_retention_s": c.max_retention_s,
            "changeable_until": c.changeable_until,
            "immutable": l.immutable,
        }),
    };
    Ok(serde_json::json!([
        serde_json::to_value(s).unwrap_or_default(),
        lock
    ]))
}

/// The file's vaults with their figures (logical vs stored, dedup and
/// compression ratios, locked points) and lock configuration; the figures
/// read a vault's whole index, so they are at most a minute old.
#[utoipa::path(get, path = "/api/v1/vaults", tag = "vaults",
    responses((status = 200, body = Vec<VaultView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn vaults(State(st): State<AppState>) -> Result<Json<Vec<VaultView>>, ApiError> {
    blocking(move || {
        let cfg = st.cfg();
        let mut out = Vec::new();
        for (name, spec) in &cfg.vaults {
            let read = || -> Result<serde_json::Value, String> {
                let v = st.0.vaults.open(&cfg, name).map_err(|e| e.message)?;
                let w = v.clone();
                st.0.vaults
                    .bounded(name, &v, move || figures(&w).map_err(ApiError::internal))
                    .map_err(|e| e.message)
            };
            // The statistics read the whole index: a minute's cache.
            let (stats, lock, error) = match st.0.vault_figures.get(name, spec, read) {
                Ok(v) => (Some(v[0].clone()), Some(v[1].clone()), None),
                Err(e) => (None, None, Some(e)),
            };
            out.push(VaultView {
                name: name.clone(),
                location: spec.location.clone(),
                site: spec.site.clone(),
                declared_lock: spec.lock.as_ref().map(|l| DeclaredLock {
                    mode: format!("{:?}", l.mode).to_lowercase(),
                    min_retention: l.min_retention.map(|d| d.to_string()),
                    max_retention: l.max_retention.map(|d| d.to_string()),
                }),
                stats,
                lock,
                error,
            });
        }
        Ok(Json(out))
    })
    .await
}

/// The file's plans, with their next scheduled run (what "run now" can start).
#[utoipa::path(get, path = "/api/v1/plans", tag = "jobs",
    responses((status = 200, body = Vec<PlanView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn plans(State(st): State<AppState>) -> Json<Vec<PlanView>> {
    let cfg = st.cfg();
    let now = Utc::now();
    Json(
        cfg.plans
            .iter()
            .map(|(name, p)| PlanView {
                name: name.clone(),
                resources: p.resources.clone(),
                schedule: p.schedule.expr.clone(),
                timezone: p.schedule.tz.to_string(),
                next_run: p.schedule.next_after(now),
                window: p.window.map(|w| w.to_string()),
                vault: p.vault.clone(),
                copies: p.copy.iter().map(|c| c.vault.clone()).collect(),
                retention: serde_json::to_value(&p.retention).unwrap_or_default(),
            })
            .collect(),
    )
}

/// Where replication rules keep their state: `replication/` of the state directory.
pub(crate) fn replication_statuses(st: &AppState) -> Vec<lifeboat_bucket::replicate::RuleStatus> {
    lifeboat_bucket::replicate::read_statuses(&st.0.state.root.join("replication"))
        .unwrap_or_default()
}

/// The file's replication rules with their live lag and backlog (from the
/// status each replicator writes every second).
#[utoipa::path(get, path = "/api/v1/replication", tag = "replication",
    responses((status = 200, body = Vec<ReplicationView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replication(
    State(st): State<AppState>,
) -> Result<Json<Vec<ReplicationView>>, ApiError> {
    blocking(move || Ok(Json(replication_views(&st)))).await
}

/// The file's replication rules with the status their replicators wrote
/// (blocking: reads the status files).
pub(crate) fn replication_views(st: &AppState) -> Vec<ReplicationView> {
    let cfg = st.cfg();
    let statuses = replication_statuses(st);
    cfg.replications
        .iter()
        .map(|(name, r)| {
            let from = match cfg.resources.get(&r.from).map(|x| &x.kind) {
                Some(ResourceKind::Bucket { location }) => location.clone(),
                _ => r.from.clone(),
            };
            let s = statuses.iter().find(|s| {
                s.from == from && s.to == r.to && s.prefix == r.prefix.clone().unwrap_or_default()
            });
            ReplicationView {
                name: name.clone(),
                from: r.from.clone(),
                to: r.to.clone(),
                prefix: r.prefix.clone(),
                delete: format!("{:?}", r.delete).to_lowercase(),
                running: s.is_some_and(|s| s.running),
                backlog_objects: s.map(|s| s.backlog_objects),
                backlog_bytes: s.map(|s| s.backlog_bytes),
                oldest_pending_s: s.map(|s| s.oldest_pending_s),
                lag_p50_s: s.and_then(|s| s.lag_p50_s),
                lag_p99_s: s.and_then(|s| s.lag_p99_s),
                last_error: s.and_then(|s| s.last_error.clone()),
                status: s.map(|s| serde_json::to_value(s).unwrap_or_default()),
            }
        })
        .collect()
}
