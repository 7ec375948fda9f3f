//! `POST /v1/keys/verify`: the API beside Keyward asks whether a key its client presented
//! is good (like Unkey's verify): always 200 with `valid` and a `code`.

use std::net::IpAddr;

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use keyward_core::clock::rfc3339;
use keyward_core::credential::{Environment, ValidationError};
use keyward_core::rate_limit::{RateDecision, ceil_seconds};
use keyward_core::scope::Scope;
use keyward_core::typeid::OrganizationId;
use keyward_core::verify::Outcome;
use keyward_engine::{Client, Demand, Denial, Identity, Purpose};
use keyward_gate::headers::retry_after_seconds;
use keyward_gate::{Problem, Refusal};
use keyward_service::principal::{Authority, VerifyKeys};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::answers::with_verify_members;
use crate::caller::{KeyCaller, Verification};
use crate::error::ApiError;
use crate::extract::{JsonBody, parse_json};
use crate::json::EnvironmentName;
use crate::openapi::values::{IpAddress, ScopeName};
use crate::state::AppState;

/// The body of `POST /v1/keys/verify`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest<'a> {
    /// The API key the client presented.
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub key: Cow<'a, str>,
    /// Scopes the request needs, e.g. `["dns:write"]`.
    #[schema(value_type = Option<Vec<ScopeName>>)]
    pub required_scopes: Option<Vec<String>>,
    /// The environment the key must belong to.
    pub environment: Option<EnvironmentName>,
    /// The client's address, checked against the key's allowlist and the organization's
    /// IP rules; failures from it count towards brute-force protection.
    #[schema(value_type = Option<IpAddress>)]
    pub client_ip: Option<String>,
}

/// Everything but the key.
impl std::fmt::Debug for VerifyRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("required_scopes", &self.required_scopes)
            .field("environment", &self.environment)
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}

/// The answer: always 200 once the caller is authenticated.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct VerifyResponse<'a> {
    /// Whether the key may be used for this request.
    pub valid: bool,
    /// `VALID` or the reason it may not: `MALFORMED`, `NOT_FOUND`, `DISABLED`, `REVOKED`,
    /// `EXPIRED`, `NOT_YET_VALID`, `IP_DENIED`, `INSUFFICIENT_SCOPE`,
    /// `ENVIRONMENT_MISMATCH`, `RATE_LIMITED`.
    pub code: &'static str,
    /// For a throttled client address: seconds until it may try again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The credential, when valid.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = VerifiedIdentity)]
    pub identity: Option<VerifiedIdentity<'a>>,
    /// Its rate limit after this request, when one applied (valid, or `RATE_LIMITED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitState>,
}

/// What a valid key's answer says about its credential (absent from other answers).
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifiedIdentity<'a> {
    /// The credential (`api_key_…`).
    #[schema(required = false)]
    pub key_id: &'a str,
    /// Its name.
    #[schema(required = false)]
    pub name: &'a str,
    /// Its organization.
    #[schema(required = false)]
    pub organization_id: &'a str,
    /// `live` or `test`.
    #[schema(required = false)]
    pub environment: &'static str,
    /// Every scope it holds (permissions and role).
    #[schema(required = false)]
    pub scopes: Vec<String>,
    /// Its metadata.
    #[schema(value_type = Object, required = false)]
    pub metadata: &'a Map<String, Value>,
    /// Its owner id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<&'a str>,
    /// Its expiry (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl<'a> VerifiedIdentity<'a> {
    fn of(identity: &'a Identity) -> Self {
        let credential = &identity.credential;
        Self {
            key_id: credential.id.as_str(),
            name: &credential.settings.name,
            organization_id: credential.organization_id.as_str(),
            environment: credential.environment.as_str(),
            scopes: identity.scopes.to_strings(),
            metadata: &credential.settings.metadata,
            owner_id: credential.settings.owner_id.as_deref(),
            expires_at: credential.settings.expires_at.map(rfc3339),
        }
    }
}

/// The identity's members of a valid answer (`"key_id":…,"expires_at":…`, without
/// braces).
fn identity_members(identity: &Identity) -> Box<str> {
    let object = serde_json::to_string(&VerifiedIdentity::of(identity)).unwrap_or_default();
    object
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_default()
        .into()
}

