//! Developer → Webhooks: the organization's endpoints (create, showing the signing secret
//! once; enable, disable, delete, send a test) and each endpoint's deliveries, through the
//! same service functions as `/v1/webhooks`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::webhook::{EVENT_TYPES, Webhook};
use keyward_service::ServiceError;
use keyward_service::principal::{ReadWebhooks, WriteWebhooks};
use keyward_service::webhooks::{NewWebhook, WebhookChange};
use keyward_store::DeliveryRecord;
use serde::Deserialize;

use crate::dashboard::credentials::plain_message;
use crate::dashboard::page::{Nav, PageError, display_time, render};
use crate::dashboard::session::{Protected, SignedIn};
use crate::state::AppState;

/// The Webhooks page.
pub const PATH: &str = "/developer/webhooks";
/// Deliveries shown on an endpoint's page.
const DELIVERIES_SHOWN: u32 = 50;

/// One endpoint as the pages show it.
#[derive(Debug)]
pub struct WebhookView {
    /// `webhook_…`.
    pub id: String,
    /// The target.
    pub url: String,
    /// `All events`, or the types, comma-separated.
    pub events: String,
    /// The note, or empty.
    pub description: String,
    /// Whether messages are sent.
    pub enabled: bool,
    /// Why Keyward disabled it, in words; empty otherwise.
    pub disabled_reason: String,
    /// Since when attempts fail, or empty.
    pub failing_since: String,
    /// Creation time.
    pub created: String,
    /// Until when the secret before the last rotation signs, or empty.
    pub previous_secret_until: String,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> Self {
        let types = w.events.to_strings();
        Self {
            id: w.id.to_string(),
            url: w.url.clone(),
            events: if types == ["*"] {
                "All events".to_owned()
            } else {
                types.join(", ")
            },
            description: w.description.clone().unwrap_or_default(),
            enabled: w.enabled,
            disabled_reason: match w.disabled_reason.as_deref() {
                Some("gone") => "the endpoint answered 410 Gone".to_owned(),
                Some("failing") => "every attempt failed for days".to_owned(),
                Some(other) => other.to_owned(),
                None => String::new(),
            },
            failing_since: w.failing_since.map(display_time).unwrap_or_default(),
            created: display_time(w.created_at),
            previous_secret_until: w
                .previous_secret
                .as_ref()
                .map(|(_, until)| display_time(*until))
                .unwrap_or_default(),
        }
    }
}

/// One delivery as the endpoint's page shows it.
#[derive(Debug)]
pub struct DeliveryView {
    /// `msg_…`.
    pub message_id: String,
    /// The event type.
    pub event_type: String,
    /// When it was queued.
    pub created: String,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    /// The next attempt, or empty.
    pub next_attempt: String,
    /// The attempts: when, the answer (a status or why none came), how long.
    pub attempts: Vec<(String, String, i64)>,
}

impl From<&DeliveryRecord> for DeliveryView {
    fn from(d: &DeliveryRecord) -> Self {
        Self {
            message_id: d.message_id.to_string(),
            event_type: d.event_type.clone(),
            created: display_time(d.created_at),
            status: d.state.as_str(),
            next_attempt: d.next_attempt_at.map(display_time).unwrap_or_default(),
            attempts: d
                .attempts
                .iter()
                .map(|a| {
                    let answer = match (a.response_status, &a.error) {
                        (Some(status), _) => status.to_string(),
                        (None, Some(error)) => error.clone(),
                        (None, None) => "no answer".to_owned(),
                    };
                    (display_time(a.attempted_at), answer, a.duration_ms)
                })
                .collect(),
        }
    }
}

/// The create form, as typed.
#[derive(Debug, Default)]
pub struct WebhookForm {
    /// The target.
    pub url: String,
    /// The types ticked; `*` for all.
    pub events: Vec<String>,
    /// A note.
    pub description: String,
}

impl<'de> Deserialize<'de> for WebhookForm {
    /// Read from the form's pairs: a checkbox ticked several times (`events`) is a field
    /// named more than once, which a plain urlencoded struct cannot hold.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut form = WebhookForm::default();
        for (name, value) in Vec::<(String, String)>::deserialize(deserializer)? {
            match name.as_str() {
                "url" => form.url = value,
                "events" => form.events.push(value),
                "description" => form.description = value,
                _ => {}
            }
        }
        Ok(form)
    }
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    nav: Nav,
    webhooks: Vec<WebhookView>,
    event_types: &'static [&'static str],
    form: WebhookForm,
    error: Option<(&'static str, String)>,
    /// Every error of the add form, for the summary: the element each links to, and the
    /// message.
    errors: Vec<(&'static str, String)>,
    notice: String,
}

impl WebhooksPage {
    /// The message about `field`, or empty.
    fn error_of(&self, field: &str) -> &str {
        self.errors
            .iter()
            .find(|(f, _)| *f == anchor(field))
            .map_or("", |(_, m)| m.as_str())
    }
}

/// The element of the page a field's error links to.
fn anchor(field: &str) -> &'static str {
    match field {
        "url" => "webhook-url",
        "events" => "webhook-events",
        "description" => "webhook-description",
        _ => "add-webhook",
    }
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    nav: Nav,
    webhook: WebhookView,
    deliveries: Vec<DeliveryView>,
    notice: String,
}

#[derive(Template)]
#[template(path = "webhook_secret.html")]
struct SecretPage {
    nav: Nav,
    heading: &'static str,
    webhook: WebhookView,
    secret: String,
}

/// What the page says after a change.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DoneQuery {
    /// What was done.
    pub done: String,
}

