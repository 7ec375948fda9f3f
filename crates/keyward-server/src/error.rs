//! `ApiError`: every failure the HTTP interface answers with, as RFC 9457 problem+json.
//!
//! Each variant's doc comment says its status and stable `code`. A request refused at
//! admission, or for want of the store, is a [`Refusal`], answered as the tower layer
//! answers it; management failures come from the service's [`ServiceError`]. 5xx answers
//! say nothing about their cause, which is logged once where it is met; 4xx answers say
//! what to fix.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_core::credential::ValidationError;
use keyward_core::verify::Outcome;
use keyward_gate::refusal::FieldError;
use keyward_gate::{Problem, Refusal};
use keyward_service::ServiceError;
use keyward_service::error::{Conflict, Forbidden};

/// Marks an answer refused with an outcome usage counts (a scope the credential lacks), for
/// the management routes' `caller::admission_layer` to count the request as such.
#[derive(Debug, Clone, Copy)]
pub struct RefusedAs(pub Outcome);

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400, 401, 403, 429, 500 or 503 as [`Refusal`] says: the request was not admitted
    /// (no usable credential, a scope or address it lacks, a limit it reached) or the store
    /// could not answer.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// 403 `privilege_escalation`: the change would give a credential scopes the caller lacks.
    #[error("privilege escalation refused: {0}")]
    Escalation(String),
    /// 403 `insufficient_role`: the signed-in member's role does not allow this.
    #[error("{0}")]
    InsufficientRole(String),
    /// 403 `route_not_allowed`: `/v1/authorize` was asked about a request that no configured
    /// route matches, and unmatched requests are refused.
    #[error("no configured route allows this request")]
    RouteNotAllowed,
    /// 404 `not_found`: no such object in the caller's organization.
    #[error("not found")]
    NotFound,
    /// 400 with its own `code`: the request cannot be read (bad JSON, bad query parameter,
    /// …).
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
    /// 403 `csrf_token_invalid`: a request made with a dashboard session lacks the
    /// session's CSRF token (a form's field, or the API's `X-CSRF-Token` header).
    #[error("the request does not carry this session's CSRF token")]
    Csrf,
    /// 403 `signature_invalid`: a signed report whose signature does not verify with a key
    /// this deployment trusts.
    #[error("the signature does not verify with a trusted key")]
    SignatureInvalid,
    /// 403 `api_key_required`: only the API key itself may do this, not an access token
    /// minted from it.
    #[error("this needs the API key itself, not an access token")]
    ApiKeyRequired,
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 414 `uri_too_long`: the request target exceeds the limit.
    #[error("the request target is longer than {0} bytes")]
    UriTooLong(usize),
    /// 431 `header_fields_too_large`: too many header fields, or too many bytes of them.
    #[error("{0}")]
    HeaderFieldsTooLarge(String),
}

impl ApiError {
    /// A 400 with a code and a message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 500: a fault of Keyward's.
    pub fn internal() -> Self {
        ApiError::Refused(Refusal::Internal)
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Refused(refusal) => refusal.status_and_code(),
            ApiError::Escalation(_) => (StatusCode::FORBIDDEN, "privilege_escalation"),
            ApiError::RouteNotAllowed => (StatusCode::FORBIDDEN, "route_not_allowed"),
            ApiError::InsufficientRole(_) => (StatusCode::FORBIDDEN, "insufficient_role"),
            ApiError::Csrf => (StatusCode::FORBIDDEN, "csrf_token_invalid"),
            ApiError::ApiKeyRequired => (StatusCode::FORBIDDEN, "api_key_required"),
            ApiError::SignatureInvalid => (StatusCode::FORBIDDEN, "signature_invalid"),
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
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ApiError::HeaderFieldsTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_fields_too_large",
            ),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Validation(error) => ApiError::Validation(error),
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::Forbidden(Forbidden::MissingScope(scope)) => {
                Refusal::InsufficientScope(scope).into()
            }
            ServiceError::Forbidden(Forbidden::Escalation(why)) => ApiError::Escalation(why),
            ServiceError::Forbidden(Forbidden::BadSignature) => ApiError::SignatureInvalid,
            ServiceError::Forbidden(forbidden @ Forbidden::Role { .. }) => {
                ApiError::InsufficientRole(forbidden.to_string())
            }
            ServiceError::Conflict(conflict) => {
                let code = match &conflict {
                    Conflict::CredentialRevoked => "credential_revoked",
                    Conflict::CredentialExists => "credential_exists",
                    Conflict::CredentialChanged => "credential_changed",
                    Conflict::ConcurrentUpdate => "concurrent_update",
                    Conflict::RuleLimit { .. } => "ip_rule_limit",
                    Conflict::RuleExists { .. } => "ip_rule_exists",
                    Conflict::RoleExists { .. } => "role_exists",
                    Conflict::WebhookLimit(_) => "webhook_limit",
                    Conflict::Duplicate => "conflict",
                    Conflict::LastOwner => "last_owner",
                };
                ApiError::Conflict {
                    code,
                    message: conflict.to_string(),
                }
            }
            ServiceError::Lockout { ip } => ApiError::Conflict {
                code: "lockout",
                message: format!(
                    "this change would shut out {ip}, the address making it; send \
                     confirm_lockout: true to apply it anyway"
                ),
            },
            ServiceError::Throttled(wait) => Refusal::Throttled(wait).into(),
            // The cause was logged where it was met; a client learns nothing of it.
            ServiceError::Unavailable(_) => Refusal::Unavailable.into(),
            ServiceError::Internal(_) => Refusal::Internal.into(),
        }
    }
}

/// The problem document of an error, shared by the API and the dashboard's error pages.
pub fn problem(error: &ApiError) -> Problem {
    if let ApiError::Refused(refusal) = error {
        return refusal.problem();
    }
    let (status, code) = error.status_and_code();
    let errors = match error {
        ApiError::Validation(v) => vec![FieldError {
            field: v.field,
            message: v.message.clone(),
        }],
        _ => Vec::new(),
    };
    Problem {
        errors,
        ..Problem::new(status, code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Refused(refusal) => {
                // A scope refusal of a management operation counts in the credential's
                // usage as what it is.
                let refused_as = matches!(refusal, Refusal::InsufficientScope(_))
                    .then_some(RefusedAs(Outcome::InsufficientScope));
                let mut response = refusal.into_response();
                if let Some(mark) = refused_as {
                    response.extensions_mut().insert(mark);
                }
                response
            }
            other => problem(&other).respond(None),
        }
    }
}
