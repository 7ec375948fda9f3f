//! `/v1/ip-rules`: the organization's IP access rules (seeds 000 and 002).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::audit::{Actor, AuditEvent};
use keyward_core::credential::ValidationError;
use keyward_core::ip_rule::{IpRule, RuleKind, would_lock_out};
use keyward_core::typeid::{IpRuleId, OrganizationId};
use keyward_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery};
use crate::lifecycle::{WRITE_ATTEMPTS, concurrent_update, written};
use crate::routes::rfc3339;
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
    pub ip_network: String,
    /// `allow` or `deny`.
    #[serde(rename = "type")]
    pub kind: RuleType,
    /// A note for people.
    pub description: Option<String>,
    /// Apply the change even if it shuts out the address making it.
    #[serde(default)]
    pub confirm_lockout: bool,
}

/// The body of `PATCH /v1/ip-rules/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIpRuleRequest {
    /// A new range.
    pub ip_network: Option<String>,
    /// A new type.
    #[serde(rename = "type")]
    pub kind: Option<RuleType>,
    /// A new note (empty clears it).
    pub description: Option<String>,
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

/// One rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct IpRuleResponse {
    /// `ip_rule_…`.
    pub id: String,
    /// The range; single addresses show as /32 or /128.
    pub ip_network: String,
    /// `allow` or `deny`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The note.
    pub description: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// When it last decided a request (RFC 3339; updated in batches).
    pub last_matched_at: Option<String>,
}

impl From<&IpRule> for IpRuleResponse {
    fn from(rule: &IpRule) -> Self {
        Self {
            id: rule.id.to_string(),
            ip_network: rule.network.to_string(),
            kind: rule.kind.as_str(),
            description: rule.description.clone(),
            created_at: rfc3339(rule.created_at),
            created_by: rule.created_by.clone(),
            last_matched_at: rule.last_matched_at.map(rfc3339),
        }
    }
}

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

fn description(text: Option<&str>) -> Result<Option<String>, ValidationError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > 200 {
        return Err(ValidationError::new(
            "description",
            "must be at most 200 characters",
        ));
    }
    Ok(Some(text.to_owned()))
}

/// Refuses a change that would shut out the address making it, unless confirmed.
fn guard_lockout(
    actor: &Actor,
    before: &[IpRule],
    after: &[IpRule],
    confirmed: bool,
) -> Result<(), ApiError> {
    match actor.source_ip {
        Some(ip) if !confirmed && would_lock_out(before, after, ip) => Err(ApiError::Conflict {
            code: "lockout",
            message: format!(
                "this change would shut out {ip}, the address making it; send confirm_lockout: true to apply it anyway"
            ),
        }),
        _ => Ok(()),
    }
}

/// The audit event of a change to `rule` by `actor`.
fn rule_event(actor: &Actor, at: time::OffsetDateTime, action: &str, rule: &IpRule) -> AuditEvent {
    let details = json!({"ip_network": rule.network.to_string(), "type": rule.kind.as_str()});
    let details = details.as_object().cloned().unwrap_or_default();
    actor.event(
        &rule.organization_id,
        at,
        action,
        Some(rule.id.as_str()),
        details,
    )
}

fn rule_id(text: &str) -> Result<IpRuleId, ApiError> {
    IpRuleId::parse(text).map_err(|_| ApiError::NotFound)
}

/// List the organization's IP access rules, with the limits. Needs `ip_rules:read`.
#[utoipa::path(get, path = "/v1/ip-rules", tag = "ip rules", security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = IpRuleList), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<IpRuleList>, ApiError> {
    caller.require("ip_rules", "read")?;
    let rules = state.store.ip_rules(caller.organization_id()).await?;
    let policy = &state.config.rule_policy;
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
#[utoipa::path(post, path = "/v1/ip-rules", tag = "ip rules", request_body = CreateIpRuleRequest,
    security(("api_key" = []), ("bearer" = [])),
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
    caller.require("ip_rules", "write")?;
    let rule = add_rule(&state, caller.organization_id(), &caller.actor, request).await?;
    Ok((StatusCode::CREATED, Json(IpRuleResponse::from(&rule))))
}

