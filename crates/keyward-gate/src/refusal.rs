//! [`Refusal`]: why a request was not admitted, answered as an RFC 9457 problem+json
//! document ([`Problem`]) with Keyward's stable `code`, the RFC 6750 challenge of an
//! authentication or scope failure, and `Retry-After` or `RateLimit-*` where a wait is
//! asked. 5xx answers say nothing about their cause, which is logged where it is met.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::rate_limit::RateDecision;
use keyward_core::scope::Scope;
use keyward_core::verify::Outcome;
use keyward_engine::Denial;
use keyward_store::StoreError;
use serde::Serialize;

use crate::headers::{rate_limit_headers, retry_after};

/// The realm announced in `WWW-Authenticate` challenges.
pub const REALM: &str = "keyward";

/// Why a request was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// 400 `multiple_credentials`: the request presents more than one credential.
    #[error("send exactly one credential per request")]
    MultipleCredentials,
    /// 401 `unauthenticated`: no usable credential; the outcome says why (`MISSING`,
    /// `MALFORMED`, `NOT_FOUND`, `DISABLED`, `REVOKED`, `EXPIRED`, `NOT_YET_VALID`).
    #[error("authentication failed: {0}")]
    Unauthenticated(Outcome),
    /// 403 `insufficient_scope`: the credential lacks a scope this request needs (the
    /// scopes demanded, space-separated).
    #[error("the credential lacks the scope {0}")]
    InsufficientScope(String),
    /// 403 `ip_denied` or `environment_mismatch`: the credential may not be used from here
    /// or for this environment.
    #[error("the credential may not be used here: {0}")]
    Forbidden(Outcome),
    /// 429 `too_many_failures`: this address failed to authenticate too often;
    /// `Retry-After` says when to try again.
    #[error("too many failed attempts from this address; retry later")]
    Throttled(time::Duration),
    /// 429 `rate_limited`: the credential's rate limit refused the request; `Retry-After`
    /// and the `RateLimit-*` headers say more.
    #[error("the credential's rate limit is exhausted; retry later")]
    RateLimited(RateDecision),
    /// 429 `organization_rate_limited`: the organization's management requests together
    /// reached its ceiling; `Retry-After` says when to try again.
    #[error("the organization's management API requests exceed its ceiling; retry later")]
    OrganizationRateLimited(time::Duration),
    /// 503 `unavailable`: the store cannot be reached; the check fails closed. Retry later.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// 500 `internal`: a fault of Keyward's; the cause is only logged.
    #[error("internal error")]
    Internal,
}

/// An RFC 9457 problem document with Keyward's stable `code`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// Always `about:blank`: `code` carries the kind.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The HTTP status phrase.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// For authentication and authorization failures: the outcome code of the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// For validation failures: the field at fault and the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The JSON field name.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// The document of a failure answered with `status` and `code`, described by `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: String) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code,
            outcome: None,
            errors: Vec::new(),
        }
    }

    /// The answer: this document as `application/problem+json`, with its status and the
    /// `WWW-Authenticate` challenge when there is one.
    pub fn respond(self, challenge: Option<String>) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::debug!(status = status.as_u16(), "answered {status}");
        }
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl Refusal {
    /// The refusal of a denied check; `demanded` are the scopes the check asked for, named
    /// in the `insufficient_scope` challenge.
    pub fn from_denial(denial: Denial, demanded: &[Scope]) -> Self {
        match denial {
            Denial::Outcome(outcome) => Refusal::from_outcome(outcome, || {
                let demanded: Vec<String> = demanded.iter().map(ToString::to_string).collect();
                demanded.join(" ")
            }),
            Denial::Throttled(wait) => Refusal::Throttled(wait),
            Denial::RateLimited(decision) => Refusal::RateLimited(decision),
            Denial::Ceiling(wait) => Refusal::OrganizationRateLimited(wait),
            Denial::Store(error) => error.into(),
        }
    }

    /// The refusal of a negative outcome; `demanded` names the scopes asked for.
    pub fn from_outcome(outcome: Outcome, demanded: impl FnOnce() -> String) -> Self {
        match outcome {
            o if o.is_authentication_failure() => Refusal::Unauthenticated(o),
            Outcome::InsufficientScope => Refusal::InsufficientScope(demanded()),
            o => Refusal::Forbidden(o),
        }
    }

    /// The HTTP status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Refusal::MultipleCredentials => (StatusCode::BAD_REQUEST, "multiple_credentials"),
            Refusal::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Refusal::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
            Refusal::Forbidden(Outcome::EnvironmentMismatch) => {
                (StatusCode::FORBIDDEN, "environment_mismatch")
            }
            Refusal::Forbidden(Outcome::RateLimited) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            Refusal::Forbidden(_) => (StatusCode::FORBIDDEN, "ip_denied"),
            Refusal::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_failures"),
            Refusal::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Refusal::OrganizationRateLimited(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "organization_rate_limited")
            }
            Refusal::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Refusal::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The outcome code a problem document names: why the check failed.
    fn outcome(&self) -> Option<&'static str> {
        match self {
            Refusal::Unauthenticated(o) | Refusal::Forbidden(o) => Some(o.code()),
            Refusal::InsufficientScope(_) => Some(Outcome::InsufficientScope.code()),
            Refusal::Throttled(_)
            | Refusal::RateLimited(_)
            | Refusal::OrganizationRateLimited(_) => Some(Outcome::RateLimited.code()),
            _ => None,
        }
    }

    /// The RFC 6750 challenge of an authentication or scope failure.
    fn challenge(&self) -> Option<String> {
        match self {
            Refusal::Unauthenticated(Outcome::Missing) => Some(format!("Bearer realm=\"{REALM}\"")),
            Refusal::Unauthenticated(_) => {
                Some(format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""))
            }
            Refusal::InsufficientScope(scope) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            _ => None,
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let (status, code) = self.status_and_code();
        Problem {
            outcome: self.outcome(),
            ..Problem::new(status, code, self.to_string())
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = self.problem().respond(self.challenge());
        let headers = response.headers_mut();
        match &self {
            Refusal::Throttled(wait) | Refusal::OrganizationRateLimited(wait) => {
                headers.insert(header::RETRY_AFTER, retry_after(*wait));
            }
            Refusal::RateLimited(decision) => rate_limit_headers(decision, headers),
            _ => {}
        }
        response
    }
}

impl From<StoreError> for Refusal {
    /// A store that failed a check: the check fails closed. The cause is logged here, once.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                Refusal::Unavailable
            }
            StoreError::Internal(cause) => {
                tracing::error!(error = %cause, "store failure");
                Refusal::Internal
            }
            // A check only reads: a read answers neither of these.
            other @ (StoreError::NotFound | StoreError::Conflict(_)) => {
                tracing::error!(error = %other, "unexpected store answer to a check");
                Refusal::Internal
            }
        }
    }
}
