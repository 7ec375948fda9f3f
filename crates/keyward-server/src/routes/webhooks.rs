//! `/v1/webhooks`: the organization's webhook endpoints and their deliveries.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::clock::rfc3339;
use keyward_core::typeid::MessageId;
use keyward_core::webhook::Webhook;
use keyward_gate::Problem;
use keyward_service::principal::{Permit, ReadWebhooks, WriteWebhooks};
use keyward_service::webhooks::{NewWebhook, WebhookChange, WithSecret};
use keyward_store::DeliveryRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::json::{not_null, present};
use crate::openapi::values::{Description, EventList, MessageCursor, WebhookId, WebhookUrl};
use crate::routes::{page_size, split_page};
use crate::state::AppState;

/// The body of `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where messages are sent.
    #[schema(value_type = WebhookUrl)]
    pub url: String,
    /// The event types it hears, or `["*"]` for every one.
    #[schema(value_type = EventList)]
    pub events: Vec<String>,
    /// A note for people.
    #[schema(value_type = Option<Description>)]
    pub description: Option<String>,
}

/// The body of `PATCH /v1/webhooks/{id}`: fields left out stay as they are; `null` clears
/// the description and is refused (422) for the others.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    /// A new target; cannot be `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = WebhookUrl, required = false)]
    pub url: Option<Option<String>>,
    /// New event types; cannot be `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = EventList, required = false)]
    pub events: Option<Option<Vec<String>>>,
    /// A new note; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Description>)]
    pub description: Option<Option<String>>,
    /// Send messages to it (`true`) or hold them (`false`); enabling clears a reason
    /// Keyward gave for disabling it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    pub enabled: Option<Option<bool>>,
}

/// An endpoint, as every answer shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResponse {
    /// `webhook_…`.
    pub id: String,
    /// Where messages are sent.
    pub url: String,
    /// The event types it hears; `["*"]` for every one.
    pub events: Vec<String>,
    /// The note.
    pub description: Option<String>,
    /// Whether messages are sent to it.
    pub enabled: bool,
    /// Why Keyward disabled it: `gone` (it answered 410) or `failing` (every attempt
    /// failed for days); null otherwise.
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed (RFC 3339); null while it answers.
    pub failing_since: Option<String>,
    /// Until when the secret before the last rotation still signs (RFC 3339).
    pub previous_secret_expires_at: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl From<&Webhook> for WebhookResponse {
    fn from(w: &Webhook) -> Self {
        Self {
            id: w.id.to_string(),
            url: w.url.clone(),
            events: w.events.to_strings(),
            description: w.description.clone(),
            enabled: w.enabled,
            disabled_reason: w.disabled_reason.clone(),
            failing_since: w.failing_since.map(rfc3339),
            previous_secret_expires_at: w
                .previous_secret
                .as_ref()
                .map(|(_, until)| rfc3339(*until)),
            created_at: rfc3339(w.created_at),
            created_by: w.created_by.clone(),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

/// An endpoint with its signing secret: the only answers that show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: WebhookResponse,
    /// `whsec_…`: the Standard Webhooks signing secret. Shown only this once.
    pub secret: String,
}

impl From<WithSecret> for WebhookWithSecret {
    fn from(made: WithSecret) -> Self {
        Self {
            webhook: WebhookResponse::from(&made.webhook),
            secret: made.secret.to_string(),
        }
    }
}

/// `GET /v1/webhooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// The organization's endpoints, oldest first.
    pub data: Vec<WebhookResponse>,
}

/// The answer of `POST /v1/webhooks/{id}/test`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueued {
    /// The `webhook-id` of the test message, queued for delivery now.
    pub message_id: String,
}

/// One attempt to deliver a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    /// 1 for the first.
    pub attempt: i64,
    /// When it was made (RFC 3339).
    pub attempted_at: String,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// The answer's status; null when none came.
    pub response_status: Option<u16>,
    /// Why no answer came.
    pub error: Option<String>,
    /// The answer body's first 256 bytes.
    pub response_excerpt: Option<String>,
}

/// A message and its attempts at the endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    /// The `webhook-id` every attempt carried.
    pub message_id: String,
    /// The event type.
    pub event_type: String,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    /// The next attempt while pending (RFC 3339).
    pub next_attempt_at: Option<String>,
    /// The attempts made, oldest first.
    pub attempts: Vec<AttemptResponse>,
}

impl From<&DeliveryRecord> for DeliveryResponse {
    fn from(d: &DeliveryRecord) -> Self {
        Self {
            message_id: d.message_id.to_string(),
            event_type: d.event_type.clone(),
            created_at: rfc3339(d.created_at),
            status: d.state.as_str(),
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            attempts: d
                .attempts
                .iter()
                .map(|a| AttemptResponse {
                    attempt: a.attempt,
                    attempted_at: rfc3339(a.attempted_at),
                    duration_ms: a.duration_ms,
                    response_status: a.response_status,
                    error: a.error.clone(),
                    response_excerpt: a.response_excerpt.clone(),
                })
                .collect(),
        }
    }
}

