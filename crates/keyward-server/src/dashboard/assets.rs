//! The dashboard's static files, compiled into the binary: no CDN, nothing fetched.
//!
//! - `dashboard.css`: the stylesheet.
//! - `dashboard.js`: dialogs, copy buttons and the post-creation dialog (no inline script,
//!   so the Content-Security-Policy can forbid it).
//! - `htmx.min.js`: htmx 2.0.11 (0BSD), from the npm package `htmx.org`, unmodified.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Each file: its name, its media type and its bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard.css"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard.js"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/htmx.min.js"),
    ),
];

/// The version pages add to asset URLs (`?v=`), so a new release is fetched afresh.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Serves one file, cacheable for a day.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some((_, media_type, bytes)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        *bytes,
    )
        .into_response()
}
