//! `GET /v1/audit-log`: the organization's lifecycle events, newest first, filtered by
//! action, actor, object and time and paged both ways; `GET /v1/audit-log/export`: every
//! event the same filters match, as CSV or JSON.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
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
use crate::openapi::values::{AuditCursor, ExportFormat, Filter, Time};
use crate::routes::usage::parse_time;
use crate::routes::{page_size, split_page};
use crate::state::AppState;

/// Filters and page of the audit log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Only events of this action, e.g. `key.revoked`; or, ending in `.`, of every action
    /// beginning so (`key.`).
    #[param(inline, value_type = Option<Filter>)]
    pub action: Option<String>,
    /// Only events by this actor: a credential id, a member id (`user_…`), `cli` or
    /// `keyward`.
    #[param(inline, value_type = Option<Filter>)]
    pub actor: Option<String>,
    /// Only events about this object id.
    #[param(inline, value_type = Option<Filter>)]
    pub target_id: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(inline, value_type = Option<Time>)]
    pub from: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(inline, value_type = Option<Time>)]
    pub to: Option<String>,
    /// The `next_cursor` of the previous answer: the page of older events.
    #[param(inline, value_type = Option<AuditCursor>)]
    pub cursor: Option<String>,
    /// The `prev_cursor` of the previous answer: the page of newer events (with `cursor`
    /// too, only events between the two).
    #[param(inline, value_type = Option<AuditCursor>)]
    pub before_cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The filters of an audit listing, checked, without its page.
#[derive(Debug, Clone, Default)]
pub struct AuditFilters {
    action: Option<String>,
    actor: Option<String>,
    target_id: Option<String>,
    since: Option<time::OffsetDateTime>,
    until: Option<time::OffsetDateTime>,
}

impl AuditLogQuery {
    /// The query's filters, refused (400 `invalid_query`) when one cannot be used.
    pub fn filters(&self) -> Result<AuditFilters, ApiError> {
        // A filter compares text: an empty one (a form's unset field) would match nothing
        // and is refused like any other unusable parameter.
        for (name, value) in [
            ("action", &self.action),
            ("actor", &self.actor),
            ("target_id", &self.target_id),
        ] {
            if value.as_deref() == Some("") {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("{name}: must not be empty; leave it out to match every event"),
                ));
            }
        }
        // A window that ends before it starts is empty, not wrong: it matches no event.
        let since = parse_time("from", self.from.as_deref())?;
        let until = parse_time("to", self.to.as_deref())?;
        Ok(AuditFilters {
            action: self.action.clone(),
            actor: self.actor.clone(),
            target_id: self.target_id.clone(),
            since,
            until,
        })
    }
}

impl AuditFilters {
    fn query(&self, limit: u32) -> AuditQuery {
        AuditQuery {
            action: self.action.clone(),
            actor: self.actor.clone(),
            target_id: self.target_id.clone(),
            since: self.since,
            until: self.until,
            limit,
            ..AuditQuery::default()
        }
    }
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    /// `audit_event_…`.
    pub id: String,
    /// What happened, e.g. `key.created`.
    pub action: String,
    /// Who did it: a credential id, a member id (`user_…`), `cli` (the operator) or
    /// `keyward` (Keyward itself).
    pub actor: String,
    /// What the organization calls the actor: the credential's name or the member's email,
    /// when it still exists.
    pub actor_name: Option<String>,
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

impl AuditEventResponse {
    /// The answer for `event`, naming its actor from `names`.
    pub fn new(event: AuditEvent, names: &HashMap<String, String>) -> Self {
        Self {
            id: event.id.to_string(),
            action: event.action,
            actor_name: names.get(&event.actor).cloned(),
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
    /// Pass as `cursor` for the page of older events; null on the oldest page.
    pub next_cursor: Option<String>,
    /// Pass as `before_cursor` for the page of newer events; null on the newest page.
    pub prev_cursor: Option<String>,
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

/// The page of the organization's audit log `query` asks for: what `GET /v1/audit-log`,
/// the MCP `query_audit_log` tool and the dashboard's page answer.
pub async fn page(
    state: &AppState,
    permit: &Permit<'_, ReadAuditLog>,
    query: AuditLogQuery,
) -> Result<AuditLogPage, ApiError> {
    let filters = query.filters()?;
    let limit = page_size(query.limit)?;
    let cursor = |name: &str, text: Option<&str>| {
        text.map(AuditEventId::parse).transpose().map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!("{name}: not a cursor of this listing"),
            )
        })
    };
    // Both cursors bound the page on both sides; with `before_cursor` it is read from the
    // older end, as a page back towards the present.
    let before = cursor("cursor", query.cursor.as_deref())?;
    let after = cursor("before_cursor", query.before_cursor.as_deref())?;
    let backwards = after.is_some();
    let paged = before.is_some() || backwards;
    let audit = state.service.audit();
    let events = audit
        .list(
            permit,
            &AuditQuery {
                before,
                after,
                ..filters.query(limit + 1)
            },
        )
        .await?;
    let (data, next_cursor, prev_cursor) = if backwards {
        // Oldest first: the extra one says newer events remain.
        let (mut data, more_newer) = split_page(events, limit, |e| e.id.to_string());
        data.reverse();
        let next = data.last().map(|e| e.id.to_string());
        let prev = more_newer.and(data.first().map(|e| e.id.to_string()));
        (data, next, prev)
    } else {
        let (data, next) = split_page(events, limit, |e| e.id.to_string());
        let prev = data.first().filter(|_| paged).map(|e| e.id.to_string());
        (data, next, prev)
    };
    let names = audit.actor_names(permit, &data).await?;
    Ok(AuditLogPage {
        data: data
            .into_iter()
            .map(|e| AuditEventResponse::new(e, &names))
            .collect(),
        next_cursor,
        prev_cursor,
    })
}

/// Most events one export holds.
pub const EXPORT_MAX: u32 = 50_000;
/// Events read from the store at a time while exporting.
const EXPORT_BATCH: u32 = 1_000;

/// The export's format and filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditExportQuery {
    /// `csv` (default) or `json`.
    #[param(inline, value_type = Option<ExportFormat>)]
    pub format: Option<String>,
    /// As for the listing.
    #[param(inline, value_type = Option<Filter>)]
    pub action: Option<String>,
    /// As for the listing.
    #[param(inline, value_type = Option<Filter>)]
    pub actor: Option<String>,
    /// As for the listing.
    #[param(inline, value_type = Option<Filter>)]
    pub target_id: Option<String>,
    /// As for the listing.
    #[param(inline, value_type = Option<Time>)]
    pub from: Option<String>,
    /// As for the listing.
    #[param(inline, value_type = Option<Time>)]
    pub to: Option<String>,
}

