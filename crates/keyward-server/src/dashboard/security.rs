//! Developer → API Security (the organization's IP access rules) and the audit log page.
//! Rule changes go through the same service functions as `/v1/ip-rules`, lockout guard
//! included: here the address guarded is the member's own.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::credential::ValidationError;
use keyward_core::ip_rule::RuleKind;
use keyward_service::ServiceError;
use keyward_service::ip_rules::NewIpRule;
use keyward_service::principal::{
    DeleteIpRules, ReadAuditLog, ReadIpRules, ReadMembers, WriteIpRules,
};
use serde::Deserialize;

use crate::dashboard::credentials::plain_message;
use crate::dashboard::page::{Nav, PageError, display_time, parse_day, render};
use crate::dashboard::session::{Protected, SignedIn};
use crate::error::ApiError;
use crate::routes::audit::{self, AuditExportQuery, AuditLogQuery};
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
    /// The error of the add form, and the field it is about (`form` for the form as a
    /// whole), in plain words.
    error: Option<(&'static str, String)>,
    /// Every error of the add form, for the summary: the element each links to, and the
    /// message.
    errors: Vec<(&'static str, String)>,
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
    security_page_with(state, signed_in, form, failure, Vec::new(), notice).await
}

/// The element of the page a field's error links to.
fn anchor(field: &'static str) -> &'static str {
    match field {
        "description" => "rule-description",
        "form" => "add-rule",
        other => other,
    }
}

async fn security_page_with(
    state: &AppState,
    signed_in: &SignedIn,
    form: RuleForm,
    failure: Option<(ServiceError, String)>,
    more: Vec<ValidationError>,
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
            Some((error.field, plain_message(error.field, &error.message))),
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
    let mut errors: Vec<(&'static str, String)> = error
        .iter()
        .map(|(field, message)| (anchor(field), message.clone()))
        .collect();
    errors.extend(
        more.iter()
            .map(|e| (anchor(e.field), plain_message(e.field, &e.message))),
    );
    let (status, error) = if error.is_none() && !more.is_empty() {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            more.first()
                .map(|e| (e.field, plain_message(e.field, &e.message))),
        )
    } else {
        (status, error)
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
        errors,
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
    // Who may add rules is decided first: a refused member learns nothing of the form.
    let permit = signed_in.principal().permit::<WriteIpRules>()?;
    // What the form alone shows wrong, all at once; the service checks the rest.
    let mut wrong = Vec::new();
    let kind = match form.kind.as_str() {
        "allow" => RuleKind::Allow,
        "deny" => RuleKind::Deny,
        _ => {
            wrong.push(ValidationError::new("type", "must be allow or deny"));
            RuleKind::Allow
        }
    };
    if let Err(error) = state
        .service
        .ip_rules()
        .policy()
        .parse_network(&form.ip_network)
    {
        wrong.push(error);
    }
    if !wrong.is_empty() {
        return security_page_with(&state, &signed_in, form, None, wrong, "").await;
    }
    let new = NewIpRule {
        ip_network: form.ip_network.trim().to_owned(),
        kind,
        description: Some(form.description.clone()),
        confirm_lockout: form.confirm_lockout == "on",
    };
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
    /// The actor's id: a credential, a member, `cli` or `keyward`.
    pub actor: String,
    /// What to call the actor: a member's email, a credential's name, or in words.
    pub actor_name: String,
    /// From where.
    pub source_ip: String,
    /// The object acted on.
    pub target: String,
    /// The page of the object, when it has one.
    pub target_link: String,
    /// Facts about the change, as `name: value` pairs.
    pub details: String,
}

/// An actor to filter by, as the filter's menu lists it.
#[derive(Debug)]
pub struct ActorChoice {
    id: String,
    name: String,
}

#[derive(Template)]
#[template(path = "audit_log.html")]
struct AuditPage {
    nav: Nav,
    events: Vec<EventView>,
    filters: AuditPageQuery,
    actors: Vec<ActorChoice>,
    /// Whether the actor filtered by is none of `actors` (a credential): the menu adds it.
    unlisted_actor: bool,
    /// The filters as a query string (`&action=…`), for the paging and export links.
    filter_query: String,
    newer_page: Option<String>,
    older_page: Option<String>,
    errors: Vec<(&'static str, String)>,
}

/// The audit log page's filters and page, as the form sends them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct AuditPageQuery {
    /// An action, or a family of them ending in `.`.
    pub action: String,
    /// An actor id.
    pub actor: String,
    /// An object id.
    pub target_id: String,
    /// The first day (`2026-06-01`, UTC) included.
    pub from: String,
    /// The last day included.
    pub to: String,
    /// Events older than this one.
    pub before: String,
    /// Events newer than this one.
    pub after: String,
}

/// The families of actions the filter offers, with their names.
pub const ACTION_FAMILIES: &[(&str, &str)] = &[
    ("key.", "Credentials"),
    ("ip_rule.", "IP rules"),
    ("member.", "Members"),
    ("webhook.", "Webhooks"),
    ("role.", "Roles"),
    ("token.", "Access tokens"),
];

/// A day typed in a date field (`2026-06-01`), as the RFC 3339 time it starts at, or a
/// day later for the end of a range.
fn day_start(
    day: &str,
    field: &'static str,
    days_later: i64,
) -> Result<Option<String>, (&'static str, String)> {
    if day.is_empty() {
        return Ok(None);
    }
    let date = parse_day(day).ok_or_else(|| {
        (
            field,
            format!("Enter the date as 2026-06-01, not “{}”.", truncated(day)),
        )
    })?;
    let start = date.midnight().assume_utc() + time::Duration::days(days_later);
    Ok(Some(keyward_core::clock::rfc3339(start)))
}

/// At most 40 characters of `text`, for repeating what was typed in a message.
fn truncated(text: &str) -> String {
    let mut cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

impl AuditPageQuery {
    /// The API's query for these filters, or the fields that cannot be read.
    fn api_query(&self) -> Result<AuditLogQuery, Vec<(&'static str, String)>> {
        let text = |value: &str| Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        let mut errors = Vec::new();
        let from = day_start(&self.from, "from", 0).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let to = day_start(&self.to, "to", 1).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        if let (Some(from), Some(to)) = (&from, &to)
            && from >= to
        {
            errors.push((
                "to",
                "The last day cannot come before the first.".to_owned(),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(AuditLogQuery {
            action: text(&self.action),
            actor: text(&self.actor),
            target_id: text(&self.target_id),
            from,
            to,
            cursor: text(&self.before),
            before_cursor: text(&self.after),
            limit: Some(AUDIT_PAGE_SIZE),
        })
    }

    /// The filters (not the page) as `&name=value` pairs.
    fn as_query(&self) -> String {
        [
            ("action", &self.action),
            ("actor", &self.actor),
            ("target_id", &self.target_id),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("&{k}={}", crate::dashboard::session::url_encode(v.trim())))
        .collect()
    }
}

/// The page of an object named in the audit log, if the dashboard has one.
fn object_link(id: &str) -> String {
    if id.starts_with("api_key_") {
        format!("/developer/api-credentials/{id}")
    } else if id.starts_with("webhook_") {
        format!("/developer/webhooks/{id}")
    } else if id.starts_with("ip_rule_") {
        PATH.to_owned()
    } else if id.starts_with("user_") {
        crate::dashboard::members::PATH.to_owned()
    } else {
        String::new()
    }
}

/// What to call an actor the organization cannot name.
fn actor_in_words(id: &str) -> String {
    match id {
        "cli" => "The operator (CLI)".to_owned(),
        "keyward" => "Keyward".to_owned(),
        id if id.starts_with("user_") => "A removed member".to_owned(),
        id if id.starts_with("api_key_") => "A deleted credential".to_owned(),
        other => other.to_owned(),
    }
}

/// The organization's audit log, newest first, filtered by action, actor, object and days,
/// paged both ways.
pub async fn audit_log(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(filters): Query<AuditPageQuery>,
) -> Result<Response, PageError> {
    let principal = signed_in.principal();
    let permit = principal.permit::<ReadAuditLog>()?;
    let mut actors = vec![
        ActorChoice {
            id: "cli".to_owned(),
            name: actor_in_words("cli"),
        },
        ActorChoice {
            id: "keyward".to_owned(),
            name: actor_in_words("keyward"),
        },
    ];
    if let Ok(members) = principal.permit::<ReadMembers>() {
        let listed = state.service.members().list(members).await?;
        actors.splice(
            0..0,
            listed.into_iter().map(|m| ActorChoice {
                id: m.id.to_string(),
                name: m.email,
            }),
        );
    }
    let (status, page, errors) = match filters.api_query() {
        Err(errors) => (StatusCode::BAD_REQUEST, None, errors),
        Ok(query) => match audit::page(&state, &permit, query).await {
            Ok(page) => (StatusCode::OK, Some(page), Vec::new()),
            Err(ApiError::BadRequest { message, .. }) => {
                let field = ["action", "actor", "target_id", "before", "after"]
                    .into_iter()
                    .find(|f| message.starts_with(f))
                    .unwrap_or("action");
                (StatusCode::BAD_REQUEST, None, vec![(field, message)])
            }
            Err(error) => return Err(error.into()),
        },
    };
    let filter_query = filters.as_query();
    let unlisted_actor = !filters.actor.is_empty() && !actors.iter().any(|a| a.id == filters.actor);
    let (events, newer_page, older_page) = match page {
        None => (Vec::new(), None, None),
        Some(page) => (
            page.data,
            page.prev_cursor
                .map(|id| format!("?after={id}{filter_query}")),
            page.next_cursor
                .map(|id| format!("?before={id}{filter_query}")),
        ),
    };
    let page = AuditPage {
        nav: signed_in.nav("audit"),
        events: events
            .into_iter()
            .map(|e| EventView {
                when: e.occurred_at.replace('T', " ").replace('Z', " UTC"),
                action: e.action,
                actor_name: e.actor_name.unwrap_or_else(|| actor_in_words(&e.actor)),
                actor: e.actor,
                source_ip: e.source_ip.unwrap_or_default(),
                target_link: e.target_id.as_deref().map(object_link).unwrap_or_default(),
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
        filters,
        actors,
        unlisted_actor,
        filter_query,
        newer_page,
        older_page,
        errors,
    };
    Ok(render(status, &page))
}

/// The audit log as a file (`?format=csv|json` and the page's filters), for the member's
/// browser to save.
pub async fn audit_export(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(filters): Query<AuditPageQuery>,
    Query(format): Query<ExportFormatQuery>,
) -> Result<Response, PageError> {
    let permit = signed_in.principal().permit::<ReadAuditLog>()?;
    let query = filters.api_query().map_err(|errors| {
        let message = errors
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
            .join(" ");
        PageError(ApiError::bad_request("invalid_query", message))
    })?;
    let export = AuditExportQuery {
        format: Some(format.format),
        action: query.action,
        actor: query.actor,
        target_id: query.target_id,
        from: query.from,
        to: query.to,
    };
    Ok(audit::export_file(&state, &permit, export).await?)
}

/// The format of an export link.
#[derive(Debug, Deserialize)]
pub struct ExportFormatQuery {
    /// `csv` or `json`.
    #[serde(default = "csv")]
    pub format: String,
}

fn csv() -> String {
    "csv".to_owned()
}
