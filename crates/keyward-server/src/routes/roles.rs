//! `/v1/roles` and `/v1/scopes`: the scope catalogue, the built-in roles and the
//! organization's own roles.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keyward_core::clock::rfc3339;
use keyward_core::scope::{CustomRole, PRESET_ACTIONS};
use keyward_gate::Problem;
use keyward_service::principal::{Permit, ReadRoles, WriteRoles};
use keyward_service::roles::NewRole;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::openapi::values::{Description, RoleName, ScopeName};
use crate::state::AppState;

/// One role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleResponse {
    /// Its name, as credentials' `role` field uses it.
    pub name: String,
    /// A note for people.
    pub description: Option<String>,
    /// The scopes it grants.
    pub scopes: Vec<String>,
    /// Whether it is one of Keyward's own roles.
    pub builtin: bool,
    /// Creation time of a custom role (RFC 3339).
    pub created_at: Option<String>,
}

/// The roles a credential of this organization may have.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    /// Built-in roles first, then the organization's, by name.
    pub data: Vec<RoleResponse>,
}

/// The body of `POST /v1/roles`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    /// 1–50 lowercase letters, digits or `_`, starting with a letter; not a built-in name.
    #[schema(value_type = RoleName)]
    pub name: String,
    /// A note for people.
    #[schema(value_type = Option<Description>)]
    pub description: Option<String>,
    /// The scopes it grants.
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Vec<String>,
}

fn custom(role: &CustomRole) -> RoleResponse {
    RoleResponse {
        name: role.name.clone(),
        description: role.description.clone(),
        scopes: role.scopes.to_strings(),
        builtin: false,
        created_at: Some(rfc3339(role.created_at)),
    }
}

/// List the built-in roles and the organization's own. Needs `roles:read`.
#[utoipa::path(get, path = "/v1/roles", tag = "roles", operation_id = "list_roles", security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses((status = 200, body = RoleList), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<RoleList>, ApiError> {
    let permit = caller.principal().permit::<ReadRoles>()?;
    Ok(Json(role_list(&state, &permit).await?))
}

/// The built-in roles and the organization's own: what the route answers, and what the MCP
/// tool does.
pub async fn role_list(
    state: &AppState,
    permit: &Permit<'_, ReadRoles>,
) -> Result<RoleList, ApiError> {
    let roles = state.service.roles();
    let mut data: Vec<RoleResponse> = roles
        .builtin()
        .into_iter()
        .map(|(name, scopes)| RoleResponse {
            name: name.to_owned(),
            description: None,
            scopes: scopes.to_strings(),
            builtin: true,
            created_at: None,
        })
        .collect();
    data.extend(roles.custom(permit).await?.iter().map(custom));
    Ok(RoleList { data })
}

/// Define a role for the organization. Its scopes must be within the caller's own. Roles
/// cannot be changed once made, so a credential's scopes never grow behind its back. Needs
/// `roles:write`.
#[utoipa::path(post, path = "/v1/roles", tag = "roles", operation_id = "create_role",
    request_body = CreateRoleRequest,
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 201, body = RoleResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateRoleRequest>,
) -> Result<(StatusCode, Json<RoleResponse>), ApiError> {
    let permit = caller.principal().permit::<WriteRoles>()?;
    let new = NewRole {
        name: request.name,
        description: request.description,
        scopes: request.scopes,
    };
    let role = state.service.roles().create(&permit, new).await?;
    Ok((StatusCode::CREATED, Json(custom(&role))))
}

/// One resource of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceScopes {
    /// e.g. `dns`.
    pub resource: String,
    /// e.g. `["read", "write", "delete"]`.
    pub actions: Vec<String>,
}

/// The scope catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeCatalogueResponse {
    /// Each resource with its actions: scopes are `resource:action`.
    pub resources: Vec<ResourceScopes>,
    /// `read`, `write`, `delete`: that action on every resource.
    pub presets: Vec<String>,
    /// `*` (everything) and `resource:*` (every action on one resource).
    pub wildcards: Vec<String>,
}

/// The scopes credentials may hold. Any valid credential may read it.
#[utoipa::path(get, path = "/v1/scopes", tag = "roles", operation_id = "list_scopes", security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses((status = 200, body = ScopeCatalogueResponse)))]
pub async fn scopes(
    State(state): State<AppState>,
    _caller: Caller,
) -> Json<ScopeCatalogueResponse> {
    Json(catalogue(&state))
}

/// The scope catalogue: what the route answers, and what the MCP tool does.
pub fn catalogue(state: &AppState) -> ScopeCatalogueResponse {
    ScopeCatalogueResponse {
        resources: state
            .service
            .roles()
            .catalogue()
            .resources()
            .map(|(resource, actions)| ResourceScopes {
                resource: resource.to_owned(),
                actions: actions.to_vec(),
            })
            .collect(),
        presets: PRESET_ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
        wildcards: vec!["*".to_owned(), "resource:*".to_owned()],
    }
}
