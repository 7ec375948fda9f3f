//! OAuth 2.0 client credentials: the token endpoint, the JWKS and metadata
//! documents, introspection (RFC 7662), revocation (RFC 7009), and the record of the
//! calling credential. OAuth endpoints answer errors in OAuth's JSON shape
//! ([`OAuthError`]), every answer with `Cache-Control: no-store`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::Json;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use keyward_core::clock::rfc3339;
use keyward_core::typeid::OrganizationId;
use keyward_core::verify::Outcome;
use keyward_engine::{Admitted, Client, Demand, Denial, Identity, Purpose};
use keyward_gate::Problem;
use keyward_service::principal::{Authority, VerifyKeys};
use keyward_service::tokens::TokenFailure;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::caller::KeyCaller;
use crate::error::ApiError;
use crate::json::KeyResponse;
use crate::oauth::params::{self, ClientCredentials, Params};
use crate::oauth::{OAuthError, no_store};
use crate::openapi::values::{GrantType, TokenScope};
use crate::state::AppState;

/// A successful token answer (RFC 6749 §5.1); there is never a refresh token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT access token (RFC 9068).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

/// The parameters of a token request (RFC 6749 §4.4.2), form-encoded or a JSON object of
/// strings. An empty value counts as absent; a repeated one is `invalid_request`.
#[derive(Debug, ToSchema)]
pub struct TokenRequest {
    /// `client_credentials`, the only grant.
    #[schema(value_type = GrantType)]
    pub grant_type: String,
    /// The organization id, with `client_secret` (`client_secret_post`) unless HTTP Basic
    /// authenticates the client.
    #[schema(nullable = false)]
    pub client_id: Option<String>,
    /// A client secret of one of the organization's credentials, never with HTTP Basic.
    #[schema(nullable = false)]
    pub client_secret: Option<String>,
    /// Scopes of the credential's, separated by spaces, that the token is to hold instead of
    /// all of them.
    #[schema(value_type = Option<TokenScope>, nullable = false)]
    pub scope: Option<String>,
    /// Any other parameter is ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, String>,
}

/// The parameters of an introspection or revocation request (RFC 7662 §2.1, RFC 7009
/// §2.1), form-encoded or a JSON object of strings. An empty value counts as absent; a
/// repeated one is `invalid_request`.
#[derive(Debug, ToSchema)]
pub struct TokenQuestion {
    /// The access token (or, for introspection, API key) asked about.
    #[schema(min_length = 1)]
    pub token: String,
    /// The organization id, with `client_secret`, when the client authenticates in the body.
    #[schema(nullable = false)]
    pub client_id: Option<String>,
    /// A client secret of one of the organization's credentials, never with HTTP Basic.
    #[schema(nullable = false)]
    pub client_secret: Option<String>,
    /// Any other parameter (`token_type_hint`) is ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, String>,
}

/// An OAuth error answer (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope`,
    /// `unauthorized_client` or `temporarily_unavailable`.
    pub error: String,
    /// What went wrong, for a person.
    pub error_description: Option<String>,
}

/// Exchange client credentials for an access token (`grant_type=client_credentials`).
///
/// The client id is the organization id and the client secret one of its credentials'.
/// Authenticate with HTTP Basic (`client_secret_basic`) or `client_id` and `client_secret`
/// in the body (`client_secret_post`), form-encoded or JSON. `scope` (space-separated)
/// narrows the credential's scopes. Every failure of client authentication gets the same
/// `invalid_client` answer.
#[utoipa::path(post, path = "/v1/auth/token", tag = "oauth", operation_id = "token",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    security(("oauth_client" = []), ()),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = OAuthErrorBody),
        (status = 401, body = OAuthErrorBody),
        (status = 405, body = OAuthErrorBody),
        (status = 429, body = OAuthErrorBody),
        (status = 503, body = OAuthErrorBody),
    ))]
pub async fn token(State(state): State<AppState>, request: Request) -> Response {
    match issue(&state, request).await {
        Ok(answer) => answer,
        Err(error) => error.into_response(),
    }
}

/// The OAuth endpoints take POST only: any other method is answered in OAuth's shape.
pub async fn post_only() -> OAuthError {
    OAuthError::MethodNotAllowed
}

async fn read_request(
    state: &AppState,
    request: Request,
) -> Result<(Parts, Params, Option<IpAddr>), OAuthError> {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, state.config.body_limit_bytes)
        .await
        .map_err(|_| OAuthError::InvalidRequest("the body is too large or cut short"))?;
    let params = params::read(&parts.headers, parts.uri.query(), &bytes)?;
    let ip = state.gate.client_ip(&parts);
    Ok((parts, params, ip))
}

