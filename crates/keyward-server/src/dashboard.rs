//! The dashboard (R-UI, seed 000): server-rendered pages where organization members manage
//! their credentials and IP rules.
//!
//! # Layout
//! - [`members`]: adding members, setting passwords, checking a login.
//! - [`session`]: session cookies, the signed-in member, CSRF tokens on every form.
//! - [`login`]: the login and logout pages.
//! - [`credentials`]: Developer → API Credentials: list, create, detail, disable, enable,
//!   revoke, rotate.
//! - [`chart`]: the usage chart, an SVG drawn here.
//! - [`security`]: Developer → API Security (the organization's IP rules) and the audit log.
//! - [`assets`]: the stylesheet, htmx and the dashboard's script, served from the binary.
//!
//! Templates (askama, escaped by default) are in `templates/`. Every page carries a strict
//! Content-Security-Policy: scripts and styles only from this origin, no inline script.

pub mod assets;
pub mod chart;
pub mod credentials;
pub mod login;
pub mod members;
pub mod security;
pub mod session;

use askama::Template;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use time::OffsetDateTime;
use tower::ServiceBuilder;
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::{ApiError, problem, retry_after};
use crate::state::AppState;

/// The policy of every dashboard answer: nothing runs or loads from anywhere but here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes, with their security headers and the Origin check.
pub fn routes() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to(credentials::LIST_PATH) }))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route(
            credentials::LIST_PATH,
            get(credentials::list).post(credentials::create),
        )
        .route("/developer/api-credentials/new", get(credentials::new_form))
        .route("/developer/api-credentials/{id}", get(credentials::detail))
        .route(
            "/developer/api-credentials/{id}/usage-chart",
            get(credentials::usage_chart),
        )
        .route(
            "/developer/api-credentials/{id}/rotate",
            post(credentials::rotate),
        )
        .route(
            "/developer/api-credentials/{id}/{action}",
            post(credentials::change_status),
        )
        .route(security::PATH, get(security::page).post(security::add_rule))
        .route(
            "/developer/api-security/rules/{id}/remove",
            post(security::remove_rule),
        )
        .route("/developer/audit-log", get(security::audit_log))
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

/// What the sidebar and header of every signed-in page need.
#[derive(Debug, Clone)]
pub struct Nav {
    /// Which sidebar entry is current: `credentials`, `security` or `audit`.
    pub active: &'static str,
    /// The member's email.
    pub email: String,
    /// The CSRF token for the logout form and the page's forms.
    pub csrf_token: String,
}

impl Nav {
    /// The navigation of `signed_in` with `active` highlighted.
    pub fn new(signed_in: &session::SignedIn, active: &'static str) -> Self {
        Self {
            active,
            email: signed_in.member.email.clone(),
            csrf_token: signed_in.csrf_token.clone(),
        }
    }
}

/// Renders a template as an HTML answer with `status`.
pub fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "a dashboard template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A failure shown as a page a person can read, with the status of the API's answer.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl PageError {
    /// A form whose CSRF token (or origin) does not match: 403.
    pub fn csrf() -> Self {
        Self(ApiError::Conflict {
            code: "csrf",
            message: String::new(),
        })
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<keyward_store::StoreError> for PageError {
    fn from(error: keyward_store::StoreError) -> Self {
        Self(error.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self.0 {
            ApiError::Conflict { code: "csrf", .. } => (
                StatusCode::FORBIDDEN,
                "This form cannot be accepted".to_owned(),
                "It has expired or did not come from this dashboard. Reload the page and try again."
                    .to_owned(),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found".to_owned(),
                "There is nothing here, or it belongs to another organization.".to_owned(),
            ),
            other => {
                let problem = problem(other);
                (
                    StatusCode::from_u16(problem.status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    problem.title.to_owned(),
                    problem.detail,
                )
            }
        };
        let mut response = render(status, &ErrorPage { title, message });
        if let ApiError::Throttled(wait) | ApiError::OrganizationRateLimited(wait) = &self.0 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after(*wait));
        }
        response
    }
}

/// A time as the dashboard shows it: `2026-11-23 07:12 UTC`.
pub fn display_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}