/// `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Messages, newest first.
    pub data: Vec<DeliveryResponse>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Query of `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(inline, value_type = Option<MessageCursor>)]
    pub cursor: Option<String>,
}

/// Add an endpoint. The answer holds its signing secret (`whsec_…`), shown only this once.
/// Needs `webhooks:write`.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", operation_id = "create_webhook",
    request_body = CreateWebhookRequest,
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 201, body = WebhookWithSecret),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateWebhookRequest>,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    let permit = caller.principal().permit::<WriteWebhooks>()?;
    let new = NewWebhook {
        url: request.url,
        events: request.events,
        description: request.description,
    };
    let made = state.service.webhooks().create(&permit, new).await?;
    Ok((StatusCode::CREATED, Json(made.into())))
}

/// The organization's endpoints. Needs `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", operation_id = "list_webhooks",
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses((status = 200, body = WebhookList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    let permit = caller.principal().permit::<ReadWebhooks>()?;
    let webhooks = state.service.webhooks().list(&permit).await?;
    Ok(Json(WebhookList {
        data: webhooks.iter().map(WebhookResponse::from).collect(),
    }))
}

/// One endpoint. Needs `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "get_webhook",
    params(("id" = inline(WebhookId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = WebhookResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookResponse>, ApiError> {
    let permit = caller.principal().permit::<ReadWebhooks>()?;
    let webhook = state.service.webhooks().get(&permit, &id).await?;
    Ok(Json(WebhookResponse::from(&webhook)))
}

/// Change an endpoint's target, events or description, or enable or disable it. Needs
/// `webhooks:write`.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "update_webhook",
    request_body = UpdateWebhookRequest,
    params(("id" = inline(WebhookId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = WebhookResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateWebhookRequest>,
) -> Result<Json<WebhookResponse>, ApiError> {
    let permit = caller.principal().permit::<WriteWebhooks>()?;
    let change = WebhookChange {
        url: not_null("url", request.url)?,
        events: not_null("events", request.events)?,
        description: request.description,
        enabled: not_null("enabled", request.enabled)?,
    };
    let webhook = state
        .service
        .webhooks()
        .update(&permit, &id, change)
        .await?;
    Ok(Json(WebhookResponse::from(&webhook)))
}

/// Remove an endpoint and the messages queued for it. Needs `webhooks:write`.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook",
    params(("id" = inline(WebhookId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "removed"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let permit = caller.principal().permit::<WriteWebhooks>()?;
    state.service.webhooks().delete(&permit, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give the endpoint a new signing secret, shown only in this answer. The previous secret
/// keeps signing beside it (each message then carries both signatures) until
/// `previous_secret_expires_at`. Needs `webhooks:write`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    operation_id = "rotate_webhook_secret",
    params(("id" = inline(WebhookId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = WebhookWithSecret),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    let permit = caller.principal().permit::<WriteWebhooks>()?;
    let rotated = state.service.webhooks().rotate_secret(&permit, &id).await?;
    Ok(Json(rotated.into()))
}

/// Queue a `webhook.test` message for this endpoint, whatever events it hears; its
/// delivery shows in the endpoint's deliveries. Needs `webhooks:write`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", operation_id = "test_webhook",
    params(("id" = inline(WebhookId), Path)),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 202, body = TestQueued),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TestQueued>), ApiError> {
    let permit = caller.principal().permit::<WriteWebhooks>()?;
    let message = state.service.webhooks().test(&permit, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestQueued {
            message_id: message.to_string(),
        }),
    ))
}

/// The endpoint's messages with their attempts (status, latency, response code, the
/// answer's first bytes) and next retry, newest first. Needs `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    operation_id = "list_webhook_deliveries",
    params(("id" = inline(WebhookId), Path), DeliveryQuery),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = DeliveryList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let permit = caller.principal().permit::<ReadWebhooks>()?;
    Ok(Json(delivery_page(&state, &permit, &id, query).await?))
}

/// The page of an endpoint's messages `query` asks for: what
/// `GET /v1/webhooks/{id}/deliveries` and the MCP `list_webhook_deliveries` tool answer.
pub async fn delivery_page(
    state: &AppState,
    permit: &Permit<'_, ReadWebhooks>,
    id: &str,
    query: DeliveryQuery,
) -> Result<DeliveryList, ApiError> {
    let limit = page_size(query.limit)?;
    let before = query
        .cursor
        .as_deref()
        .map(|cursor| {
            MessageId::parse(cursor).map_err(|_| {
                ApiError::bad_request("invalid_query", "cursor: not a cursor of this listing")
            })
        })
        .transpose()?;
    let records = state
        .service
        .webhooks()
        .deliveries(permit, id, before.as_ref(), limit + 1)
        .await?;
    let (records, next_cursor) = split_page(records, limit, |d| d.message_id.to_string());
    Ok(DeliveryList {
        data: records.iter().map(DeliveryResponse::from).collect(),
        next_cursor,
    })
}
