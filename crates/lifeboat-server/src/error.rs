//! Errors as JSON: `{"error": "what failed, where, and what to do"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What failed and what to do.
    pub error: String,
    /// 409 to a plan's run: the job of the run going on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_job: Option<i64>,
}

/// An error answered with its status.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
    /// The job a 409 refers to (the run going on).
    pub running_job: Option<i64>,
}

impl ApiError {
    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    /// 400.
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    /// 500: something on the server's side failed (a vault, the store).
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
    /// Any status.
    pub fn new(status: StatusCode, m: impl Into<String>) -> Self {
        ApiError {
            status,
            message: m.into(),
            running_job: None,
        }
    }
}

impl From<lifeboat_control::ControlError> for ApiError {
    fn from(e: lifeboat_control::ControlError) -> Self {
        use lifeboat_control::ControlError as C;
        match e {
            C::Refused(m) => ApiError::bad_request(m),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl From<lifeboat_vault::VaultError> for ApiError {
    fn from(e: lifeboat_vault::VaultError) -> Self {
        use lifeboat_vault::VaultError as V;
        match e {
            V::NoSuchPoint(_) | V::WrongKind { .. } => ApiError::not_found(e.to_string()),
            // A refusal (a point of another resource than the one asked
            // for, …) is the request's fault, not the server's.
            V::AmbiguousPoint(_) | V::Refused(_) => ApiError::bad_request(e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!("API error {}: {}", self.status, self.message);
        }
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
                running_job: self.running_job,
            }),
        )
            .into_response()
    }
}

/// Runs `f` on the blocking pool (vault and store reads).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a worker of the API failed: {e}")))?
}
