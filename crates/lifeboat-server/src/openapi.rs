//! The router, and the OpenAPI document built from the handlers' annotations.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ErrorBody;
use crate::{
    AppState, auth, console, history, metrics, routes_jobs as jobs, routes_read as read,
    routes_restores as restores, routes_stacks as stacks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lifeboat",
        description = "The REST API of `lifeboat serve`: resources, recovery points, jobs, restores, replication, stacks and drills, compliance and metrics. Every route but /healthz needs `Authorization: Bearer TOKEN` (the token is in `api-token` of the state directory).",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "resources", description = "Protected resources and their compliance"),
        (name = "points", description = "Recovery points and what they hold"),
        (name = "jobs", description = "Job history, runs, restores, cancelling, live events"),
        (name = "vaults", description = "Vaults and their figures"),
        (name = "replication", description = "Bucket replication rules"),
        (name = "stacks", description = "Stacks, drills and recovery reports"),
        (name = "server", description = "Health, metrics, this document")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, o: &mut utoipa::openapi::OpenApi) {
        o.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

static DOCUMENT: OnceLock<Arc<String>> = OnceLock::new();

/// This document (OpenAPI 3.1), generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "server",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object),
              (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn openapi_json() -> impl IntoResponse {
    let doc = DOCUMENT.get().cloned().unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
}

/// Every route, documented; auth on all but `/healthz`.
pub(crate) fn router(state: AppState) -> axum::Router {
    let (protected, mut doc) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .routes(routes!(read::resources))
        .routes(routes!(read::resource_points))
        .routes(routes!(read::point))
        .routes(routes!(read::contents))
        .routes(routes!(read::kinds))
        .routes(routes!(read::report))
        .routes(routes!(read::vaults))
        .routes(routes!(read::replication))
        .routes(routes!(history::history))
        .routes(routes!(stacks::stacks))
        .routes(routes!(stacks::drill))
        .routes(routes!(stacks::reports))
        .routes(routes!(read::plans))
        .routes(routes!(jobs::jobs))
        .routes(routes!(jobs::job))
        .routes(routes!(jobs::events))
        .routes(routes!(jobs::run_plan))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::restore))
        .routes(routes!(restores::restore_database))
        .routes(routes!(restores::restore_bucket))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi_json))
        .split_for_parts();
    let (public, public_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(read::healthz))
        .split_for_parts();
    doc.merge(public_doc);
    let text = Arc::new(
        doc.to_pretty_json()
            .expect("the OpenAPI document serializes"),
    );
    let _ = DOCUMENT.set(text);
    protected
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .merge(public)
        .merge(console::router())
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    (
        axum::http::StatusCode::NOT_FOUND,
        Json(ErrorBody {
            error: "no such route (see /openapi.json)".into(),
            running_job: None,
        }),
    )
}