/// Authenticates the client of an OAuth request.
async fn authenticate(
    state: &AppState,
    credentials: &ClientCredentials,
    ip: Option<IpAddr>,
) -> Result<Admitted, OAuthError> {
    let client = Client {
        ip,
        throttled: true,
        via_query: false,
    };
    state
        .engine
        .check_client(&credentials.client_id, &credentials.client_secret, client)
        .await
        .map_err(|denial| match denial {
            Denial::Throttled(wait) => OAuthError::Throttled(wait),
            Denial::RateLimited(decision) => OAuthError::Throttled(decision.retry_after),
            Denial::Store(_) | Denial::Ceiling(_) => OAuthError::Unavailable,
            Denial::Outcome(Outcome::IpDenied) => OAuthError::UnauthorizedClient,
            Denial::Outcome(_) => OAuthError::InvalidClient,
        })
}

async fn issue(state: &AppState, request: Request) -> Result<Response, OAuthError> {
    let (parts, params, ip) = read_request(state, request).await?;
    let grant_type = params
        .get("grant_type")
        .ok_or(OAuthError::InvalidRequest("grant_type is required"))?;
    let credentials = params::client_credentials(&parts.headers, &params)?;
    let client = authenticate(state, &credentials, ip).await?;
    if grant_type != "client_credentials" {
        return Err(OAuthError::UnsupportedGrantType);
    }
    let issued = state
        .service
        .tokens()
        .issue(&client, params.get("scope"))
        .await
        .map_err(|failure| match failure {
            TokenFailure::InvalidScope => OAuthError::InvalidScope,
            TokenFailure::Unavailable => OAuthError::Unavailable,
        })?;
    let body = TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: issued.scope,
    };
    let mut answer = Json(body).into_response();
    no_store(answer.headers_mut());
    Ok(answer)
}

/// The public signing keys (JWKS): every key that signs or signed a token still valid, and
/// the next one before it signs.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "oauth", operation_id = "jwks",
    responses((status = 200, description = "A JSON Web Key Set", content_type = "application/json", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    match state.service.tokens().keys().await {
        Ok(ring) => {
            let mut answer = (
                [(header::CONTENT_TYPE, "application/json")],
                ring.jwks().to_string(),
            )
                .into_response();
            let max_age = format!("public, max-age={}", state.config.jwks_max_age.as_secs());
            if let Ok(value) = HeaderValue::from_str(&max_age) {
                answer.headers_mut().insert(header::CACHE_CONTROL, value);
            }
            answer
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The authorization server metadata (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    operation_id = "authorization_server_metadata",
    responses((status = 200, description = "RFC 8414 metadata", content_type = "application/json", body = Object)))]
pub async fn metadata(State(state): State<AppState>) -> Json<Value> {
    let issuer = state.engine.config().tokens.issuer.trim_end_matches('/');
    let methods = ["client_secret_basic", "client_secret_post"];
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/v1/auth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{issuer}/v1/auth/introspect"),
        "revocation_endpoint": format!("{issuer}/v1/auth/revoke"),
        "grant_types_supported": ["client_credentials"],
        // Required by RFC 8414 even without an authorization endpoint; `none` (OAuth 2.0
        // Multiple Response Types) is the registered value that issues nothing there.
        "response_types_supported": ["none"],
        "token_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "scopes_supported": state.engine.config().catalogue.resources().map(|(r, _)| format!("{r}:*")).collect::<Vec<_>>(),
        "service_documentation": format!("{issuer}/docs"),
    }))
}

/// The organization a caller of introspection speaks for: an API key or access token
/// holding `keys:verify`, or client authentication.
async fn introspecting_organization(
    state: &AppState,
    parts: &Parts,
    params: &Params,
    ip: Option<IpAddr>,
) -> Result<OrganizationId, Response> {
    // A credential in the headers, never the query: the body carries the token asked about.
    let demand = Demand {
        purpose: Purpose::Verification,
        ..Demand::default()
    };
    let admitted = state
        .gate
        .admit_if_presented(parts, None, &demand)
        .await
        .map_err(IntoResponse::into_response)?;
    if let Some(admitted) = admitted {
        let identity = &admitted.identity;
        Authority::Credential(identity)
            .require::<VerifyKeys>()
            .map_err(|error| ApiError::from(error).into_response())?;
        return Ok(identity.credential.organization_id.clone());
    }
    let credentials =
        params::client_credentials(&parts.headers, params).map_err(IntoResponse::into_response)?;
    let client = authenticate(state, &credentials, ip)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(client.identity.credential.organization_id.clone())
}

/// Introspect a token (RFC 7662): an access token or API key of the caller's organization.
///
/// The caller authenticates with an API key or access token holding `keys:verify`, or as
/// an OAuth client. Anything not active — unknown, expired, revoked, another
/// organization's, garbage — is `{"active": false}` and nothing else.
#[utoipa::path(post, path = "/v1/auth/introspect", tag = "oauth", operation_id = "introspect",
    request_body(content(
        (TokenQuestion = "application/x-www-form-urlencoded"),
        (TokenQuestion = "application/json"),
    )),
    security(("api_key" = []), ("bearer" = []), ("oauth_client" = []), ()),
    responses(
        (status = 200, description = "`active` and, when active, the token's claims", body = Object),
        (status = 400, body = OAuthErrorBody),
        (status = 401, body = OAuthErrorBody),
        (status = 429, body = OAuthErrorBody),
        (status = 503, body = OAuthErrorBody),
    ))]
