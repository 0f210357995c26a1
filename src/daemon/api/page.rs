//! The dashboard: one page, its script and its style, embedded in the binary (no build step,
//! no server of its own). It holds no data; everything comes over the token-protected API.

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::Shared;

/// (path, content type, body).
pub const PAGES: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("dashboard/index.html"),
    ),
    (
        "/dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/dashboard.js"),
    ),
    (
        "/dashboard.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/dashboard.css"),
    ),
];

/// Scripts and styles from this origin only, no framing (a Cancel button under someone
/// else's page), API calls to this origin only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; media-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub fn is_page(path: &str) -> bool {
    PAGES.iter().any(|(p, _, _)| *p == path)
}

/// The page says whether it needs the token, so it asks before its first call instead of
/// being refused (a refusal is a console error).
const TOKEN_MARK: &str = "data-token-required=\"unknown\"";

pub async fn serve(State(d): Shared, uri: Uri) -> Response {
    let Some((path, kind, body)) = PAGES.iter().find(|(p, _, _)| *p == uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = if *path == "/" {
        let required = format!("data-token-required=\"{}\"", d.token.is_some());
        body.replacen(TOKEN_MARK, &required, 1)
    } else {
        body.to_string()
    };
    (
        [
            (header::CONTENT_TYPE, *kind),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
