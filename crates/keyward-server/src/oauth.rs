//! OAuth 2.0 client credentials (R-OAUTH): the token endpoint's parameters and errors, JWT
//! access tokens (RFC 9068) and the keys that sign them.
//!
//! - [`keys`]: signing keys, sealed at rest, published, rotated.
//! - [`token`]: issuing and checking access tokens.
//! - [`params`]: reading an OAuth request's parameters and client authentication.
//! - [`OAuthError`]: answers in OAuth's JSON error shape (RFC 6749 §5.2), never problem+json.

pub mod keys;
pub mod params;
pub mod token;

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::oauth::keys::{MasterKey, SigningAlgorithm};

/// OAuth settings.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The `iss` of issued tokens and of the metadata document: this deployment's public
    /// URL, e.g. `https://auth.example.com`.
    pub issuer: String,
    /// The `aud` of issued tokens: the API they are for.
    pub audience: String,
    /// How long an access token lives.
    pub token_lifetime: Duration,
    /// Clock skew tolerated on `exp`.
    pub leeway: Duration,
    /// The algorithm of keys made from now on.
    pub algorithm: SigningAlgorithm,
    /// How often a new signing key is made.
    pub rotation_interval: Duration,
    /// How long a new key is published before it signs: longer than `jwks_max_age` plus
    /// `key_refresh_interval`, so every cache has it before its first token.
    pub publish_lead: Duration,
    /// How long clients may cache the JWKS.
    pub jwks_max_age: Duration,
    /// How often a node re-reads the signing keys.
    pub key_refresh_interval: Duration,
    /// Seals signing keys at rest.
    pub master_key: MasterKey,
}

impl Default for OAuthConfig {
    /// The defaults, with a random master key that lives as long as the process (the
    /// binary always sets one from its file or environment).
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".to_owned(),
            audience: "keyward".to_owned(),
            token_lifetime: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
            algorithm: SigningAlgorithm::Es256,
            rotation_interval: Duration::from_secs(30 * 24 * 3600),
            publish_lead: Duration::from_secs(600),
            jwks_max_age: Duration::from_secs(300),
            key_refresh_interval: Duration::from_secs(10),
            master_key: MasterKey::generate(),
        }
    }
}

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
                headers.insert(header::RETRY_AFTER, crate::error::retry_after(wait));
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