pub async fn introspect(State(state): State<AppState>, request: Request) -> Response {
    let (parts, params, ip) = match read_request(&state, request).await {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    let organization = match introspecting_organization(&state, &parts, &params, ip).await {
        Ok(org) => org,
        Err(mut answer) => {
            no_store(answer.headers_mut());
            return answer;
        }
    };
    let Some(presented) = params.get("token") else {
        return OAuthError::InvalidRequest("token is required").into_response();
    };
    let demand = Demand {
        organization: Some(&organization),
        purpose: Purpose::Inspection,
        ..Demand::default()
    };
    let client = Client {
        ip: None,
        throttled: false,
        via_query: false,
    };
    let body = match state.engine.check(presented, &demand, client).await {
        Ok(admitted) => active(&admitted.identity, &state),
        Err(_) => json!({ "active": false }),
    };
    let mut answer = Json(body).into_response();
    no_store(answer.headers_mut());
    answer
}

fn active(identity: &Identity, state: &AppState) -> Value {
    let credential = &identity.credential;
    let mut body = Map::new();
    body.insert("active".into(), json!(true));
    body.insert("scope".into(), json!(identity.scopes_text()));
    body.insert(
        "client_id".into(),
        json!(credential.organization_id.as_str()),
    );
    body.insert("sub".into(), json!(credential.id.as_str()));
    body.insert("env".into(), json!(credential.environment.as_str()));
    match &identity.token {
        Some(claims) => {
            body.insert("token_type".into(), json!("Bearer"));
            body.insert("exp".into(), json!(claims.exp));
            body.insert("iat".into(), json!(claims.iat));
            body.insert("jti".into(), json!(claims.jti));
            body.insert("iss".into(), json!(claims.iss));
            body.insert("aud".into(), json!(claims.aud));
        }
        None => {
            body.insert("token_type".into(), json!("api_key"));
            if let Some(exp) = credential.settings.expires_at {
                body.insert("exp".into(), json!(exp.unix_timestamp()));
            }
            body.insert("iat".into(), json!(credential.created_at.unix_timestamp()));
            body.insert("iss".into(), json!(state.engine.config().tokens.issuer));
        }
    }
    Value::Object(body)
}

/// Revoke an access token (RFC 7009): it is refused at once on this node and within the
/// cache interval on every other.
///
/// The caller authenticates as an OAuth client. The answer is 200 for the client's own
/// tokens and equally for unknown, expired, another organization's or garbage tokens.
#[utoipa::path(post, path = "/v1/auth/revoke", tag = "oauth", operation_id = "revoke_token",
    request_body(content(
        (TokenQuestion = "application/x-www-form-urlencoded"),
        (TokenQuestion = "application/json"),
    )),
    security(("oauth_client" = []), ()),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, body = OAuthErrorBody),
        (status = 401, body = OAuthErrorBody),
        (status = 429, body = OAuthErrorBody),
        (status = 503, body = OAuthErrorBody),
    ))]
pub async fn revoke(State(state): State<AppState>, request: Request) -> Response {
    match revoke_token(&state, request).await {
        Ok(()) => {
            let mut answer = ().into_response();
            no_store(answer.headers_mut());
            answer
        }
        Err(error) => error.into_response(),
    }
}

async fn revoke_token(state: &AppState, request: Request) -> Result<(), OAuthError> {
    let (parts, params, ip) = read_request(state, request).await?;
    let credentials = params::client_credentials(&parts.headers, &params)?;
    let client = authenticate(state, &credentials, ip).await?;
    let presented = params
        .get("token")
        .ok_or(OAuthError::InvalidRequest("token is required"))?;
    state
        .service
        .tokens()
        .revoke(&client.identity, presented, ip)
        .await
        .map_err(|_| OAuthError::Unavailable)
}

/// The calling credential, as `client_credentials/introspect` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallerRecord {
    /// The credential.
    pub credential: KeyResponse,
    /// The scopes this request holds: the credential's, or the token's narrower ones.
    pub scopes: Vec<String>,
    /// `api_key` or `access_token`.
    pub authenticated_with: &'static str,
    /// The access token's expiry (RFC 3339), when one was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<String>,
}

/// The record of the credential making the call (`client_credentials/introspect`),
/// authenticated by its API key or an access token.
#[utoipa::path(get, path = "/v1/auth/client_credentials/introspect", tag = "oauth",
    operation_id = "caller_record",
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = CallerRecord),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn caller_record(State(state): State<AppState>, caller: KeyCaller) -> Response {
    let identity = &caller.identity;
    let record = CallerRecord {
        credential: KeyResponse::new(&identity.credential, state.clock.now()),
        scopes: identity.scopes.to_strings(),
        authenticated_with: if identity.token.is_some() {
            "access_token"
        } else {
            "api_key"
        },
        token_expires_at: identity.token.as_ref().and_then(|claims| {
            time::OffsetDateTime::from_unix_timestamp(claims.exp)
                .ok()
                .map(rfc3339)
        }),
    };
    let mut answer = Json(record).into_response();
    no_store(answer.headers_mut());
    answer
}
