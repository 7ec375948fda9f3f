//! Developer → API Security (the organization's IP access rules) and the audit log page.
//! Rule changes go through the same service functions as `/v1/ip-rules`, lockout guard
//! included: here the address guarded is the member's own.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::ip_rule::RuleKind;
use keyward_core::typeid::AuditEventId;
use keyward_service::ServiceError;
use keyward_service::audit::AuditQuery;
use keyward_service::ip_rules::NewIpRule;
use keyward_service::principal::{DeleteIpRules, ReadAuditLog, ReadIpRules, WriteIpRules};
use serde::Deserialize;

use crate::dashboard::page::{Nav, PageError, display_time, render};
use crate::dashboard::session::{Protected, SignedIn};
use crate::routes::split_page;
use crate::state::AppState;

/// The API Security page.
pub const PATH: &str = "/developer/api-security";
/// Events per page of the audit log.
const AUDIT_PAGE_SIZE: u32 = 50;

/// One rule as the page shows it.
#[derive(Debug)]
pub struct RuleView {
    /// `ip_rule_…`.
    pub id: String,
    /// `allow` or `deny`.
    pub kind: &'static str,
    /// The range.
    pub network: String,
    /// The note, or empty.
    pub description: String,
    /// Creation time.
    pub created: String,
    /// When it last decided a request, or `Never`.
    pub last_matched: String,
}

/// The add form, as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuleForm {
    /// Address or CIDR range.
    pub ip_network: String,
    /// `allow` or `deny`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A note.
    pub description: String,
    /// `on` when the member accepts shutting out its own address.
    pub confirm_lockout: String,
}

#[derive(Template)]
#[template(path = "api_security.html")]
struct SecurityPage {
    nav: Nav,
    rules: Vec<RuleView>,
    form: RuleForm,
    /// The error of the add form, and the field it is about.
    error: Option<(&'static str, String)>,
    /// Whether the last change was refused for shutting out the member's own address.
    lockout: bool,
    /// The rule whose removal needs the lockout confirmation.
    removing: String,
    max_rules: usize,
    ipv4_prefixes: String,
    ipv6_prefixes: String,
    your_ip: String,
    notice: &'static str,
}

/// What the page says after a change.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SecurityQuery {
    /// `added` or `removed`.
    pub done: String,
}

async fn security_page(
    state: &AppState,
    signed_in: &SignedIn,
    form: RuleForm,
    failure: Option<(ServiceError, String)>,
    notice: &'static str,
) -> Result<Response, PageError> {
    let permit = signed_in.principal().permit::<ReadIpRules>()?;
    let ip_rules = state.service.ip_rules();
    let rules = ip_rules.list(&permit).await?;
    let policy = ip_rules.policy();
    let (status, error, lockout, removing) = match failure {
        None => (StatusCode::OK, None, false, String::new()),
        Some((ServiceError::Lockout { .. }, removing)) => {
            (StatusCode::CONFLICT, None, true, removing)
        }
        Some((ServiceError::Validation(error), _)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some((error.field, error.message)),
            false,
            String::new(),
        ),
        Some((ServiceError::Conflict(conflict), _)) => (
            StatusCode::CONFLICT,
            Some(("form", conflict.to_string())),
            false,
            String::new(),
        ),
        Some((other, _)) => return Err(other.into()),
    };
    let page = SecurityPage {
        nav: signed_in.nav("security"),
        rules: rules
            .iter()
            .map(|rule| RuleView {
                id: rule.id.to_string(),
                kind: rule.kind.as_str(),
                network: rule.network.to_string(),
                description: rule.description.clone().unwrap_or_default(),
                created: display_time(rule.created_at),
                last_matched: rule
                    .last_matched_at
                    .map_or_else(|| "Never".to_owned(), display_time),
            })
            .collect(),
        form,
        error,
        lockout,
        removing,
        max_rules: policy.max_rules,
        ipv4_prefixes: policy.ipv4_range(),
        ipv6_prefixes: policy.ipv6_range(),
        your_ip: signed_in
            .actor
            .source_ip
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        notice,
    };
    Ok(render(status, &page))
}

