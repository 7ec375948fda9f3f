//! Reading the presented credential (R-AUTH transports) and authenticating the caller of
//! the management API through the [`Verifier`](crate::verifier::Verifier).

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, header};
use keyward_core::audit::Actor;
use keyward_core::rate_limit::RateDecision;
use keyward_core::scope::Scope;
use keyward_core::typeid::OrganizationId;
use keyward_core::verify::Outcome;

use crate::client_ip::{client_address, peer};
use crate::error::ApiError;
use crate::gate::RateSlot;
use crate::state::AppState;
use crate::verifier::{Client, Demand, Denial, Identity, Purpose};

/// The path of the verification endpoint, whose callers are not rate-limited.
const VERIFY_PATH: &str = "/v1/keys/verify";

/// The header carrying an API key.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");
/// The query parameter carrying an API key, when the deployment allows it.
pub const API_KEY_QUERY: &str = "api_key";

/// How a credential reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `X-Api-Key: …`
    Header,
    /// `Authorization: Bearer …`
    Bearer,
    /// `?api_key=…` (only when enabled).
    Query,
}

/// Finds the one credential a request presents, borrowed from the request where it can be.
///
/// `X-Api-Key` and `Authorization: Bearer` (scheme case-insensitive) always count, and
/// `?api_key=` in `query` when `allow_query` is set. An `Authorization` header of another
/// scheme is the upstream API's business and is ignored. Two credentials, even equal ones,
/// are a 400.
pub fn presented_credential<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    allow_query: bool,
) -> Result<Option<(Cow<'a, str>, Transport)>, ApiError> {
    let mut found = None;
    let mut present = |secret: Cow<'a, str>, transport| {
        if found.replace((secret, transport)).is_some() {
            return Err(ApiError::bad_request(
                "multiple_credentials",
                "send exactly one credential per request",
            ));
        }
        Ok(())
    };
    for value in headers.get_all(API_KEY_HEADER) {
        present(text(value.as_bytes()), Transport::Header)?;
    }
    for value in headers.get_all(header::AUTHORIZATION) {
        let bytes = value.as_bytes().trim_ascii();
        let is_bearer = bytes.len() >= 6
            && bytes[..6].eq_ignore_ascii_case(b"bearer")
            && bytes.get(6).is_none_or(|b| *b == b' ');
        if is_bearer {
            present(text(&bytes[6..]), Transport::Bearer)?;
        }
    }
    if allow_query && let Some(query) = query {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default();
        for (name, value) in pairs {
            if name == API_KEY_QUERY {
                present(Cow::Owned(value), Transport::Query)?;
            }
        }
    }
    Ok(found)
}

/// A header's credential text, trimmed. A value that is not UTF-8 is still a presented
/// credential: it is read lossily and fails its format check (401 MALFORMED), never a 400.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text.trim()),
        Err(_) => Cow::Owned(String::from_utf8_lossy(bytes).trim().to_owned()),
    }
}

impl ApiError {
    /// The answer to a denied check; `demanded` names the scopes the check asked for.
    pub fn from_denial(denial: Denial, demanded: &str) -> Self {
        match denial {
            Denial::Outcome(outcome) => ApiError::from_outcome(outcome, demanded),
            Denial::Throttled(wait) => ApiError::Throttled(wait),
            Denial::RateLimited(decision) => ApiError::RateLimited(decision),
            Denial::Store(error) => error.into(),
        }
    }
}

/// The authenticated caller of a management API request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's credential and scopes.
    pub identity: Arc<Identity>,
    /// The state of its rate limit after this request (`None` for the callers of
    /// verification endpoints, which are not counted).
    pub rate: Option<RateDecision>,
    /// How it is recorded in the audit log.
    pub actor: Actor,
}

impl Caller {
    /// The caller's organization: the only one it can see.
    pub fn organization_id(&self) -> &OrganizationId {
        &self.identity.credential.organization_id
    }

    /// Refuses with 403 `insufficient_scope` unless the caller holds `resource:action`.
    pub fn require(&self, resource: &str, action: &str) -> Result<(), ApiError> {
        let scope = Scope::exact(resource, action);
        if self.identity.scopes.grants(&scope) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(scope.to_string()))
        }
    }
}

/// The client address of a request, trusted proxies considered.
pub fn request_client_ip(parts: &Parts, state: &AppState) -> Option<std::net::IpAddr> {
    request_client_ip_with(parts, &state.config.trusted_proxies)
}

/// The client address of a request given the trusted proxies.
pub fn request_client_ip_with(parts: &Parts, trusted: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
    client_address(peer(parts), &parts.headers, trusted)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = presented_credential(
            &parts.headers,
            parts.uri.query(),
            state.config.allow_query_api_key,
        )?;
        let Some((secret, transport)) = presented else {
            return Err(ApiError::Unauthenticated(Outcome::Missing));
        };
        let ip = request_client_ip(parts, state);
        let client = Client {
            ip,
            throttled: true,
            via_query: transport == Transport::Query,
        };
        // The caller of /v1/keys/verify asks for many requests; the keys it verifies are
        // what is counted.
        let purpose = if parts.uri.path() == VERIFY_PATH {
            Purpose::Verification
        } else {
            Purpose::Use
        };
        let demand = Demand {
            purpose,
            ..Demand::default()
        };
        let admitted = state
            .verifier
            .check(&secret, &demand, client)
            .await
            .map_err(|denial| ApiError::from_denial(denial, ""))?;
        if purpose == Purpose::Use {
            let ceiling = state.ceiling.check(
                &admitted.identity.credential.organization_id,
                state.clock.now(),
            );
            if !ceiling.allowed {
                return Err(ApiError::OrganizationRateLimited(ceiling.retry_after));
            }
        }
        if let (Some(rate), Some(slot)) = (&admitted.rate, parts.extensions.get::<RateSlot>()) {
            slot.fill(*rate);
        }
        let actor = Actor {
            id: admitted.identity.credential.id.to_string(),
            source_ip: ip,
        };
        Ok(Caller {
            identity: admitted.identity,
            rate: admitted.rate,
            actor,
        })
    }
}