fn notice(done: &str) -> String {
    match done {
        "enabled" => "The endpoint is enabled: new events are sent to it.",
        "disabled" => "The endpoint is disabled: events are no longer sent to it.",
        "deleted" => "The endpoint is deleted.",
        "tested" => "A webhook.test message is queued: it shows below within seconds.",
        _ => "",
    }
    .to_owned()
}

async fn list_page(
    state: &AppState,
    signed_in: &SignedIn,
    form: WebhookForm,
    error: Option<ServiceError>,
    notice: String,
) -> Result<Response, PageError> {
    let permit = signed_in.principal().permit::<ReadWebhooks>()?;
    let webhooks = state.service.webhooks().list(&permit).await?;
    let (status, error) = match error {
        None => (StatusCode::OK, None),
        Some(ServiceError::Validation(error)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some((error.field, plain_message(error.field, &error.message))),
        ),
        Some(ServiceError::Conflict(conflict)) => {
            (StatusCode::CONFLICT, Some(("form", conflict.to_string())))
        }
        Some(other) => return Err(other.into()),
    };
    let mut errors: Vec<(&'static str, String)> = error
        .iter()
        .filter(|(field, _)| *field != "form")
        .map(|(field, message)| (anchor(field), message.clone()))
        .collect();
    // The form alone shows these; the service stops at its first.
    if form.events.is_empty() && !errors.iter().any(|(f, _)| *f == anchor("events")) {
        errors.push((anchor("events"), "Events: tick at least one.".to_owned()));
    }
    if form.url.trim().is_empty() && !errors.iter().any(|(f, _)| *f == anchor("url")) {
        errors.push((anchor("url"), "URL is required.".to_owned()));
    }
    if status == StatusCode::OK {
        errors.clear();
    }
    let page = WebhooksPage {
        nav: signed_in.nav("webhooks"),
        webhooks: webhooks.iter().map(WebhookView::from).collect(),
        event_types: &EVENT_TYPES,
        form,
        error,
        errors,
        notice,
    };
    Ok(render(status, &page))
}

/// The organization's endpoints and the create form.
pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<DoneQuery>,
) -> Result<Response, PageError> {
    let form = WebhookForm {
        events: vec!["*".to_owned()],
        ..WebhookForm::default()
    };
    list_page(&state, &signed_in, form, None, notice(&query.done)).await
}

/// Creates an endpoint, and shows its secret this once.
pub async fn create(
    State(state): State<AppState>,
    Protected { signed_in, form }: Protected<WebhookForm>,
) -> Result<Response, PageError> {
    let permit = signed_in.principal().permit::<WriteWebhooks>()?;
    let new = NewWebhook {
        url: form.url.trim().to_owned(),
        events: form.events.clone(),
        description: Some(form.description.clone()),
    };
    match state.service.webhooks().create(&permit, new).await {
        Ok(made) => {
            let page = SecretPage {
                nav: signed_in.nav("webhooks"),
                heading: "Endpoint added",
                webhook: WebhookView::from(&made.webhook),
                secret: made.secret.to_string(),
            };
            Ok(render(StatusCode::CREATED, &page))
        }
        Err(error) => list_page(&state, &signed_in, form, Some(error), String::new()).await,
    }
}

/// One endpoint and its latest deliveries.
pub async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    signed_in: SignedIn,
    Query(query): Query<DoneQuery>,
) -> Result<Response, PageError> {
    let permit = signed_in.principal().permit::<ReadWebhooks>()?;
    let webhooks = state.service.webhooks();
    let webhook = webhooks.get(&permit, &id).await?;
    let deliveries = webhooks
        .deliveries(&permit, &id, None, DELIVERIES_SHOWN)
        .await?;
    let page = WebhookPage {
        nav: signed_in.nav("webhooks"),
        webhook: WebhookView::from(&webhook),
        deliveries: deliveries.iter().map(DeliveryView::from).collect(),
        notice: notice(&query.done),
    };
    Ok(render(StatusCode::OK, &page))
}

/// A form with nothing in it but the CSRF token.
#[derive(Debug, Default, Deserialize)]
pub struct EmptyForm {}

/// Enables, disables, deletes or tests an endpoint, or gives it a new signing secret,
/// shown once (`{action}`).
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    Protected { signed_in, .. }: Protected<EmptyForm>,
) -> Result<Response, PageError> {
    let permit = signed_in.principal().permit::<WriteWebhooks>()?;
    let webhooks = state.service.webhooks();
    let enabled = |enabled| WebhookChange {
        enabled: Some(enabled),
        ..WebhookChange::default()
    };
    let back = match action.as_str() {
        "enable" => {
            webhooks.update(&permit, &id, enabled(true)).await?;
            format!("{PATH}/{id}?done=enabled")
        }
        "disable" => {
            webhooks.update(&permit, &id, enabled(false)).await?;
            format!("{PATH}/{id}?done=disabled")
        }
        "test" => {
            webhooks.test(&permit, &id).await?;
            format!("{PATH}/{id}?done=tested")
        }
        "delete" => {
            webhooks.delete(&permit, &id).await?;
            format!("{PATH}?done=deleted")
        }
        "rotate-secret" => {
            let rotated = webhooks.rotate_secret(&permit, &id).await?;
            let page = SecretPage {
                nav: signed_in.nav("webhooks"),
                heading: "New signing secret",
                webhook: WebhookView::from(&rotated.webhook),
                secret: rotated.secret.to_string(),
            };
            return Ok(render(StatusCode::OK, &page));
        }
        _ => return Err(ServiceError::NotFound.into()),
    };
    Ok(Redirect::to(&back).into_response())
}