/// The organization's IP rules, the add form and the limits.
pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<SecurityQuery>,
) -> Result<Response, PageError> {
    let notice = match query.done.as_str() {
        "added" => "The rule is added and applies to the next request.",
        "removed" => "The rule is removed.",
        _ => "",
    };
    let form = RuleForm {
        kind: "allow".to_owned(),
        ..RuleForm::default()
    };
    security_page(&state, &signed_in, form, None, notice).await
}

/// Adds a rule from the form.
pub async fn add_rule(
    State(state): State<AppState>,
    Protected { signed_in, form }: Protected<RuleForm>,
) -> Result<Response, PageError> {
    let kind = match form.kind.as_str() {
        "allow" => RuleKind::Allow,
        "deny" => RuleKind::Deny,
        _ => {
            let error =
                keyward_core::credential::ValidationError::new("type", "must be allow or deny");
            return security_page(
                &state,
                &signed_in,
                form,
                Some((error.into(), String::new())),
                "",
            )
            .await;
        }
    };
    let new = NewIpRule {
        ip_network: form.ip_network.trim().to_owned(),
        kind,
        description: Some(form.description.clone()),
        confirm_lockout: form.confirm_lockout == "on",
    };
    let permit = signed_in.principal().permit::<WriteIpRules>()?;
    match state.service.ip_rules().add(&permit, new).await {
        Ok(_) => Ok(Redirect::to(&format!("{PATH}?done=added")).into_response()),
        Err(error) => {
            security_page(&state, &signed_in, form, Some((error, String::new())), "").await
        }
    }
}

/// The remove form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RemoveForm {
    /// `on` when the member accepts shutting out its own address.
    pub confirm_lockout: String,
}

/// Removes a rule.
pub async fn remove_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Protected { signed_in, form }: Protected<RemoveForm>,
) -> Result<Response, PageError> {
    let confirmed = form.confirm_lockout == "on";
    let permit = signed_in.principal().permit::<DeleteIpRules>()?;
    match state
        .service
        .ip_rules()
        .remove(&permit, &id, confirmed)
        .await
    {
        Ok(()) => Ok(Redirect::to(&format!("{PATH}?done=removed")).into_response()),
        Err(error @ (ServiceError::Conflict(_) | ServiceError::Lockout { .. })) => {
            let form = RuleForm {
                kind: "allow".to_owned(),
                ..RuleForm::default()
            };
            security_page(&state, &signed_in, form, Some((error, id)), "").await
        }
        Err(error) => Err(error.into()),
    }
}

/// One audit event as the page shows it.
#[derive(Debug)]
pub struct EventView {
    /// When.
    pub when: String,
    /// What, e.g. `key.revoked`.
    pub action: String,
    /// Who: a credential, a member or `cli`.
    pub actor: String,
    /// From where.
    pub source_ip: String,
    /// The object acted on.
    pub target: String,
    /// Facts about the change, as `name: value` pairs.
    pub details: String,
}

#[derive(Template)]
#[template(path = "audit_log.html")]
struct AuditPage {
    nav: Nav,
    events: Vec<EventView>,
    next_page: Option<String>,
}

/// The audit log's page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuditPageQuery {
    /// Events older than this one.
    pub before: String,
}

/// The organization's audit log, newest first.
pub async fn audit_log(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<AuditPageQuery>,
) -> Result<Response, PageError> {
    let permit = signed_in.principal().permit::<ReadAuditLog>()?;
    let events = state
        .service
        .audit()
        .list(
            &permit,
            &AuditQuery {
                action: None,
                target_id: None,
                before: AuditEventId::parse(&query.before).ok(),
                limit: AUDIT_PAGE_SIZE + 1,
            },
        )
        .await?;
    let (events, next) = split_page(events, AUDIT_PAGE_SIZE, |e| e.id.to_string());
    let page = AuditPage {
        nav: signed_in.nav("audit"),
        events: events
            .into_iter()
            .map(|e| EventView {
                when: display_time(e.occurred_at),
                action: e.action,
                actor: e.actor,
                source_ip: e.source_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                target: e.target_id.unwrap_or_default(),
                details: e
                    .details
                    .iter()
                    .map(|(name, value)| match value {
                        serde_json::Value::String(text) => format!("{name}: {text}"),
                        other => format!("{name}: {other}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
        next_page: next.map(|id| format!("?before={id}")),
    };
    Ok(render(StatusCode::OK, &page))
}
