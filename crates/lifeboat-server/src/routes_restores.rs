//! Restores of databases and buckets, each as a child `lifeboat jobs
//! restore-database|restore-bucket` (a job of kind `restore`): one
//! database of a `mysql` point under a new name into the server its
//! resource declares, beside the live database; a bucket point into a bucket
//! location that holds nothing yet (or, asked to, over one that does).
//! (Files restores are `POST /restores`, in `routes_jobs`.)

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use lifeboat_config::ResourceKind;
use lifeboat_control::restore_db::{SYSTEM_SCHEMAS, plain_name};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ErrorBody, blocking};
use crate::routes_jobs::start;
use crate::views::Started;
use crate::{ApiError, AppState};

/// Resolves point `spec` (an id, a unique prefix or `latest`) of one of
/// `kinds` (and of `resource`, when given) in vault `vault`, under a reader
/// lock, and runs `check` on it there; its full id (404 at once for a point
/// that is not there, so a child is never started for one).
pub(crate) async fn resolve_point(
    st: &AppState,
    vault: &str,
    spec: &str,
    kinds: &'static [&'static str],
    resource: Option<String>,
    check: impl FnOnce(
        &lifeboat_config::Config,
        &lifeboat_vault::Vault,
        &lifeboat_vault::Id,
        &lifeboat_vault::RecoveryPoint,
    ) -> Result<(), ApiError>
    + Send
    + 'static,
) -> Result<String, ApiError> {
    if spec != "latest" && (spec.is_empty() || !spec.chars().all(|c| c.is_ascii_hexdigit())) {
        return Err(ApiError::not_found(format!(
            "`{spec}` is not a point id, prefix or `latest`"
        )));
    }
    let (s, vault, spec) = (st.clone(), vault.to_string(), spec.to_string());
    blocking(move || {
        let cfg = s.cfg();
        let v = s.0.vaults.open(&cfg, &vault)?;
        // Bounded: a vault gone silent is answered unreachable (snapshot.rs).
        let w = v.clone();
        s.0.vaults.bounded(&vault, &v, move || {
            let _reader = lifeboat_vault::lock::reader_lock(w.storage(), "api")
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let (id, p) = w.select_point(
                &spec,
                &lifeboat_vault::PointFilter::kinds(kinds).resource(resource.as_deref()),
            )?;
            check(&cfg, &w, &id, &p)?;
            Ok(id.to_hex())
        })
    })
    .await
}

/// Body of `POST /restores/database`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseRestoreBody {
    /// The vault's name in the file.
    pub vault: String,
    /// The point: id, unique prefix, or `latest` (with `resource`).
    pub point: String,
    /// Only a point of this resource.
    pub resource: Option<String>,
    /// The database in the point.
    pub database: String,
    /// The name it gets on the resource's server.
    #[serde(rename = "as")]
    pub target: String,
    /// Replace the target database when it is not empty (default: refused).
    #[serde(default)]
    pub replace: bool,
}

