//! The dashboard: server-rendered pages where organization members manage their
//! credentials and IP rules, through the same service functions as the API.
//!
//! # Layout
//! - [`page`]: what every page shares: the navigation, rendering, error pages, times.
//! - [`session`]: session cookies, the signed-in member, CSRF tokens on every form, and
//!   the session a management API request may be made with.
//! - [`derived`]: values derived from the session cookie, compared in constant time.
//! - [`login`]: the login and logout pages.
//! - [`overview`]: Developer → Overview: the organization's requests, busiest, unused and
//!   expiring credentials.
//! - [`credentials`]: Developer → API Credentials: list, create, detail, disable, enable,
//!   revoke, rotate.
//! - [`chart`]: the usage chart, an SVG drawn here.
//! - [`security`]: Developer → API Security (the organization's IP rules) and the audit log.
//! - [`members`]: Settings → Members (roles, invitations) and Your account (password), and
//!   the page where an invitation is accepted.
//! - [`webhooks`]: Developer → Webhooks: endpoints (the signing secret shown once),
//!   their deliveries, a test message, enable, disable, delete.
//! - [`assets`]: the stylesheet, htmx and the dashboard's script, served from the binary.
//!
//! Templates (askama, escaped by default) are in `templates/`. Every page carries a strict
//! Content-Security-Policy: scripts and styles only from this origin, no inline script.

pub mod assets;
pub mod chart;
pub mod credentials;
pub mod derived;
pub mod login;
pub mod members;
pub mod overview;
pub mod page;
pub mod security;
pub mod session;
pub mod webhooks;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{MethodRouter, get, post};
use tower::ServiceBuilder;
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::dashboard::page::PageError;
use crate::error::ApiError;
use crate::state::AppState;

/// The policy of every dashboard answer: nothing runs or loads from anywhere but here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Every dashboard route that changes something: a `POST` whose form must carry the CSRF
/// token (and pass the Origin check). The router takes them from here, and a test posts
/// to each without a token, so a route added here is covered by that test.
pub fn changes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/login", post(login::submit)),
        (login::CODE_PATH, post(login::code_submit)),
        ("/logout", post(login::logout)),
        (credentials::LIST_PATH, post(credentials::create)),
        (
            "/developer/api-credentials/lookup",
            post(credentials::lookup),
        ),
        (
            "/developer/api-credentials/{id}/rotate",
            post(credentials::rotate),
        ),
        (
            "/developer/api-credentials/{id}/edit",
            post(credentials::edit),
        ),
        (
            "/developer/api-credentials/{id}/{action}",
            post(credentials::change_status),
        ),
        (security::PATH, post(security::add_rule)),
        (
            "/developer/api-security/rules/{id}/remove",
            post(security::remove_rule),
        ),
        (webhooks::PATH, post(webhooks::create)),
        ("/developer/webhooks/{id}/{action}", post(webhooks::act)),
        ("/settings/members/invitations", post(members::invite)),
        (
            "/settings/members/invitations/{handle}/withdraw",
            post(members::withdraw),
        ),
        ("/settings/members/{id}/{action}", post(members::act)),
        ("/settings/account/password", post(members::change_password)),
        (members::TWO_STEP_PATH, post(members::two_step_confirm)),
        (
            "/settings/account/two-step/off",
            post(members::two_step_off),
        ),
        (members::INVITE_PATH, post(members::accept)),
    ]
}

/// The dashboard's routes, with their security headers and the Origin check.
pub fn routes() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to(credentials::LIST_PATH) }))
        .route("/login", get(login::form))
        .route(login::CODE_PATH, get(login::code_form))
        .route(credentials::LIST_PATH, get(credentials::list))
        .route(overview::PATH, get(overview::page))
        .route(overview::CHART_PATH, get(overview::usage_chart))
        .route("/developer/api-credentials/new", get(credentials::new_form))
        .route("/developer/api-credentials/{id}", get(credentials::detail))
        .route(
            "/developer/api-credentials/{id}/edit",
            get(credentials::edit_form),
        )
        .route(
            "/developer/api-credentials/{id}/usage-chart",
            get(credentials::usage_chart),
        )
        .route(security::PATH, get(security::page))
        .route("/developer/audit-log", get(security::audit_log))
        .route("/developer/audit-log/export", get(security::audit_export))
        .route(webhooks::PATH, get(webhooks::page))
        .route("/developer/webhooks/{id}", get(webhooks::detail))
        .route(members::PATH, get(members::page))
        .route(members::ACCOUNT_PATH, get(members::account))
        .route(members::TWO_STEP_PATH, get(members::two_step))
        .route(members::INVITE_PATH, get(members::invitation))
        .route(
            "/settings/{*rest}",
            get(|| async { PageError(ApiError::NotFound) }),
        )
        // A page the dashboard does not have is a page too: HTML, with the same headers.
        .route(
            "/developer/{*rest}",
            get(|| async { PageError(ApiError::NotFound) }),
        );
    let pages = changes()
        .into_iter()
        .fold(pages, |pages, (path, change)| pages.route(path, change))
        .layer(
            ServiceBuilder::new()
                .layer(header_layer(
                    header::CONTENT_SECURITY_POLICY,
                    CONTENT_SECURITY_POLICY,
                ))
                .layer(header_layer(header::X_FRAME_OPTIONS, "DENY"))
                .layer(header_layer(header::REFERRER_POLICY, "no-referrer"))
                .layer(header_layer(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .layer(header_layer(header::CACHE_CONTROL, "no-store"))
                .layer(
                    CsrfLayer::new().with_rejection_response(|_| PageError::csrf().into_response()),
                ),
        );
    pages.route("/assets/{name}", get(assets::serve))
}

fn header_layer(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}