/// Adds an organization IP rule for `actor`, within the deployment's bounds and the
/// lockout guard: what `POST /v1/ip-rules` and the dashboard both do.
pub async fn add_rule(
    state: &AppState,
    org: &OrganizationId,
    actor: &Actor,
    request: CreateIpRuleRequest,
) -> Result<IpRule, ApiError> {
    let now = state.clock.now();
    let rule = IpRule {
        id: IpRuleId::generate(),
        organization_id: org.clone(),
        network: state
            .config
            .rule_policy
            .parse_network(&request.ip_network)?,
        kind: request.kind.into(),
        description: description(request.description.as_deref())?,
        created_at: now,
        created_by: actor.id.clone(),
        last_matched_at: None,
        version: 1,
    };
    let event = rule_event(actor, now, "ip_rule.added", &rule);
    let max_rules = state.config.rule_policy.max_rules;
    // Judged against the rules as read and written only onto them: a change between the
    // two (say a removal that leaves this deny rule the caller's only match) starts over.
    for _ in 0..WRITE_ATTEMPTS {
        let before = state.store.ip_rules(org).await?;
        let after: Vec<IpRule> = before.iter().cloned().chain([rule.clone()]).collect();
        guard_lockout(actor, &before, &after, request.confirm_lockout)?;
        let result = state
            .store
            .insert_ip_rule(&rule, max_rules, &before, &event)
            .await;
        if let Err(StoreError::Conflict {
            constraint: "ip_rule_limit",
        }) = result
        {
            return Err(ApiError::Conflict {
                code: "ip_rule_limit",
                message: format!(
                    "an organization can have at most {max_rules} IP rules; remove one first"
                ),
            });
        }
        if written(result)? {
            state.verifier.forget_organization(org);
            return Ok(rule);
        }
    }
    Err(concurrent_update())
}

/// Change a rule's range, type or description, with the same bounds and lockout guard.
/// Needs `ip_rules:write`.
#[utoipa::path(patch, path = "/v1/ip-rules/{id}", tag = "ip rules", request_body = UpdateIpRuleRequest,
    params(("id" = String, Path, description = "`ip_rule_…`")),
    security(("api_key" = []), ("bearer" = [])),
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
    caller.require("ip_rules", "write")?;
    let org = caller.organization_id().clone();
    let id = rule_id(&id)?;
    let network = request
        .ip_network
        .as_deref()
        .map(|n| state.config.rule_policy.parse_network(n))
        .transpose()?;
    let note = request
        .description
        .as_deref()
        .map(|d| description(Some(d)))
        .transpose()?;
    // Read, change and write with a version check; a concurrent change makes it start over
    // from a fresh read (lockout guard included), so neither change is lost and none is
    // judged against rules that have changed since.
    for _ in 0..WRITE_ATTEMPTS {
        let before = state.store.ip_rules(&org).await?;
        let mut rule = before
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or(ApiError::NotFound)?;
        if let Some(network) = network {
            rule.network = network;
        }
        if let Some(kind) = request.kind {
            rule.kind = kind.into();
        }
        if let Some(note) = &note {
            rule.description = note.clone();
        }
        let after: Vec<IpRule> = before
            .iter()
            .map(|r| if r.id == id { rule.clone() } else { r.clone() })
            .collect();
        guard_lockout(&caller.actor, &before, &after, request.confirm_lockout)?;
        let event = rule_event(&caller.actor, state.clock.now(), "ip_rule.updated", &rule);
        if written(state.store.update_ip_rule(&rule, &before, &event).await)? {
            state.verifier.forget_organization(&org);
            rule.version += 1;
            return Ok(Json(IpRuleResponse::from(&rule)));
        }
    }
    Err(concurrent_update())
}

/// Remove a rule, with the lockout guard (`?confirm_lockout=true` to override). Needs
/// `ip_rules:delete`.
#[utoipa::path(delete, path = "/v1/ip-rules/{id}", tag = "ip rules",
    params(("id" = String, Path, description = "`ip_rule_…`"), DeleteIpRuleQuery),
    security(("api_key" = []), ("bearer" = [])),
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
    caller.require("ip_rules", "delete")?;
    let id = rule_id(&id)?;
    remove_rule(
        &state,
        caller.organization_id(),
        &caller.actor,
        &id,
        query.confirm_lockout,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes an organization IP rule for `actor`, with the lockout guard: what
/// `DELETE /v1/ip-rules/{id}` and the dashboard both do.
pub async fn remove_rule(
    state: &AppState,
    org: &OrganizationId,
    actor: &Actor,
    id: &IpRuleId,
    confirm_lockout: bool,
) -> Result<(), ApiError> {
    for _ in 0..WRITE_ATTEMPTS {
        let before = state.store.ip_rules(org).await?;
        let rule = before
            .iter()
            .find(|r| r.id == *id)
            .ok_or(ApiError::NotFound)?;
        let after: Vec<IpRule> = before.iter().filter(|r| r.id != *id).cloned().collect();
        guard_lockout(actor, &before, &after, confirm_lockout)?;
        let event = rule_event(actor, state.clock.now(), "ip_rule.removed", rule);
        if written(state.store.delete_ip_rule(org, id, &before, &event).await)? {
            state.verifier.forget_organization(org);
            return Ok(());
        }
    }
    Err(concurrent_update())
}
