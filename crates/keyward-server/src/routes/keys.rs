//! `/v1/keys`: the credential lifecycle over HTTP.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::clock::rfc3339;
use keyward_core::credential::{DisplayStatus, Environment, ValidationError, validate_owner_id};
use keyward_core::typeid::CredentialId;
use keyward_service::ServiceError;
use keyward_service::credentials::{
    CredentialChange, CredentialFilter, Issued, NewCredential, Rotation, StatusChange,
};
use keyward_service::principal::{Permit, ReadKeys, WriteKeys};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::caller::{Caller, KeyCaller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, OptionalApiJson};
use crate::json::{
    EnvironmentName, KeyResponse, WholeNumber, not_null, or_empty, present, present_time,
};
use crate::openapi::values::{
    Description, IpNetwork, KeyCursor, KeyId, KeyStatusName, Name, OwnerId, RoleReference,
    ScopeName, SecretStateName, Time,
};
use crate::routes::{page_size, split_page};
use crate::state::AppState;
use keyward_gate::Problem;

/// The body of `POST /v1/keys`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A descriptive name, 1–100 characters (required).
    #[schema(value_type = Name, required = true)]
    pub name: Option<String>,
    /// Notes about the credential's purpose, up to 1,000 characters.
    #[schema(value_type = Option<Description>)]
    pub description: Option<String>,
    /// `live` (default) or `test`.
    pub environment: Option<EnvironmentName>,
    /// Scopes, e.g. `["dns:read", "domains:*"]`.
    #[schema(value_type = Option<Vec<ScopeName>>)]
    pub permissions: Option<Vec<String>>,
    /// A role whose scopes the credential also holds.
    #[schema(value_type = Option<RoleReference>)]
    pub role: Option<String>,
    /// Requests per second instead of the environment's default.
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 1_000_000)]
    pub rate_limit_override: Option<WholeNumber<u64>>,
    /// Addresses and CIDR ranges allowed to use the credential, at most 100.
    #[schema(value_type = Option<Vec<IpNetwork>>, max_items = 100)]
    pub ip_allowlist: Option<Vec<String>>,
    /// A JSON object (≤ 16 KB) returned on every successful verification.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// An external id grouping the keys of one end customer.
    #[schema(value_type = Option<OwnerId>)]
    pub owner_id: Option<String>,
    /// RFC 3339 time before which the credential is not valid; before `expires_at`.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<Time>)]
    pub not_before: Option<OffsetDateTime>,
    /// RFC 3339 expiry, in the future; absent or null means never.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<Time>)]
    pub expires_at: Option<OffsetDateTime>,
}

/// The body of `PATCH /v1/keys/{id}`: fields left out stay as they are; `null` clears a
/// field that may be empty and is refused (422) for one that may not (`name`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    /// New name; cannot be `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Name, required = false)]
    pub name: Option<Option<String>>,
    /// New description; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Description>)]
    pub description: Option<Option<String>>,
    /// New scopes (replacing the old ones); `null` is none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<ScopeName>>)]
    pub permissions: Option<Option<Vec<String>>>,
    /// New role; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RoleReference>)]
    pub role: Option<Option<String>>,
    /// New rate limit; `null` returns to the environment's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 1_000_000)]
    pub rate_limit_override: Option<Option<WholeNumber<u64>>>,
    /// New allowlist (replacing the old one), at most 100; `[]` or `null` allows every
    /// address.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<IpNetwork>>, max_items = 100)]
    pub ip_allowlist: Option<Option<Vec<String>>>,
    /// New metadata (replacing the old object); `null` empties it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<Value>>,
    /// New owner id; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<OwnerId>)]
    pub owner_id: Option<Option<String>>,
    /// New start of validity (RFC 3339), before the expiry; `null` clears it.
    #[serde(default, deserialize_with = "present_time")]
    #[schema(value_type = Option<Time>)]
    pub not_before: Option<Option<OffsetDateTime>>,
    /// New expiry (RFC 3339), in the future; `null` means never.
    #[serde(default, deserialize_with = "present_time")]
    #[schema(value_type = Option<Time>)]
    pub expires_at: Option<Option<OffsetDateTime>>,
}

/// The body of `POST /v1/keys/{id}/rotate`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// How long the old API key and client secret keep working: 0 (default, at once) to
    /// 604800 (7 days), never past the credential's own expiry.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 604_800)]
    pub grace_period_seconds: Option<WholeNumber<i64>>,
}

impl TryFrom<CreateKeyRequest> for NewCredential {
    type Error = ValidationError;

    fn try_from(request: CreateKeyRequest) -> Result<Self, ValidationError> {
        Ok(NewCredential {
            id: None,
            name: request
                .name
                .ok_or_else(|| ValidationError::new("name", "is required"))?,
            description: request.description,
            environment: request.environment.unwrap_or_default().into(),
            permissions: request.permissions.unwrap_or_default(),
            role: request.role,
            rate_limit_override: request.rate_limit_override.map(WholeNumber::into_inner),
            ip_allowlist: request.ip_allowlist.unwrap_or_default(),
            metadata: request.metadata,
            owner_id: request.owner_id,
            not_before: request.not_before,
            expires_at: request.expires_at,
        })
    }
}