/// Export every event matching the filters, newest first, as CSV (`id, occurred_at,
/// action, actor, actor_name, source_ip, target_id, details`) or a JSON array. At most
/// 50,000 events: more is 400 `export_too_large` (narrow it with `from` and `to`). Needs
/// `audit_log:read`.
#[utoipa::path(get, path = "/v1/audit-log/export", tag = "audit", operation_id = "export_audit_log",
    params(AuditExportQuery),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The events, as a file to save",
            content(
                (String = "text/csv"),
                (Vec<AuditEventResponse> = "application/json"),
            ),
        ),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditExportQuery>,
) -> Result<Response, ApiError> {
    let permit = caller.principal().permit::<ReadAuditLog>()?;
    export_file(&state, &permit, query).await
}

/// The export file `query` asks for: what `GET /v1/audit-log/export` and the dashboard's
/// export links answer.
pub async fn export_file(
    state: &AppState,
    permit: &Permit<'_, ReadAuditLog>,
    query: AuditExportQuery,
) -> Result<Response, ApiError> {
    let csv = match query.format.as_deref() {
        None | Some("csv") => true,
        Some("json") => false,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "format: must be csv or json",
            ));
        }
    };
    let filters = AuditLogQuery {
        action: query.action,
        actor: query.actor,
        target_id: query.target_id,
        from: query.from,
        to: query.to,
        ..AuditLogQuery::default()
    }
    .filters()?;
    let audit = state.service.audit();
    let mut events = Vec::new();
    loop {
        let batch = audit
            .list(
                permit,
                &AuditQuery {
                    before: events.last().map(|e: &AuditEvent| e.id.clone()),
                    ..filters.query(EXPORT_BATCH)
                },
            )
            .await?;
        let done = batch.len() < EXPORT_BATCH as usize;
        events.extend(batch);
        if events.len() > EXPORT_MAX as usize {
            return Err(ApiError::bad_request(
                "export_too_large",
                format!("more than {EXPORT_MAX} events match; narrow the export with from and to"),
            ));
        }
        if done {
            break;
        }
    }
    let names = audit.actor_names(permit, &events).await?;
    let rows: Vec<AuditEventResponse> = events
        .into_iter()
        .map(|e| AuditEventResponse::new(e, &names))
        .collect();
    let (content_type, body, extension) = if csv {
        ("text/csv; charset=utf-8", to_csv(&rows), "csv")
    } else {
        (
            "application/json",
            serde_json::to_string_pretty(&rows).map_err(|_| ApiError::internal())?,
            "json",
        )
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"audit-log.{extension}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// The events as CSV (RFC 4180, CRLF line ends), a header row first.
fn to_csv(rows: &[AuditEventResponse]) -> String {
    let mut out =
        String::from("id,occurred_at,action,actor,actor_name,source_ip,target_id,details\r\n");
    for row in rows {
        let details = serde_json::Value::Object(row.details.clone()).to_string();
        let cells = [
            row.id.as_str(),
            row.occurred_at.as_str(),
            row.action.as_str(),
            row.actor.as_str(),
            row.actor_name.as_deref().unwrap_or_default(),
            row.source_ip.as_deref().unwrap_or_default(),
            row.target_id.as_deref().unwrap_or_default(),
            details.as_str(),
        ];
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_csv_cell(&mut out, cell);
        }
        out.push_str("\r\n");
    }
    out
}

/// Appends one CSV cell. A cell a spreadsheet would read as a formula (beginning `=`,
/// `+`, `-`, `@`, a tab or a carriage return: a credential's name is anyone's text) gets a
/// leading `'`, so opening the export runs nothing; a cell with a comma, quote or line end
/// is quoted.
fn push_csv_cell(out: &mut String, cell: &str) {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = formula || cell.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in cell.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let mut out = String::new();
        for cell in [
            "plain",
            "a,b",
            "say \"hi\"",
            "=HYPERLINK(\"x\")",
            "-1",
            "two\nlines",
        ] {
            push_csv_cell(&mut out, cell);
            out.push('|');
        }
        assert_eq!(
            out,
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"'=HYPERLINK(\"\"x\"\")\"|\"'-1\"|\"two\nlines\"|"
        );
    }
}
