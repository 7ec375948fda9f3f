//! Authenticating a request: finding the presented credential (R-AUTH transports) and
//! checking it against the store with the verification decision of `keyward-core`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use keyward_core::audit::Actor;
use keyward_core::credential::Credential;
use keyward_core::digest::LookupDigest;
use keyward_core::scope::{Scope, ScopeSet, builtin_role};
use keyward_core::secret::{SecretKind, parse_secret};
use keyward_core::typeid::OrganizationId;
use keyward_core::verify::{Outcome, Requirements, decide};
use keyward_store::StoreError;

use crate::error::ApiError;
use crate::state::AppState;

/// The header carrying an API key.
pub const API_KEY_HEADER: &str = "x-api-key";
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

/// Finds the one credential a request presents.
///
/// `X-Api-Key` and `Authorization: Bearer` (scheme case-insensitive) always count, and
/// `?api_key=` when `allow_query` is set. An `Authorization` header of another scheme is
/// the upstream API's business and is ignored. Two credentials, even equal ones, are a 400.
pub fn presented_credential(
    headers: &HeaderMap,
    query: Option<&str>,
    allow_query: bool,
) -> Result<Option<(String, Transport)>, ApiError> {
    let mut found: Vec<(String, Transport)> = Vec::new();
    let unreadable = || {
        ApiError::bad_request(
            "malformed_credential_header",
            "a credential header is not valid text",
        )
    };
    for value in headers.get_all(API_KEY_HEADER) {
        found.push((
            value.to_str().map_err(|_| unreadable())?.trim().to_owned(),
            Transport::Header,
        ));
    }
    for value in headers.get_all(header::AUTHORIZATION) {
        let text = value.to_str().map_err(|_| unreadable())?.trim();
        if let Some((scheme, token)) = text.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            found.push((token.trim().to_owned(), Transport::Bearer));
        } else if text.eq_ignore_ascii_case("bearer") {
            found.push((String::new(), Transport::Bearer));
        }
    }
    if allow_query && let Some(query) = query {
        for (name, value) in form_urlencoded_pairs(query) {
            if name == API_KEY_QUERY {
                found.push((value, Transport::Query));
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(ApiError::bad_request(
            "multiple_credentials",
            "send exactly one credential per request",
        )),
    }
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
}

/// A credential whose check passed, with its effective scopes.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The credential.
    pub credential: Credential,
    /// Its permissions together with its role's scopes.
    pub scopes: ScopeSet,
}

/// Why a check did not pass.
#[derive(Debug)]
pub enum CheckFailure {
    /// The decision was negative.
    Denied(Outcome),
    /// The store could not answer; the check fails closed.
    Store(StoreError),
}

impl From<CheckFailure> for ApiError {
    fn from(failure: CheckFailure) -> Self {
        match failure {
            CheckFailure::Denied(outcome) => ApiError::from_outcome(outcome),
            CheckFailure::Store(error) => error.into(),
        }
    }
}

/// The scopes a credential holds: its permissions and those of its role.
pub fn effective_scopes(state: &AppState, credential: &Credential) -> ScopeSet {
    let settings = &credential.settings;
    match settings
        .role
        .as_deref()
        .and_then(|role| builtin_role(&state.config.catalogue, role))
    {
        Some(role_scopes) => settings.permissions.union(&role_scopes),
        None => settings.permissions.clone(),
    }
}

/// Checks a presented API key: its format and checksum first (no store access for a
/// typo), then the store by lookup digest, the salted hash in constant time, and the
/// decision.
pub async fn check_api_key(
    state: &AppState,
    presented: &str,
    requirements: &Requirements<'_>,
) -> Result<Verified, CheckFailure> {
    match parse_secret(presented) {
        Ok(SecretKind::ApiKey(_)) => {}
        Ok(SecretKind::ClientSecret) | Err(_) => {
            return Err(CheckFailure::Denied(Outcome::Malformed));
        }
    }
    let found = state
        .store
        .credential_by_secret(&LookupDigest::of(presented))
        .await
        .map_err(CheckFailure::Store)?
        .filter(|found| found.kind == "api_key" && found.salted.matches(presented))
        .ok_or(CheckFailure::Denied(Outcome::NotFound))?;
    let scopes = effective_scopes(state, &found.credential);
    match decide(
        &found.credential,
        found.expires_at,
        &scopes,
        requirements,
        state.clock.now(),
    ) {
        Outcome::Valid => Ok(Verified {
            credential: found.credential,
            scopes,
        }),
        outcome => Err(CheckFailure::Denied(outcome)),
    }
}

/// The authenticated caller of a management API request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's credential and scopes.
    pub verified: Verified,
    /// How it is recorded in the audit log.
    pub actor: Actor,
}

impl Caller {
    /// The caller's organization: the only one it can see.
    pub fn organization_id(&self) -> &OrganizationId {
        &self.verified.credential.organization_id
    }

    /// Refuses with 403 `insufficient_scope` unless the caller holds `resource:action`.
    pub fn require(&self, resource: &str, action: &str) -> Result<(), ApiError> {
        let scope = Scope::exact(resource, action);
        if self.verified.scopes.grants(&scope) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(scope.to_string()))
        }
    }
}

/// The client address: the TCP peer, when the server was started with connect info.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
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
        let Some((secret, _transport)) = presented else {
            return Err(ApiError::Unauthenticated(Outcome::Missing));
        };
        let ip = client_ip(parts);
        let requirements = Requirements {
            client_ip: ip,
            ..Requirements::default()
        };
        let verified = check_api_key(state, &secret, &requirements).await?;
        let actor = Actor {
            id: verified.credential.id.to_string(),
            source_ip: ip,
        };
        Ok(Caller { verified, actor })
    }
}