impl TryFrom<UpdateKeyRequest> for CredentialChange {
    type Error = ValidationError;

    fn try_from(request: UpdateKeyRequest) -> Result<Self, ValidationError> {
        Ok(CredentialChange {
            name: not_null("name", request.name)?,
            description: request.description,
            permissions: or_empty(request.permissions, Vec::new),
            role: request.role,
            rate_limit_override: request
                .rate_limit_override
                .map(|limit| limit.map(WholeNumber::into_inner)),
            ip_allowlist: or_empty(request.ip_allowlist, Vec::new),
            metadata: or_empty(request.metadata, || Value::Object(Default::default())),
            owner_id: request.owner_id,
            not_before: request.not_before,
            expires_at: request.expires_at,
            expected_version: None,
        })
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
    fn new(issued: &Issued, now: OffsetDateTime) -> Self {
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
    #[param(inline, value_type = Option<KeyStatusName>)]
    pub status: Option<String>,
    /// `live` or `test`.
    #[param(inline, value_type = Option<EnvironmentName>)]
    pub environment: Option<String>,
    /// Only the keys of this end customer.
    #[param(inline, value_type = Option<OwnerId>)]
    pub owner_id: Option<String>,
    /// Only keys whose id or owner id is this text, or whose name holds it (letters
    /// compared without case); 1–200 characters, never a secret (`POST /v1/keys/lookup`
    /// finds a secret's key by its hash).
    #[param(min_length = 1, max_length = 200)]
    pub search: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(inline, value_type = Option<KeyCursor>)]
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
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

fn invalid_query(message: &str) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// Create a credential: an API key and an OAuth client secret, each returned only in this
/// answer. Needs `keys:write`, and the new credential's scopes must be within the caller's.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", operation_id = "create_key", request_body = CreateKeyRequest,
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
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
    let permit = caller.principal().permit::<WriteKeys>()?;
    let issued = state
        .service
        .credentials()
        .create(&permit, NewCredential::try_from(request)?)
        .await?;
    Ok(CreatedKeyResponse::new(&issued, state.clock.now()).into_response_with(StatusCode::CREATED))
}

/// List the organization's credentials, newest first, with cursor pagination. Needs `keys:read`.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", operation_id = "list_keys", params(ListKeysQuery),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
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
    let permit = caller.principal().permit::<ReadKeys>()?;
    Ok(Json(page(&state, &permit, query).await?))
}

/// The page of the organization's keys `query` asks for: what `GET /v1/keys` and the MCP
/// `list_keys` tool answer.
pub async fn page(
    state: &AppState,
    permit: &Permit<'_, ReadKeys>,
    query: ListKeysQuery,
) -> Result<KeyPage, ApiError> {
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
    let owner_id = query
        .owner_id
        .map(|o| validate_owner_id(Some(&o)).map(|_| o))
        .transpose()
        .map_err(|e| invalid_query(&e.to_string()))?;
    let limit = page_size(query.limit)?;
    let filter = CredentialFilter {
        status,
        environment,
        owner_id,
        before,
        search: query.search,
        limit: limit + 1,
        ..CredentialFilter::default()
    };
    let credentials = state
        .service
        .credentials()
        .list(permit, filter)
        .await
        .map_err(|error| match error {
            // The one field the service checks here is the search: a query parameter.
            ServiceError::Validation(invalid) => invalid_query(&invalid.to_string()),
            other => other.into(),
        })?;
    let now = state.clock.now();
    let (credentials, next_cursor) = split_page(credentials, limit, |c| c.id.to_string());
    Ok(KeyPage {
        data: credentials
            .iter()
            .map(|c| KeyResponse::new(c, now))
            .collect(),
        next_cursor,
    })
}

/// Read one credential (never its secrets). Needs `keys:read`.
#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys", operation_id = "get_key", params(("id" = inline(KeyId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
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
    let permit = caller.principal().permit::<ReadKeys>()?;
    let credential = state.service.credentials().get(&permit, &id).await?;
    Ok(Json(KeyResponse::new(&credential, state.clock.now())))
}

