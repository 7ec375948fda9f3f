//! `POST /v1/keys/verify`: the API beside Keyward asks whether a key its client presented
//! is good (like Unkey's verify): always 200 with `valid` and a `code`.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use keyward_core::credential::Environment;
use keyward_core::rate_limit::{RateDecision, ceil_seconds};
use keyward_core::scope::Scope;
use keyward_core::verify::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, Problem, retry_after_seconds};
use crate::extract::ApiJson;
use crate::lifecycle::EnvironmentName;
use crate::routes::rfc3339;
use crate::state::AppState;
use crate::verifier::{Client, Demand, Denial, Purpose};
use keyward_core::credential::ValidationError;

/// The body of `POST /v1/keys/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The API key the client presented.
    pub key: String,
    /// Scopes the request needs, e.g. `["dns:write"]`.
    pub required_scopes: Option<Vec<String>>,
    /// The environment the key must belong to.
    pub environment: Option<EnvironmentName>,
    /// The client's address, checked against the key's allowlist and the organization's
    /// IP rules; failures from it count towards brute-force protection.
    pub client_ip: Option<String>,
}

/// The answer: always 200 once the caller is authenticated.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether the key may be used for this request.
    pub valid: bool,
    /// `VALID` or the reason it may not: `MALFORMED`, `NOT_FOUND`, `DISABLED`, `REVOKED`,
    /// `EXPIRED`, `NOT_YET_VALID`, `IP_DENIED`, `INSUFFICIENT_SCOPE`,
    /// `ENVIRONMENT_MISMATCH`, `RATE_LIMITED`.
    pub code: &'static str,
    /// For a throttled client address: seconds until it may try again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The credential (`api_key_…`), when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// `live` or `test`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<&'static str>,
    /// Every scope it holds (permissions and role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Its metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Its owner id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Its expiry (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Its rate limit after this request, when one applied (valid, or `RATE_LIMITED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitState>,
}

/// A credential's rate limit as a verification left it (the `RateLimit-*` values).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct RateLimitState {
    /// Requests allowed at once (the burst).
    pub limit: u32,
    /// Requests left at once.
    pub remaining: u32,
    /// Seconds until the limit is whole again.
    pub reset: i64,
}

impl From<&RateDecision> for RateLimitState {
    fn from(decision: &RateDecision) -> Self {
        Self {
            limit: decision.limit,
            remaining: decision.remaining,
            reset: ceil_seconds(decision.reset),
        }
    }
}

fn invalid(code: Outcome) -> VerifyResponse {
    VerifyResponse {
        valid: false,
        code: code.code(),
        ..Default::default()
    }
}

/// Verify an API key for a request: its status, validity window, address, environment and
/// scopes. Always 200 with `valid` and `code` (the reason when not valid). The caller needs
/// `keys:verify` and can only verify its own organization's keys (others are `NOT_FOUND`).
#[utoipa::path(post, path = "/v1/keys/verify", tag = "verification", request_body = VerifyRequest,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = VerifyResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    caller.require("keys", "verify")?;
    let scopes: Vec<Scope> = request
        .required_scopes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|s| state.config.catalogue.parse(s))
        .collect::<Result<_, _>>()
        .map_err(|e| ValidationError::new("required_scopes", e.to_string()))?;
    let ip = request
        .client_ip
        .as_deref()
        .map(|text| text.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()))
        .transpose()
        .map_err(|_| ValidationError::new("client_ip", "must be an IP address"))?;
    let demand = Demand {
        scopes: &scopes,
        environment: request.environment.map(Environment::from),
        organization: Some(caller.organization_id()),
        purpose: Purpose::Use,
    };
    let client = Client {
        ip,
        throttled: ip.is_some(),
        via_query: false,
    };
    let response = match state.verifier.check(&request.key, &demand, client).await {
        Ok(admitted) => {
            let identity = &admitted.identity;
            let c = &identity.credential;
            VerifyResponse {
                rate_limit: admitted.rate.as_ref().map(RateLimitState::from),
                valid: true,
                code: Outcome::Valid.code(),
                retry_after: None,
                key_id: Some(c.id.to_string()),
                name: Some(c.settings.name.clone()),
                organization_id: Some(c.organization_id.to_string()),
                environment: Some(c.environment.as_str()),
                scopes: Some(identity.scopes.to_strings()),
                metadata: Some(c.settings.metadata.clone()),
                owner_id: c.settings.owner_id.clone(),
                expires_at: c.settings.expires_at.map(rfc3339),
            }
        }
        Err(Denial::Outcome(outcome)) => invalid(outcome),
        Err(Denial::Throttled(wait)) => VerifyResponse {
            retry_after: Some(retry_after_seconds(wait)),
            ..invalid(Outcome::RateLimited)
        },
        Err(Denial::RateLimited(decision)) => VerifyResponse {
            retry_after: Some(retry_after_seconds(decision.retry_after)),
            rate_limit: Some(RateLimitState::from(&decision)),
            ..invalid(Outcome::RateLimited)
        },
        Err(Denial::Store(error)) => return Err(error.into()),
    };
    Ok(Json(response))
}
