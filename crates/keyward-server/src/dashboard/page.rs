//! What every dashboard page shares: the navigation of a signed-in member, rendering a
//! template, the error page, and how times are shown.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use keyward_core::member::{MEMBERS_RESOURCE, MemberRole};
use keyward_gate::Refusal;
use keyward_gate::headers::retry_after;
use keyward_service::ServiceError;
use time::OffsetDateTime;

use crate::dashboard::derived::Derived;
use crate::error::{ApiError, problem};

/// What the sidebar and header of every signed-in page need.
#[derive(Debug, Clone)]
pub struct Nav {
    /// Which sidebar entry is current: `credentials`, `security`, `audit`, `webhooks`,
    /// `members` or `account`.
    pub active: &'static str,
    /// The member's email.
    pub email: String,
    /// The member's role: a page offers only what it allows.
    pub role: MemberRole,
    /// The CSRF token for the logout form and the page's forms.
    pub csrf_token: Derived,
}

impl Nav {
    /// Whether the member may change credentials, rules and webhooks (not a viewer).
    pub fn writes(&self) -> bool {
        self.role.allows("keys", "write")
    }

    /// Whether the member may invite, change and remove members.
    pub fn manages_members(&self) -> bool {
        self.role.allows(MEMBERS_RESOURCE, "write")
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
        Self(ApiError::Csrf)
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<ServiceError> for PageError {
    fn from(error: ServiceError) -> Self {
        Self(error.into())
    }
}

impl From<Refusal> for PageError {
    fn from(refusal: Refusal) -> Self {
        Self(refusal.into())
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
            ApiError::Csrf => (
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
        if let ApiError::Refused(
            Refusal::Throttled(wait) | Refusal::OrganizationRateLimited(wait),
        ) = &self.0
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after(*wait));
        }
        response
    }
}

/// The day a date field holds (`2026-06-01`), if it holds one.
pub fn parse_day(text: &str) -> Option<time::Date> {
    time::Date::parse(
        text.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
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
