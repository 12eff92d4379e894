//! The HTTP surface: the JSON API under `/api/`, `/health`, and the frontend,
//! read from the bucket on every request.
//!
//! Every error answer is JSON `{"error": "..."}`: 400 for malformed or
//! impossible requests, 404 for what does not exist, 409 when stock is
//! exhausted, 503 (with `Retry-After`) while the database or the bucket does
//! not answer, 500 for anything unexpected (logged).

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::bucket::content_type;
use crate::error::Error;
use crate::server::AppState;
use crate::shop::{self, OrderError, OrderRequest};

/// An error answer: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message for the client.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match &e {
            Error::NotInBucket { key, .. } => {
                ApiError::new(StatusCode::NOT_FOUND, format!("{key} not found"))
            }
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "answering 503");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            e => {
                tracing::error!(error = %e, "answering 500");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> ApiError {
        match e {
            OrderError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            OrderError::OutOfStock(m) => ApiError::new(StatusCode::CONFLICT, m),
            OrderError::Db(e) => e.into(),
        }
    }
}

fn bad_path(e: PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("bad path: {}", e.body_text()),
    )
}

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("bad query: {}", e.body_text()),
    )
}

type ApiResult<T> = Result<T, ApiError>;

/// The router of the whole application.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/products", get(products))
        .route("/api/products/{id}", get(product))
        .route("/api/orders", get(orders).post(place_order))
        .route("/api/orders/{id}", get(order))
        .route("/api", get(api_not_found).post(api_not_found))
        .route("/api/{*rest}", get(api_not_found).post(api_not_found))
        .route("/", get(frontend))
        .route("/{*path}", get(frontend))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn api_not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no API route {}", uri.path()),
    )
}

/// `GET /health`: 200 only when the database (with its schema) and the bucket (with the frontend) answer.
async fn health(State(st): State<Arc<AppState>>) -> Response {
    let (db, bucket) = tokio::join!(st.check_database(), st.bucket.exists("index.html"));
    let part = |r: Result<(), Error>| match r {
        Ok(()) => ("ok".to_string(), true),
        Err(Error::NotInBucket { url, .. }) => (
            format!("{url}: index.html not found (run: unishop publish-frontend --bucket {url})"),
            false,
        ),
        Err(e) => (e.to_string(), false),
    };
    let (db, db_ok) = part(db);
    let (bucket, bucket_ok) = part(bucket);
    let ok = db_ok && bucket_ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "database": db,
        "bucket": bucket,
    });
    (status, Json(body)).into_response()
}

#[derive(Debug, Deserialize)]
struct Page {
    offset: Option<u32>,
    limit: Option<u32>,
}

async fn products(
    State(st): State<Arc<AppState>>,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(page) = page.map_err(bad_query)?;
    st.schema_ready()?;
    let limit = page.limit.unwrap_or(200).clamp(1, 1000);
    let list = shop::list_products(&st.db, page.offset.unwrap_or(0), limit).await?;
    Ok(Json(list).into_response())
}

async fn product(
    State(st): State<Arc<AppState>>,
    id: Result<Path<u32>, PathRejection>,
) -> ApiResult<Response> {
    let Path(id) = id.map_err(bad_path)?;
    st.schema_ready()?;
    match shop::get_product(&st.db, id).await? {
        Some(p) => Ok(Json(p).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no product {id}"),
        )),
    }
}

async fn place_order(
    State(st): State<Arc<AppState>>,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(req) = body.map_err(|e| {
        let why = match e {
            JsonRejection::MissingJsonContentType(_) => {
                "send the order as JSON with Content-Type: application/json".to_string()
            }
            e => format!(
                "{}; expected {{\"items\":[{{\"product_id\":N,\"quantity\":N}}]}}",
                e.body_text()
            ),
        };
        ApiError::new(StatusCode::BAD_REQUEST, why)
    })?;
    st.schema_ready()?;
    let order = shop::place_order(&st.db, &req).await?;
    let body = json!({
        "order_id": order.id,
        "created_at": order.created_at,
        "status": order.status,
        "total_cents": order.total_cents,
        "lines": order.lines,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
struct History {
    limit: Option<u32>,
}

async fn orders(
    State(st): State<Arc<AppState>>,
    q: Result<Query<History>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(bad_query)?;
    st.schema_ready()?;
    let list = shop::recent_orders(&st.db, q.limit.unwrap_or(20).clamp(1, 500)).await?;
    Ok(Json(list).into_response())
}

async fn order(
    State(st): State<Arc<AppState>>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Response> {
    let Path(id) = id.map_err(bad_path)?;
    st.schema_ready()?;
    match shop::get_order(&st.db, id).await? {
        Some(o) => Ok(Json(o).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no order {id}"),
        )),
    }
}

/// The bucket key for a request path, or `None` when the path may not name one.
pub fn key_for_path(path: &str) -> Option<String> {
    let p = path.trim_start_matches('/');
    if p.is_empty() {
        return Some("index.html".into());
    }
    let ok = p
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'));
    ok.then(|| p.to_string())
}

/// `GET /` and every other path outside the API: the object of that key in the bucket.
async fn frontend(State(st): State<Arc<AppState>>, uri: Uri) -> ApiResult<Response> {
    let Some(key) = key_for_path(uri.path()) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{} not found", uri.path()),
        ));
    };
    let data = st.bucket.read(&key).await?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&key)),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        data,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::key_for_path;

    #[test]
    fn paths_map_to_keys_and_never_escape() {
        assert_eq!(key_for_path("/").as_deref(), Some("index.html"));
        assert_eq!(key_for_path("/app.js").as_deref(), Some("app.js"));
        assert_eq!(
            key_for_path("/images/mug.svg").as_deref(),
            Some("images/mug.svg")
        );
        for bad in [
            "/../etc/passwd",
            "/images/../../x",
            "/a//b",
            "/./x",
            "/a\\b",
            "/dir/",
        ] {
            assert_eq!(key_for_path(bad), None, "{bad}");
        }
    }
}
