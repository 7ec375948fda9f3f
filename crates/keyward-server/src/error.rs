//! `ApiError`: every failure the HTTP interface answers with, as RFC 9457 problem+json.
//!
//! Each variant's doc comment says its status and stable `code`. 5xx answers say nothing
//! about their cause, which is logged once here; 4xx answers say what to fix.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::credential::ValidationError;
use keyward_core::rate_limit::RateDecision;
use keyward_core::verify::Outcome;
use keyward_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The realm announced in `WWW-Authenticate` challenges.
pub const REALM: &str = "keyward";

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 `unauthenticated`: no usable credential; `outcome` says why (`MISSING`,
    /// `MALFORMED`, `NOT_FOUND`, `DISABLED`, `REVOKED`, `EXPIRED`, `NOT_YET_VALID`).
    #[error("authentication failed: {0}")]
    Unauthenticated(Outcome),
    /// 403 `insufficient_scope`: the credential lacks the scope this operation needs.
    #[error("the credential lacks the scope {0}")]
    InsufficientScope(String),
    /// 403 `ip_denied` or `environment_mismatch`: the credential may not be used from here
    /// or for this environment.
    #[error("the credential may not be used here: {0}")]
    Forbidden(Outcome),
    /// 403 `privilege_escalation`: the change would give a credential scopes the caller lacks.
    #[error("privilege escalation refused: {0}")]
    Escalation(String),
    /// 403 `route_not_allowed`: `/v1/authorize` was asked about a request that no configured
    /// route matches, and unmatched requests are refused.
    #[error("no configured route allows this request")]
    RouteNotAllowed,
    /// 404 `not_found`: no such object in the caller's organization.
    #[error("not found")]
    NotFound,
    /// 400 with its own `code`: the request cannot be read (bad JSON, bad query parameter,
    /// two credentials in one request, …).
    #[error("{message}")]
    BadRequest {
        /// The stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 422 `validation_failed`: a field's value is not acceptable; the body names the field.
    #[error("{0}")]
    Validation(#[from] ValidationError),
    /// 409 with its own `code`: the object's state forbids the change (e.g. `credential_revoked`).
    #[error("{message}")]
    Conflict {
        /// The stable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// 413 `payload_too_large`: the body exceeds the limit.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 415 `unsupported_media_type`: the body is not `application/json`.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// 408 `request_timeout`: the request (its body included) took longer than allowed.
    #[error("the request took too long")]
    Timeout,
    /// 429 `too_many_failures`: this address failed to authenticate too often; the
    /// `Retry-After` header says when to try again.
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
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 503 `unavailable`: the store cannot be reached; retry later.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// 500 `internal`: a fault of Keyward's; the cause is only logged.
    #[error("internal error")]
    Internal,
}

/// An RFC 9457 problem document with Keyward's stable `code`.
#[derive(Debug, Serialize, ToSchema)]
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
    /// For authentication and authorization failures: the R-AUTH outcome code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// For validation failures: the field at fault and the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// The JSON field name.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ApiError {
    /// A 400 with a code and a message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The answer to a failed check of a presented credential; `demanded` names the
    /// scopes asked for, for the `insufficient_scope` challenge.
    pub fn from_outcome(outcome: Outcome, demanded: &str) -> Self {
        match outcome {
            o if o.is_authentication_failure() => ApiError::Unauthenticated(o),
            Outcome::InsufficientScope => ApiError::InsufficientScope(demanded.to_owned()),
            o => ApiError::Forbidden(o),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
            ApiError::Forbidden(Outcome::EnvironmentMismatch) => {
                (StatusCode::FORBIDDEN, "environment_mismatch")
            }
            ApiError::Forbidden(Outcome::RateLimited) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "ip_denied"),
            ApiError::Escalation(_) => (StatusCode::FORBIDDEN, "privilege_escalation"),
            ApiError::RouteNotAllowed => (StatusCode::FORBIDDEN, "route_not_allowed"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Timeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_failures"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::OrganizationRateLimited(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "organization_rate_limited")
            }
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The RFC 6750 challenge for authentication and scope failures.
    fn challenge(&self) -> Option<String> {
        match self {
            ApiError::Unauthenticated(Outcome::Missing) => {
                Some(format!("Bearer realm=\"{REALM}\""))
            }
            ApiError::Unauthenticated(_) => {
                Some(format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""))
            }
            ApiError::InsufficientScope(scope) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict {
                constraint: "version",
            } => ApiError::Conflict {
                code: "concurrent_update",
                message: "the object changed while this request was applied; retry".into(),
            },
            StoreError::Conflict { .. } => ApiError::Conflict {
                code: "conflict",
                message: "the request conflicts with an existing object".into(),
            },
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                ApiError::Unavailable
            }
            StoreError::Internal(cause) => {
                tracing::error!(error = %cause, "store failure");
                ApiError::Internal
            }
        }
    }
}

/// The problem document of an error, shared by the API and the fallback handlers.
pub fn problem(error: &ApiError) -> Problem {
    let (status, code) = error.status_and_code();
    let outcome = match error {
        ApiError::Unauthenticated(o) | ApiError::Forbidden(o) => Some(o.code()),
        ApiError::InsufficientScope(_) => Some(Outcome::InsufficientScope.code()),
        ApiError::Throttled(_)
        | ApiError::RateLimited(_)
        | ApiError::OrganizationRateLimited(_) => Some(Outcome::RateLimited.code()),
        _ => None,
    };
    let errors = match error {
        ApiError::Validation(v) => vec![FieldError {
            field: v.field,
            message: v.message.clone(),
        }],
        _ => Vec::new(),
    };
    Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail: error.to_string(),
        code,
        outcome,
        errors,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        if status.is_server_error() {
            tracing::debug!(status = status.as_u16(), "answered {status}");
        }
        let body = serde_json::to_vec(&problem(&self)).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = self
            .challenge()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        match &self {
            ApiError::Throttled(wait) => {
                headers.insert(header::RETRY_AFTER, retry_after(*wait));
            }
            ApiError::RateLimited(decision) => crate::gate::rate_limit_headers(decision, headers),
            ApiError::OrganizationRateLimited(wait) => {
                headers.insert(header::RETRY_AFTER, retry_after(*wait));
            }
            _ => {}
        }
        response
    }
}

/// A `Retry-After` value: whole seconds, rounded up, at least 1.
pub fn retry_after(wait: time::Duration) -> HeaderValue {
    HeaderValue::from(retry_after_seconds(wait))
}

/// Seconds to wait: rounded up (a client that waits them is never early), at least 1.
pub fn retry_after_seconds(wait: time::Duration) -> u64 {
    keyward_core::rate_limit::ceil_seconds(wait)
        .max(1)
        .unsigned_abs()
}