/// Change a credential: absent fields stay, `null` clears. Atomic and effective at once.
/// Needs `keys:write`; neither the credential's current nor its new scopes may exceed the
/// caller's.
#[utoipa::path(patch, path = "/v1/keys/{id}", tag = "keys", operation_id = "update_key", request_body = UpdateKeyRequest,
    params(("id" = inline(KeyId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
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
    let permit = caller.principal().permit::<WriteKeys>()?;
    let credential = state
        .service
        .credentials()
        .update(&permit, &id, request.try_into()?)
        .await?;
    Ok(Json(KeyResponse::new(&credential, state.clock.now())))
}

async fn change_status(
    state: AppState,
    caller: Caller,
    id: String,
    change: StatusChange,
) -> Result<Json<KeyResponse>, ApiError> {
    let permit = caller.principal().permit::<WriteKeys>()?;
    let credential = state
        .service
        .credentials()
        .set_status(&permit, &id, change)
        .await?;
    Ok(Json(KeyResponse::new(&credential, state.clock.now())))
}

/// Disable a credential: refused from now on, until enabled again. Idempotent. Needs `keys:write`.
#[utoipa::path(post, path = "/v1/keys/{id}/disable", tag = "keys", operation_id = "disable_key", params(("id" = inline(KeyId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
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
#[utoipa::path(post, path = "/v1/keys/{id}/enable", tag = "keys", operation_id = "enable_key", params(("id" = inline(KeyId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
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
#[utoipa::path(post, path = "/v1/keys/{id}/revoke", tag = "keys", operation_id = "revoke_key", params(("id" = inline(KeyId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
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

/// The body of `POST /v1/keys/lookup`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// Secrets found somewhere (API keys or client secrets), at most 100.
    #[schema(max_items = 100)]
    pub secrets: Vec<String>,
}

/// What one looked-up secret is.
#[derive(Debug, Serialize, ToSchema)]
pub struct LookupResult {
    /// `active`, `disabled`, `revoked`, `expired` (its credential's state), `replaced`
    /// (rotated out, its grace period over), or `unknown`: no credential of the caller's
    /// organization has it (another organization's secret reads the same).
    #[schema(value_type = SecretStateName)]
    pub state: &'static str,
    /// `api_key` or `client_secret`; null when unknown.
    pub kind: Option<&'static str>,
    /// The credential that has it; null when unknown.
    pub key_id: Option<String>,
}

/// `POST /v1/keys/lookup`: one result per secret, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct LookupResponse {
    /// The results.
    pub data: Vec<LookupResult>,
}

/// Most secrets one lookup takes.
pub const MAX_LOOKUP: usize = 100;

/// Say which of the organization's credentials each secret belongs to and whether it
/// still works, as `keyward scan --server` asks of secrets found in files. A secret is
/// confirmed by its salted hash; one of another organization is `unknown`. Needs
/// `keys:read`.
#[utoipa::path(post, path = "/v1/keys/lookup", tag = "keys", operation_id = "lookup_secrets",
    request_body = LookupRequest,
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = LookupResponse),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn lookup(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<LookupRequest>,
) -> Result<Json<LookupResponse>, ApiError> {
    let permit = caller.principal().permit::<ReadKeys>()?;
    if request.secrets.len() > MAX_LOOKUP {
        return Err(ValidationError::new("secrets", "at most 100 at once").into());
    }
    let credentials = state.service.credentials();
    let mut data = Vec::with_capacity(request.secrets.len());
    for secret in &request.secrets {
        let owner = credentials.identify(&permit, secret).await?;
        data.push(LookupResult {
            state: owner.as_ref().map_or("unknown", |o| o.state.as_str()),
            kind: owner.as_ref().map(|o| o.kind.storage_name()),
            key_id: owner.map(|o| o.credential.id.to_string()),
        });
    }
    Ok(Json(LookupResponse { data }))
}

/// Revoke the calling key itself, whatever its scopes: whoever holds a key can end it, for
/// good (a key found in public, say). Only with the API key itself, not an access token
/// (403 `api_key_required`).
#[utoipa::path(post, path = "/v1/keys/self/revoke", tag = "keys", operation_id = "revoke_own_key",
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = KeyResponse),
    ))]
pub async fn revoke_self(
    State(state): State<AppState>,
    caller: KeyCaller,
) -> Result<Json<KeyResponse>, ApiError> {
    if caller.identity.token.is_some() {
        return Err(ApiError::ApiKeyRequired);
    }
    let revoked = state
        .service
        .credentials()
        .revoke_self(&caller.principal())
        .await?;
    Ok(Json(KeyResponse::new(&revoked, state.clock.now())))
}

/// Rotate a credential's secrets: a new API key and client secret, returned only in this
/// answer. The old ones stop at once, or after `grace_period_seconds` (≤ 7 days, never past
/// the credential's expiry). Needs `keys:write` and the credential's scopes.
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys", operation_id = "rotate_key", request_body(content = Option<RotateKeyRequest>, description = "optional"),
    params(("id" = inline(KeyId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
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
    let permit = caller.principal().permit::<WriteKeys>()?;
    let rotation = Rotation {
        grace_period_seconds: request
            .grace_period_seconds
            .map_or(0, WholeNumber::into_inner),
        expected_version: None,
    };
    let rotated = state
        .service
        .credentials()
        .rotate(&permit, &id, rotation)
        .await?;
    let mut body = CreatedKeyResponse::new(&rotated.issued, state.clock.now());
    body.previous_secrets_expire_at = rotated.previous_secrets_expire_at.map(rfc3339);
    Ok(body.into_response_with(StatusCode::OK))
}