/// Restores one database of a mysql point under a new name into the server
/// its resource declares, as a job of kind `restore` in a child process.
#[utoipa::path(post, path = "/api/v1/restores/database", tag = "jobs",
    request_body = DatabaseRestoreBody,
    responses((status = 202, body = Started), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn restore_database(
    State(st): State<AppState>,
    Json(b): Json<DatabaseRestoreBody>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    for (what, n) in [("database", &b.database), ("as", &b.target)] {
        if !plain_name(n) {
            return Err(ApiError::bad_request(format!(
                "`{what}` must be a plain database name (letters, digits, _, $, -; at most 64), not {n:?}"
            )));
        }
    }
    if SYSTEM_SCHEMAS.contains(&b.target.to_ascii_lowercase().as_str()) {
        return Err(ApiError::bad_request(format!(
            "`{}` is the server's own schema: restore into a database of your own (`as`)",
            b.target
        )));
    }
    if b.database == b.target && !b.replace {
        return Err(ApiError::bad_request(format!(
            "restoring `{}` under its own name replaces the live database: choose another name in `as`, or set `replace`",
            b.database
        )));
    }
    let database = b.database.clone();
    let point = resolve_point(
        &st,
        &b.vault,
        &b.point,
        &[lifeboat_mysql::KIND_SNAPSHOT],
        b.resource.clone(),
        move |cfg, v, id, p| {
            if !matches!(
                cfg.resources.get(&p.resource).map(|r| &r.kind),
                Some(ResourceKind::Mysql { .. })
            ) {
                return Err(ApiError::bad_request(format!(
                    "the point's resource `{}` is not a database resource of the file (its server is unknown)",
                    p.resource
                )));
            }
            // The point's databases, as its protector lists them.
            let listed = lifeboat_control::protectors::registry()
                .of_point(&p.kind)
                .ok_or_else(|| ApiError::bad_request(format!("no protector writes `{}` points", p.kind)))?
                .contents(v, id, p, &lifeboat_protector::Query { limit: usize::MAX - 1, ..Default::default() })
                .map_err(|e| ApiError::internal(e.to_string()))?;
            if !listed.entries.iter().any(|e| e.name == database) {
                return Err(ApiError::not_found(format!(
                    "point {} has no database `{database}`",
                    id.short()
                )));
            }
            Ok(())
        },
    )
    .await?;
    let mut args = vec![
        "--quiet",
        "jobs",
        "restore-database",
        "--from",
        &b.vault,
        "--database",
        &b.database,
        "--as",
        &b.target,
        "--trigger",
        lifeboat_control::launch::trigger::API,
    ];
    if b.replace {
        args.push("--replace");
    }
    args.push(&point);
    let cmd = st.0.launcher.command(&args);
    let started = start(&st, cmd, "database restore").await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// Body of `POST /restores/bucket`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BucketRestoreBody {
    /// The vault's name in the file.
    pub vault: String,
    /// The point: id, unique prefix, or `latest` (with `resource`).
    pub point: String,
    /// Only a point of this resource.
    pub resource: Option<String>,
    /// Only keys starting with this.
    #[serde(default)]
    pub prefix: String,
    /// The target bucket: `file:///path` or `s3://bucket/prefix?endpoint=…` (credentials of the server's process).
    pub to: String,
    /// Write over the keys of a target that already holds objects (default: refused; the live bucket too).
    #[serde(default)]
    pub overwrite: bool,
}

/// Restores a bucket point (or its keys under a prefix) into a bucket
/// location, as a job of kind `restore` in a child process. A target that
/// holds objects, the live bucket among them, is refused unless `overwrite`;
/// a location on this host outside `[server] restore_roots` is refused (403).
#[utoipa::path(post, path = "/api/v1/restores/bucket", tag = "jobs",
    request_body = BucketRestoreBody,
    responses((status = 202, body = Started), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, description = "The location is outside `[server] restore_roots`, or in a kernel file system", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn restore_bucket(
    State(st): State<AppState>,
    Json(b): Json<BucketRestoreBody>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    if b.to.contains('\0') || b.prefix.contains('\0') {
        return Err(ApiError::bad_request(
            "`to` and `prefix` may not hold a NUL byte",
        ));
    }
    lifeboat_bucket::Bucket::parse(&b.to).map_err(|e| {
        ApiError::bad_request(format!(
            "`to` is not a bucket address (file:///path or s3://bucket/…): {e}"
        ))
    })?;
    // A location on this host: judged by its real path, against
    // `[server] restore_roots` (403); passed on as resolved.
    let mut real_to = b.to.clone();
    if let Some(dir) = crate::restore_roots::bucket_dir(&b.to) {
        let s = st.clone();
        let real =
            blocking(move || crate::restore_roots::check(&s.cfg(), &s.0.state.root, &dir)).await?;
        real_to = format!("file://{}", real.display());
    }
    // The target is checked here too (400 at once), as given (the child
    // checks it again as resolved: the live bucket is found in either form).
    let (to, overwrite) = (b.to.clone(), b.overwrite);
    let point = resolve_point(
        &st,
        &b.vault,
        &b.point,
        &["bucket"],
        b.resource.clone(),
        move |cfg, _, _, p| {
            lifeboat_control::restore_bucket::check_target(cfg, &p.resource, &to, overwrite)
                .map_err(ApiError::from)
        },
    )
    .await?;
    let mut args = vec![
        "--quiet",
        "jobs",
        "restore-bucket",
        "--from",
        &b.vault,
        "--to-bucket",
        &real_to,
        "--trigger",
        lifeboat_control::launch::trigger::API,
    ];
    let prefix = format!("--prefix={}", b.prefix);
    if !b.prefix.is_empty() {
        args.push(&prefix);
    }
    if b.overwrite {
        args.push("--overwrite");
    }
    args.push(&point);
    let cmd = st.0.launcher.command(&args);
    let started = start(&st, cmd, "bucket restore").await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}
