//! OAuth 2.0 client credentials over HTTP: the token endpoint's parameters and errors.
//! Issuing, checking and revoking tokens, and the keys that sign them, are the service's
//! and the engine's; this module speaks OAuth's wire format.
//!
//! - [`params`]: reading an OAuth request's parameters and client authentication.
//! - [`OAuthError`]: answers in OAuth's JSON error shape (RFC 6749 §5.2), never problem+json.

pub mod params;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_gate::headers::retry_after;
use serde::Serialize;

/// An OAuth error answer: `{"error": …, "error_description": …}` with `Cache-Control:
/// no-store` (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    /// 400 `invalid_request`: a missing, repeated or malformed parameter.
    InvalidRequest(&'static str),
    /// 401 `invalid_client` with `WWW-Authenticate: Basic`: one answer for every cause
    /// and either client authentication method.
    InvalidClient,
    /// 400 `unsupported_grant_type`.
    UnsupportedGrantType,
    /// 400 `invalid_scope`: a scope unknown or beyond the credential's.
    InvalidScope,
    /// 400 `unauthorized_client`: the client may not use this grant from here.
    UnauthorizedClient,
    /// 405 with `Allow: POST`.
    MethodNotAllowed,
    /// 429 with `Retry-After`: too many failed client authentications from this address.
    Throttled(time::Duration),
    /// 503: the store cannot be reached.
    Unavailable,
}

#[derive(Serialize)]
struct Body {
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'static str>,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, error, description) = match &self {
            OAuthError::InvalidRequest(why) => (StatusCode::BAD_REQUEST, "invalid_request", *why),
            OAuthError::InvalidClient => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ),
            OAuthError::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            ),
            OAuthError::InvalidScope => (
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "a requested scope is unknown or not held by the credential",
            ),
            OAuthError::UnauthorizedClient => (
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "this client may not obtain a token from this address",
            ),
            OAuthError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "use POST",
            ),
            OAuthError::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "too many failed client authentications from this address; retry later",
            ),
            OAuthError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the service is temporarily unavailable",
            ),
        };
        let body = Body {
            error,
            error_description: Some(description),
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        match self {
            OAuthError::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"keyward\", charset=\"UTF-8\""),
                );
            }
            OAuthError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            OAuthError::Throttled(wait) => {
                headers.insert(header::RETRY_AFTER, retry_after(wait));
            }
            _ => {}
        }
        response
    }
}

/// Marks an answer as not to be stored (`Cache-Control: no-store`, `Pragma: no-cache`).
pub fn no_store(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}
