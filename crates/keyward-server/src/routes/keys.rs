//! `/v1/keys`: the credential lifecycle over HTTP.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::credential::{Credential, DisplayStatus, Environment};
use keyward_core::typeid::CredentialId;
use keyward_store::CredentialQuery;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, OptionalApiJson};
use crate::lifecycle::{
    self, Authority, CreateKeyRequest, Issued, RotateKeyRequest, StatusChange, UpdateKeyRequest,
};
use crate::routes::{page_size, rfc3339, split_page};
use crate::state::AppState;

/// A credential as shown after creation: every field but the secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyResponse {
    /// `api_key_…`: the id used to manage the credential.
    pub key_id: String,
    /// The organization id, which is the OAuth client id.
    pub client_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `live` or `test`.
    pub environment: &'static str,
    /// Scopes granted directly.
    pub permissions: Vec<String>,
    /// Role whose scopes are granted too.
    pub role: Option<String>,
    /// Requests per second instead of the environment default; null = default.
    pub rate_limit_override: Option<u32>,
    /// Allowed addresses and ranges; empty = any.
    pub ip_allowlist: Vec<String>,
    /// Returned on every successful verification.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// External id of the end customer.
    pub owner_id: Option<String>,
    /// Start of validity (RFC 3339).
    pub not_before: Option<String>,
    /// Expiry (RFC 3339); null = never.
    pub expires_at: Option<String>,
    /// `active`, `disabled`, `revoked` or `expired`.
    pub status: &'static str,
    /// `{prefix}_{env}_` of the API key.
    pub prefix: String,
    /// Last four characters of the API key.
    pub hint: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Revocation time (RFC 3339).
    pub revoked_at: Option<String>,
    /// When a check last accepted it (RFC 3339; written in batches within seconds, and
    /// kept to the second: uses less than a second apart count as one).
    pub last_used_at: Option<String>,
    /// The address of that check.
    pub last_used_ip: Option<String>,
}

impl KeyResponse {
    /// The view of a credential at `now` (which decides `expired`).
    pub fn new(credential: &Credential, now: time::OffsetDateTime) -> Self {
        let s = &credential.settings;
        Self {
            key_id: credential.id.to_string(),
            client_id: credential.organization_id.to_string(),
            name: s.name.clone(),
            description: s.description.clone(),
            environment: credential.environment.as_str(),
            permissions: s.permissions.to_strings(),
            role: s.role.clone(),
            rate_limit_override: s.rate_limit_override,
            ip_allowlist: s.ip_allowlist.iter().map(ToString::to_string).collect(),
            metadata: s.metadata.clone(),
            owner_id: s.owner_id.clone(),
            not_before: s.not_before.map(rfc3339),
            expires_at: s.expires_at.map(rfc3339),
            status: credential.display_status(now).as_str(),
            prefix: credential.prefix.clone(),
            hint: credential.hint.clone(),
            created_at: rfc3339(credential.created_at),
            created_by: credential.created_by.clone(),
            updated_at: rfc3339(credential.updated_at),
            revoked_at: credential.revoked_at.map(rfc3339),
            last_used_at: credential.last_used_at.map(rfc3339),
            last_used_ip: credential.last_used_ip.map(|ip| ip.to_string()),
        }
    }
}

/// A credential with its secrets: the only answer that ever contains them.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyResponse {
    /// The API key, for `X-Api-Key` or `Authorization: Bearer`. Shown only this once.
    pub key: String,
    /// The OAuth client secret, used with `client_id`. Shown only this once.
    pub client_secret: String,
    /// When the previous secrets stop working (rotation only; null = they already have).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secrets_expire_at: Option<String>,
    /// The credential.
    #[serde(flatten)]
    pub credential: KeyResponse,
}

impl CreatedKeyResponse {
    fn new(issued: &Issued, now: time::OffsetDateTime) -> Self {
        Self {
            key: issued.api_key.expose().to_owned(),
            client_secret: issued.client_secret.expose().to_owned(),
            previous_secrets_expire_at: None,
            credential: KeyResponse::new(&issued.credential, now),
        }
    }

