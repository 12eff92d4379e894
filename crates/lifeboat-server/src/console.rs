//! The web console: static files embedded at build time (`build.rs`, from
//! `console/`), served at `/` and `/console/…` without a token. The pages
//! hold no data: every figure they show comes from the API with the bearer
//! token the user typed into the login form (kept in `sessionStorage`).
//!
//! Every console response carries strict security headers: a
//! Content-Security-Policy allowing only this origin's scripts, styles and
//! API (no inline script, no framing), `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.

use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => "text/plain; charset=utf-8",
    }
}

/// Adds the console's security headers to `r`.
fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (k, v) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

/// The embedded file at `path` (under `/console/`).
pub fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(k, _)| *k == path).map(|(_, b)| *b)
}

fn serve_file(path: &str) -> Response {
    match asset(path) {
        Some(bytes) => {
            secure(([(header::CONTENT_TYPE, content_type(path))], bytes).into_response())
        }
        None => secure(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("the console has no file `{path}`"),
            )
                .into_response(),
        ),
    }
}

async fn index() -> Response {
    serve_file("index.html")
}

async fn file(Path(path): Path<String>) -> Response {
    serve_file(&path)
}

/// `/`, `/console/` and `/console/{*path}` (no token: the files hold no data).
pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .route("/", get(index))
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/{*path}", get(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_and_the_chart_library_are_embedded() {
        for f in [
            "index.html",
            "app.css",
            "js/app.js",
            "vendor/uplot/uPlot.iife.min.js",
            "vendor/uplot/LICENSE",
        ] {
            assert!(
                asset(f).is_some_and(|b| !b.is_empty()),
                "{f} is not embedded"
            );
        }
        assert!(asset("package.json").is_none() && asset("vendor.mjs").is_none());
        // No inline script: every <script> of the page has a src.
        let html = std::str::from_utf8(asset("index.html").unwrap()).unwrap();
        for tag in html.split("<script").skip(1) {
            assert!(
                tag.split('>').next().unwrap().contains("src="),
                "inline script: {tag}"
            );
        }
    }
}
