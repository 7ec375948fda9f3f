//! `/v1/ip-rules`: the organization's IP access rules.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::ip_rule::RuleKind;
use keyward_gate::Problem;
use keyward_service::ip_rules::{IpRuleChange, NewIpRule};
use keyward_service::principal::{DeleteIpRules, ReadIpRules, WriteIpRules};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::json::{not_null, or_empty, present};
use crate::openapi::values::{IpRuleId, IpRuleNetwork, RuleDescription};
use crate::state::AppState;

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RuleType {
    /// Addresses in the range may use the organization's credentials.
    Allow,
    /// Addresses in the range may not.
    Deny,
}

impl From<RuleType> for RuleKind {
    fn from(kind: RuleType) -> Self {
        match kind {
            RuleType::Allow => RuleKind::Allow,
            RuleType::Deny => RuleKind::Deny,
        }
    }
}

/// The body of `POST /v1/ip-rules`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIpRuleRequest {
    /// An address or CIDR range, e.g. `192.0.2.0/25`.
    #[schema(value_type = IpRuleNetwork)]
    pub ip_network: String,
    /// `allow` or `deny`.
    #[serde(rename = "type")]
    pub kind: RuleType,
    /// A note for people.
    #[schema(value_type = Option<RuleDescription>)]
    pub description: Option<String>,
    /// Apply the change even if it shuts out the address making it.
    #[serde(default)]
    pub confirm_lockout: bool,
}

/// The body of `PATCH /v1/ip-rules/{id}`: fields left out stay as they are; `null` clears
/// the description and is refused (422) for the range and the type.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIpRuleRequest {
    /// A new range; cannot be `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = IpRuleNetwork, required = false)]
    pub ip_network: Option<Option<String>>,
    /// A new type; cannot be `null`.
    #[serde(default, rename = "type", deserialize_with = "present")]
    #[schema(value_type = RuleType, required = false)]
    pub kind: Option<Option<RuleType>>,
    /// A new note; `null` (or empty) clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RuleDescription>)]
    pub description: Option<Option<String>>,
    /// Apply the change even if it shuts out the address making it.
    #[serde(default)]
    pub confirm_lockout: bool,
}

/// Query of `DELETE /v1/ip-rules/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteIpRuleQuery {
    /// Remove the rule even if that shuts out the address making the change.
    #[serde(default)]
    pub confirm_lockout: bool,
}

pub use keyward_service::records::IpRuleRecord as IpRuleResponse;

/// The organization's rules and the limits that bound them.
#[derive(Debug, Serialize, ToSchema)]
pub struct IpRuleList {
    /// The rules, oldest first.
    pub data: Vec<IpRuleResponse>,
    /// Most rules an organization may have.
    pub max_rules: usize,
    /// Accepted IPv4 prefix lengths, e.g. `/25–/32`.
    pub ipv4_prefixes: String,
    /// Accepted IPv6 prefix lengths.
    pub ipv6_prefixes: String,
    /// The address this request came from, as the rules see it.
    pub your_ip: Option<String>,
}

/// List the organization's IP access rules, with the limits. Needs `ip_rules:read`.
#[utoipa::path(get, path = "/v1/ip-rules", tag = "ip rules", operation_id = "list_ip_rules",
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses((status = 200, body = IpRuleList), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<IpRuleList>, ApiError> {
    let permit = caller.principal().permit::<ReadIpRules>()?;
    let ip_rules = state.service.ip_rules();
    let rules = ip_rules.list(&permit).await?;
    let policy = ip_rules.policy();
    Ok(Json(IpRuleList {
        data: rules.iter().map(IpRuleResponse::from).collect(),
        max_rules: policy.max_rules,
        ipv4_prefixes: policy.ipv4_range(),
        ipv6_prefixes: policy.ipv6_range(),
        your_ip: caller.actor.source_ip.map(|ip| ip.to_string()),
    }))
}

/// Add a rule. At most `max_rules` per organization (5 by default) and prefixes within the
/// deployment's bounds (IPv4 /25–/32 by default). A rule that would shut out the address
/// making the request is refused (409 `lockout`) unless `confirm_lockout` is true. Needs
/// `ip_rules:write`.
#[utoipa::path(post, path = "/v1/ip-rules", tag = "ip rules", operation_id = "create_ip_rule",
    request_body = CreateIpRuleRequest,
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 201, body = IpRuleResponse),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateIpRuleRequest>,
) -> Result<(StatusCode, Json<IpRuleResponse>), ApiError> {
    let permit = caller.principal().permit::<WriteIpRules>()?;
    let new = NewIpRule {
        ip_network: request.ip_network,
        kind: request.kind.into(),
        description: request.description,
        confirm_lockout: request.confirm_lockout,
    };
    let rule = state.service.ip_rules().add(&permit, new).await?;
    Ok((StatusCode::CREATED, Json(IpRuleResponse::from(&rule))))
}

/// Change a rule's range, type or description, with the same bounds and lockout guard.
/// Needs `ip_rules:write`.
#[utoipa::path(patch, path = "/v1/ip-rules/{id}", tag = "ip rules", operation_id = "update_ip_rule",
    request_body = UpdateIpRuleRequest,
    params(("id" = inline(IpRuleId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = IpRuleResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateIpRuleRequest>,
) -> Result<Json<IpRuleResponse>, ApiError> {
    let permit = caller.principal().permit::<WriteIpRules>()?;
    let change = IpRuleChange {
        ip_network: not_null("ip_network", request.ip_network)?,
        kind: not_null("type", request.kind)?.map(RuleKind::from),
        description: or_empty(request.description, String::new),
        confirm_lockout: request.confirm_lockout,
    };
    let rule = state
        .service
        .ip_rules()
        .update(&permit, &id, change)
        .await?;
    Ok(Json(IpRuleResponse::from(&rule)))
}

/// Remove a rule, with the lockout guard (`?confirm_lockout=true` to override). Needs
/// `ip_rules:delete`.
#[utoipa::path(delete, path = "/v1/ip-rules/{id}", tag = "ip rules", operation_id = "delete_ip_rule",
    params(("id" = inline(IpRuleId), Path), DeleteIpRuleQuery),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "removed"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeleteIpRuleQuery>,
) -> Result<StatusCode, ApiError> {
    let permit = caller.principal().permit::<DeleteIpRules>()?;
    state
        .service
        .ip_rules()
        .remove(&permit, &id, query.confirm_lockout)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