/// The body of a valid answer: what serializing its [`VerifyResponse`] gives, with the
/// identity's members copied in as they were serialized once.
fn valid_body(members: &str, rate: Option<&RateDecision>) -> Vec<u8> {
    let mut body = Vec::with_capacity(members.len() + 96);
    body.extend_from_slice(br#"{"valid":true,"code":"VALID""#);
    if !members.is_empty() {
        body.push(b',');
        body.extend_from_slice(members.as_bytes());
    }
    if let Some(rate) = rate {
        // As serializing `RateLimitState` writes it (a test compares the two), without
        // serde's per-field work: this is every valid verification's answer.
        let state = RateLimitState::from(rate);
        let mut number = itoa::Buffer::new();
        body.extend_from_slice(br#","rate_limit":{"limit":"#);
        body.extend_from_slice(number.format(state.limit).as_bytes());
        body.extend_from_slice(br#","remaining":"#);
        body.extend_from_slice(number.format(state.remaining).as_bytes());
        body.extend_from_slice(br#","reset":"#);
        body.extend_from_slice(number.format(state.reset).as_bytes());
        body.push(b'}');
    }
    body.push(b'}');
    body
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

fn invalid(code: Outcome) -> VerifyResponse<'static> {
    VerifyResponse {
        valid: false,
        code: code.code(),
        ..Default::default()
    }
}

/// What checking a presented key found: the key admitted, or the answer saying why not.
pub enum Verdict {
    /// The key may be used for the request.
    Admitted(keyward_engine::Admitted),
    /// It may not, and why.
    Refused(VerifyResponse<'static>),
}

impl Verdict {
    /// The answer's JSON.
    pub fn body(&self) -> Vec<u8> {
        match self {
            Self::Admitted(admitted) => {
                let identity = &admitted.identity;
                with_verify_members(
                    identity,
                    || identity_members(identity),
                    |members| valid_body(members, admitted.rate.as_ref()),
                )
            }
            Self::Refused(response) => serde_json::to_vec(response).unwrap_or_default(),
        }
    }
}

/// Checks the presented key for the caller's organization as `request` asks (scopes,
/// environment, client address): what `POST /v1/keys/verify` and the MCP `verify_key` tool
/// answer. The check is a use of the key like any other: it is counted in its usage and
/// its rate limit, and failures from a client address count towards that address's
/// brute-force protection. Keys of other organizations are `NOT_FOUND`.
pub async fn judge(
    state: &AppState,
    organization: &OrganizationId,
    request: &VerifyRequest<'_>,
) -> Result<Verdict, ApiError> {
    let scopes: Vec<Scope> = request
        .required_scopes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|s| state.engine.config().catalogue.parse(s))
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
        organization: Some(organization),
        purpose: Purpose::Use,
    };
    let client = Client {
        ip,
        throttled: ip.is_some(),
        via_query: false,
    };
    let refused = match state.engine.check(&request.key, &demand, client).await {
        Ok(admitted) => return Ok(Verdict::Admitted(admitted)),
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
        // The store failed (a verified key's check is a use: it meets no ceiling).
        Err(denial @ (Denial::Store(_) | Denial::Ceiling(_))) => {
            return Err(Refusal::from_denial(denial, &scopes).into());
        }
    };
    Ok(Verdict::Refused(refused))
}

/// Verify an API key for a request: its status, validity window, address, environment and
/// scopes. Always 200 with `valid` and `code` (the reason when not valid). The caller needs
/// `keys:verify` and can only verify its own organization's keys (others are `NOT_FOUND`).
#[utoipa::path(post, path = "/v1/keys/verify", tag = "verification", operation_id = "verify_key",
    request_body = VerifyRequest,
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
    caller: KeyCaller<Verification>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    Authority::Credential(&caller.identity).require::<VerifyKeys>()?;
    let request: VerifyRequest<'_> = parse_json(&body)?;
    let verdict = judge(&state, caller.organization_id(), &request).await?;
    Ok(([(header::CONTENT_TYPE, JSON)], verdict.body()).into_response())
}

/// The media type of the answers.
const JSON: HeaderValue = HeaderValue::from_static("application/json");

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn a_valid_body_is_what_serializing_its_answer_gives() {
        let metadata: Map<String, Value> =
            serde_json::from_str(r#"{"plan":"pro","note":"a \"quoted\" é"}"#).unwrap();
        let identity = VerifiedIdentity {
            key_id: "api_key_01jxe20q5hf9p4bm3kfz7v0w6t",
            name: "customer \"one\"",
            organization_id: "organization_01jxe20q5hf9p4bm3kfz7v0w6t",
            environment: "live",
            scopes: vec!["dns:*".into(), "read".into()],
            metadata: &metadata,
            owner_id: Some("cust-1"),
            expires_at: Some("2027-01-01T00:00:00Z".into()),
        };
        let object = serde_json::to_string(&identity).unwrap();
        let members = &object[1..object.len() - 1];
        let rate = RateDecision {
            allowed: true,
            limit: 100,
            remaining: 99,
            reset: Duration::milliseconds(20),
            retry_after: Duration::ZERO,
        };
        for rate in [Some(rate), None] {
            let expected = serde_json::to_vec(&VerifyResponse {
                valid: true,
                code: "VALID",
                retry_after: None,
                identity: Some(VerifiedIdentity {
                    scopes: identity.scopes.clone(),
                    expires_at: identity.expires_at.clone(),
                    ..identity
                }),
                rate_limit: rate.as_ref().map(RateLimitState::from),
            })
            .unwrap();
            let body = valid_body(members, rate.as_ref());
            assert_eq!(
                String::from_utf8(body).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
}
