//! Admitting a request to a protected API — the decision `/v1/authorize` and the tower
//! layer share: read the presented credential, find the client address, check it with the
//! [`Verifier`], and answer either the identity or the refusal (401, 403 or 429 with their
//! RFC 6750 headers, as problem+json).

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use keyward_core::credential::Environment;
use keyward_core::scope::Scope;
use keyward_core::verify::Outcome;

use crate::auth::{presented_credential, request_client_ip_with};
use crate::error::ApiError;
use crate::state::ServerConfig;
use crate::verifier::{Client, Demand, Identity, Verifier};

/// Response headers naming the admitted credential, for the API behind the gate.
pub const KEY_ID_HEADER: &str = "x-keyward-key-id";
/// The credential's organization.
pub const ORGANIZATION_HEADER: &str = "x-keyward-organization";
/// `live` or `test`.
pub const ENVIRONMENT_HEADER: &str = "x-keyward-environment";
/// Every scope held, space-separated.
pub const SCOPES_HEADER: &str = "x-keyward-scopes";
/// The end customer's id, when the credential has one.
pub const OWNER_HEADER: &str = "x-keyward-owner-id";

/// Checks the credential a request presents for `scopes` and `environment`. `query` is the
/// query string where `?api_key=` may be found (the original request's, behind a proxy).
pub async fn admit(
    verifier: &Verifier,
    config: &ServerConfig,
    parts: &Parts,
    query: Option<&str>,
    scopes: &[Scope],
    environment: Option<Environment>,
) -> Result<Arc<Identity>, ApiError> {
    let presented = presented_credential(&parts.headers, query, config.allow_query_api_key)?;
    let Some((secret, _transport)) = presented else {
        return Err(ApiError::Unauthenticated(Outcome::Missing));
    };
    let client = Client {
        ip: request_client_ip_with(parts, &config.trusted_proxies),
        throttled: true,
    };
    let demand = Demand {
        scopes,
        environment,
        organization: None,
        any_address: false,
    };
    verifier
        .check(&secret, &demand, client)
        .await
        .map_err(|denial| {
            let demanded: Vec<String> = scopes.iter().map(ToString::to_string).collect();
            ApiError::from_denial(denial, &demanded.join(" "))
        })
}

/// The identity headers of an admitted credential.
pub fn identity_headers(identity: &Identity) -> HeaderMap {
    let c = &identity.credential;
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put(KEY_ID_HEADER, c.id.as_str());
    put(ORGANIZATION_HEADER, c.organization_id.as_str());
    put(ENVIRONMENT_HEADER, c.environment.as_str());
    put(SCOPES_HEADER, identity.scopes_text());
    if let Some(owner) = &c.settings.owner_id {
        put(OWNER_HEADER, owner);
    }
    headers
}