    /// The answer, marked so that no cache keeps the secrets.
    fn into_response_with(self, status: StatusCode) -> Response {
        let mut response = (status, Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// Filters and page of the key listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListKeysQuery {
    /// `active`, `disabled`, `revoked` or `expired`.
    pub status: Option<String>,
    /// `live` or `test`.
    pub environment: Option<String>,
    /// Only the keys of this end customer.
    pub owner_id: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
}

/// A page of credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPage {
    /// The credentials, newest first.
    pub data: Vec<KeyResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The caller's credential `id`, once the caller is found to hold `keys:read`; another
/// organization's, or one that cannot exist, is 404.
pub async fn readable_credential(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Credential, ApiError> {
    caller.require("keys", "read")?;
    state
        .store
        .credential(caller.organization_id(), &key_id(id)?)
        .await?
        .ok_or(ApiError::NotFound)
}

/// The credential id of a path; one that cannot exist is 404.
fn key_id(text: &str) -> Result<CredentialId, ApiError> {
    // An id that cannot exist is simply not found, like another organization's id.
    CredentialId::parse(text).map_err(|_| ApiError::NotFound)
}

fn invalid_query(message: &str) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// Create a credential: an API key and an OAuth client secret, each returned only in this
/// answer. Needs `keys:write`, and the new credential's scopes must be within the caller's.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKeyRequest,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 201, body = CreatedKeyResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    caller.require("keys", "write")?;
    let authority = Authority::Caller(&caller.identity);
    let issued = lifecycle::create(
        &state,
        caller.organization_id(),
        &caller.actor,
        authority,
        request,
    )
    .await?;
    Ok(CreatedKeyResponse::new(&issued, state.clock.now()).into_response_with(StatusCode::CREATED))
}

/// List the organization's credentials, newest first, with cursor pagination. Needs `keys:read`.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(ListKeysQuery),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListKeysQuery>,
) -> Result<Json<KeyPage>, ApiError> {
    caller.require("keys", "read")?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            DisplayStatus::parse(s).ok_or_else(|| {
                invalid_query("status: must be active, disabled, revoked or expired")
            })
        })
        .transpose()?;
    let environment = query
        .environment
        .as_deref()
        .map(|e| {
            Environment::parse(e).ok_or_else(|| invalid_query("environment: must be live or test"))
        })
        .transpose()?;
    let before = query
        .cursor
        .as_deref()
        .map(|c| {
            CredentialId::parse(c)
                .map_err(|_| invalid_query("cursor: not a cursor of this listing"))
        })
        .transpose()?;
    let limit = page_size(query.limit)?;
    let now = state.clock.now();
    let credentials = state
        .store
        .list_credentials(
            caller.organization_id(),
            &CredentialQuery {
                status,
                environment,
                owner_id: query.owner_id,
                before,
                limit: limit + 1,
                now,
            },
        )
        .await?;
    let (credentials, next_cursor) = split_page(credentials, limit, |c| c.id.to_string());
    Ok(Json(KeyPage {
        data: credentials
            .iter()
            .map(|c| KeyResponse::new(c, now))
            .collect(),
        next_cursor,
    }))
}

/// Read one credential (never its secrets). Needs `keys:read`.
#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path, description = "`api_key_…`")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyResponse>, ApiError> {
    let credential = readable_credential(&state, &caller, &id).await?;
    Ok(Json(KeyResponse::new(&credential, state.clock.now())))
}

/// Change a credential: absent fields stay, `null` clears. Atomic and effective at once.
/// Needs `keys:write`; neither the credential's current nor its new scopes may exceed the
/// caller's.
#[utoipa::path(patch, path = "/v1/keys/{id}", tag = "keys", request_body = UpdateKeyRequest,
    params(("id" = String, Path, description = "`api_key_…`")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateKeyRequest>,
) -> Result<Json<KeyResponse>, ApiError> {
    caller.require("keys", "write")?;
    let authority = Authority::Caller(&caller.identity);
    let id = key_id(&id)?;
    let credential = lifecycle::update(
        &state,
        caller.organization_id(),
        &id,
        &caller.actor,
        authority,
        request,
    )
    .await?;
    Ok(Json(KeyResponse::new(&credential, state.clock.now())))
}

async fn change_status(
    state: AppState,
    caller: Caller,
    id: String,
    change: StatusChange,
) -> Result<Json<KeyResponse>, ApiError> {
    caller.require("keys", "write")?;
    let authority = Authority::Caller(&caller.identity);
    let id = key_id(&id)?;
    let credential = lifecycle::set_status(
        &state,
        caller.organization_id(),
        &id,
        &caller.actor,
        authority,
        change,
    )
    .await?;
    Ok(Json(KeyResponse::new(&credential, state.clock.now())))
}

/// Disable a credential: refused from now on, until enabled again. Idempotent. Needs `keys:write`.
#[utoipa::path(post, path = "/v1/keys/{id}/disable", tag = "keys", params(("id" = String, Path, description = "`api_key_…`")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyResponse>, ApiError> {
    change_status(state, caller, id, StatusChange::Disable).await
}

/// Enable a disabled credential. Idempotent. Needs `keys:write` and the credential's scopes.
#[utoipa::path(post, path = "/v1/keys/{id}/enable", tag = "keys", params(("id" = String, Path, description = "`api_key_…`")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyResponse>, ApiError> {
    change_status(state, caller, id, StatusChange::Enable).await
}

/// Revoke a credential: refused from now on, for good. Idempotent and irreversible.
/// Needs `keys:write`.
#[utoipa::path(post, path = "/v1/keys/{id}/revoke", tag = "keys", params(("id" = String, Path, description = "`api_key_…`")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyResponse>, ApiError> {
    change_status(state, caller, id, StatusChange::Revoke).await
}

/// Rotate a credential's secrets: a new API key and client secret, returned only in this
/// answer. The old ones stop at once, or after `grace_period_seconds` (≤ 7 days, never past
/// the credential's expiry). Needs `keys:write` and the credential's scopes.
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys", request_body(content = RotateKeyRequest, description = "optional"),
    params(("id" = String, Path, description = "`api_key_…`")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = CreatedKeyResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalApiJson(request): OptionalApiJson<RotateKeyRequest>,
) -> Result<Response, ApiError> {
    caller.require("keys", "write")?;
    let authority = Authority::Caller(&caller.identity);
    let id = key_id(&id)?;
    let (issued, old_until) = lifecycle::rotate(
        &state,
        caller.organization_id(),
        &id,
        &caller.actor,
        authority,
        request,
    )
    .await?;
    let mut body = CreatedKeyResponse::new(&issued, state.clock.now());
    body.previous_secrets_expire_at = old_until.map(rfc3339);
    Ok(body.into_response_with(StatusCode::OK))
}
