//! `GET /v1/audit-log`: the organization's lifecycle events, newest first.

use axum::Json;
use axum::extract::State;
use keyward_core::audit::AuditEvent;
use keyward_core::clock::rfc3339;
use keyward_core::typeid::AuditEventId;
use keyward_gate::Problem;
use keyward_service::audit::AuditQuery;
use keyward_service::principal::{Permit, ReadAuditLog};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::openapi::values::{AuditCursor, Filter};
use crate::routes::{page_size, split_page};
use crate::state::AppState;

/// Filters and page of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Only events of this action, e.g. `key.revoked`.
    #[param(inline, value_type = Option<Filter>)]
    pub action: Option<String>,
    /// Only events about this object id.
    #[param(inline, value_type = Option<Filter>)]
    pub target_id: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(inline, value_type = Option<AuditCursor>)]
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    /// `audit_event_…`.
    pub id: String,
    /// What happened, e.g. `key.created`.
    pub action: String,
    /// Who did it: a credential id, `user:{email}` or `cli`.
    pub actor: String,
    /// The address the request came from.
    pub source_ip: Option<String>,
    /// The object acted on.
    pub target_id: Option<String>,
    /// Facts about the change.
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
    /// When it happened (RFC 3339).
    pub occurred_at: String,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: event.id.to_string(),
            action: event.action,
            actor: event.actor,
            source_ip: event.source_ip.map(|ip| ip.to_string()),
            target_id: event.target_id,
            details: event.details,
            occurred_at: rfc3339(event.occurred_at),
        }
    }
}

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogPage {
    /// The events, newest first.
    pub data: Vec<AuditEventResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// List the organization's audit log, newest first. Needs `audit_log:read`.
#[utoipa::path(get, path = "/v1/audit-log", tag = "audit", operation_id = "list_audit_events",
    params(AuditLogQuery),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = AuditLogPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditLogQuery>,
) -> Result<Json<AuditLogPage>, ApiError> {
    let permit = caller.principal().permit::<ReadAuditLog>()?;
    Ok(Json(page(&state, &permit, query).await?))
}

/// The page of the organization's audit log `query` asks for: what `GET /v1/audit-log` and
/// the MCP `query_audit_log` tool answer.
pub async fn page(
    state: &AppState,
    permit: &Permit<'_, ReadAuditLog>,
    query: AuditLogQuery,
) -> Result<AuditLogPage, ApiError> {
    // A filter compares text: an empty one (a form's unset field) would match nothing and
    // is refused like any other unusable parameter.
    for (name, value) in [("action", &query.action), ("target_id", &query.target_id)] {
        if value.as_deref() == Some("") {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("{name}: must not be empty; leave it out to match every event"),
            ));
        }
    }
    let limit = page_size(query.limit)?;
    let before = query
        .cursor
        .as_deref()
        .map(AuditEventId::parse)
        .transpose()
        .map_err(|_| {
            ApiError::bad_request("invalid_query", "cursor: not a cursor of this listing")
        })?;
    let events = state
        .service
        .audit()
        .list(
            permit,
            &AuditQuery {
                action: query.action,
                target_id: query.target_id,
                before,
                limit: limit + 1,
            },
        )
        .await?;
    let (data, next_cursor) = split_page(events, limit, |e| e.id.to_string());
    Ok(AuditLogPage {
        data: data.into_iter().map(Into::into).collect(),
        next_cursor,
    })
}
