//! Developer → API Credentials: the table, the create form, the detail page and its
//! actions. Every change goes through the service, as the API's and the CLI's do; a member
//! manages its organization without bound.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::credential::{
    Credential, DisplayStatus, Environment, ValidationError, validate_description, validate_name,
    validate_rate_limit,
};
use keyward_core::typeid::CredentialId;
use keyward_service::ServiceError;
use keyward_service::credentials::{
    CredentialFilter, Issued, NewCredential, Rotation, StatusChange,
};
use keyward_service::error::Conflict;
use keyward_service::principal::{ReadKeys, ReadRoles, WriteKeys};
use serde::Deserialize;
use time::{Date, OffsetDateTime, Time};

use crate::dashboard::chart::UsageChart;
use crate::dashboard::page::{Nav, PageError, display_time, render};
use crate::dashboard::session::{Protected, SignedIn, TokenOnly};
use crate::error::ApiError;
use crate::routes::split_page;
use crate::state::AppState;

/// The credentials table.
pub const LIST_PATH: &str = "/developer/api-credentials";
/// The last millisecond of a day: when a credential expiring "on" that day stops.
const END_OF_DAY: Time = time::macros::time!(23:59:59.999);
/// Rows per page of the table.
const PAGE_SIZE: u32 = 25;

/// One credential as the pages show it.
#[derive(Debug)]
pub struct CredentialView {
    /// `api_key_…`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description, or empty.
    pub description: String,
    /// `Active`, `Disabled`, `Revoked` or `Expired`.
    pub status: &'static str,
    /// `live` or `test`.
    pub environment: &'static str,
    /// `kw_live_…abcd`: enough to recognise the key, not to use it.
    pub key_hint: String,
    /// Creation time.
    pub created: String,
    /// Expiry, or `Never`.
    pub expires: String,
    /// Last accepted use, or `Never`.
    pub last_used: String,
    /// Where that use came from.
    pub last_used_ip: String,
    /// Scopes granted directly.
    pub scopes: String,
    /// Role, or empty.
    pub role: String,
    /// Allowed addresses, or empty for any.
    pub ip_allowlist: String,
    /// The rate limit override, or empty for the environment's default.
    pub rate_limit: String,
    /// The burst the override allows (twice the rate), or empty.
    pub burst: String,
    /// The organization id: the OAuth client id.
    pub client_id: String,
    /// Whether it can still be changed (not revoked).
    pub revocable: bool,
    /// Whether it is switched off (and can be switched on).
    pub disabled: bool,
    /// The version the page shows, which the rotate form carries.
    pub version: i64,
    /// When a secret of it was last reported found in public, or empty.
    pub exposed: String,
}

impl CredentialView {
    /// The view of `credential` at `now`.
    pub fn new(credential: &Credential, now: OffsetDateTime) -> Self {
        let s = &credential.settings;
        let status = credential.display_status(now);
        Self {
            id: credential.id.to_string(),
            name: s.name.clone(),
            description: s.description.clone().unwrap_or_default(),
            status: match status {
                DisplayStatus::Active => "Active",
                DisplayStatus::Disabled => "Disabled",
                DisplayStatus::Revoked => "Revoked",
                DisplayStatus::Expired => "Expired",
            },
            environment: credential.environment.as_str(),
            key_hint: format!("{}…{}", credential.prefix, credential.hint),
            created: display_time(credential.created_at),
            expires: s
                .expires_at
                .map_or_else(|| "Never".to_owned(), display_time),
            last_used: credential
                .last_used_at
                .map_or_else(|| "Never".to_owned(), display_time),
            last_used_ip: credential
                .last_used_ip
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            scopes: s.permissions.to_strings().join(" "),
            role: s.role.clone().unwrap_or_default(),
            ip_allowlist: s
                .ip_allowlist
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            rate_limit: s
                .rate_limit_override
                .map(|r| r.to_string())
                .unwrap_or_default(),
            burst: s
                .rate_limit_override
                .map(|r| u64::from(r).saturating_mul(2).to_string())
                .unwrap_or_default(),
            client_id: credential.organization_id.to_string(),
            revocable: credential.status != keyward_core::credential::Status::Revoked,
            disabled: credential.status == keyward_core::credential::Status::Disabled,
            version: credential.version,
            exposed: credential.exposed_at.map(display_time).unwrap_or_default(),
        }
    }
}

/// The filters of the table.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListFilter {
    /// `active`, `disabled`, `revoked`, `expired`, or empty for all.
    pub status: String,
    /// `live`, `test`, or empty for both.
    pub environment: String,
    /// Show credentials older than this id (the next page).
    pub before: String,
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct ListPage {
    nav: Nav,
    rows: Vec<CredentialView>,
    filter: ListFilter,
    filtered: bool,
    next_page: Option<String>,
}

/// The credentials table, filtered by status and environment, newest first.
pub async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(filter): Query<ListFilter>,
) -> Result<Response, PageError> {
    let status = DisplayStatus::parse(&filter.status);
    let environment = Environment::parse(&filter.environment);
    let before = CredentialId::parse(&filter.before).ok();
    let filtered = status.is_some() || environment.is_some() || before.is_some();
    let permit = signed_in.principal().permit::<ReadKeys>()?;
    let page_filter = CredentialFilter {
        status,
        environment,
        owner_id: None,
        before,
        search: None,
        limit: PAGE_SIZE + 1,
    };
    let credentials = state
        .service
        .credentials()
        .list(&permit, page_filter)
        .await?;
    let now = state.clock.now();
    let (credentials, cursor) = split_page(credentials, PAGE_SIZE, |c| c.id.to_string());
    let next_page = cursor.map(|id| {
        let mut query = format!("?before={id}");
        if let Some(status) = status {
            query.push_str(&format!("&status={}", status.as_str()));
        }
        if let Some(environment) = environment {
            query.push_str(&format!("&environment={}", environment.as_str()));
        }
        query
    });
    let page = ListPage {
        nav: signed_in.nav("credentials"),
        rows: credentials
            .iter()
            .map(|c| CredentialView::new(c, now))
            .collect(),
        filtered,
        filter,
        next_page,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The fields of the create form, as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CredentialForm {
    /// The submission token of the form ([`SignedIn::submission`]): the id the credential
    /// will have, chosen by the server when the form is shown, so sending the form twice (a
    /// reload) cannot create a second credential.
    pub submission: String,
    /// Name (required).
    pub name: String,
    /// Description.
    pub description: String,
    /// Expiration date, `YYYY-MM-DD` (the credential expires at the end of that day, UTC).
    pub expires_on: String,
    /// `live` or `test`.
    pub environment: String,
    /// Scopes, separated by spaces, commas or new lines.
    pub scopes: String,
    /// A role, or empty.
    pub role: String,
    /// Addresses or CIDR ranges, separated by spaces, commas or new lines.
    pub ip_allowlist: String,
    /// Requests per second, or empty for the environment's default.
    pub rate_limit: String,
}

#[derive(Template)]
#[template(path = "credential_form.html")]
struct FormPage {
    nav: Nav,
    form: CredentialForm,
    roles: Vec<String>,
    errors: BTreeMap<&'static str, String>,
    default_rates: String,
}

impl FormPage {
    /// The error of `field`, or empty.
    fn error(&self, field: &str) -> &str {
        self.errors.get(field).map_or("", String::as_str)
    }
}

async fn form_page(
    state: &AppState,
    signed_in: &SignedIn,
    form: CredentialForm,
    errors: BTreeMap<&'static str, String>,
) -> Result<Response, PageError> {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let limits = &state.engine.config().rate_limits;
    let roles = signed_in.principal().permit::<ReadRoles>()?;
    let page = FormPage {
        nav: signed_in.nav("credentials"),
        roles: state.service.roles().names(&roles).await?,
        form,
        errors,
        default_rates: format!(
            "{}/s for live keys, {}/s for test keys",
            limits.live.per_second, limits.test.per_second
        ),
    };
    Ok(render(status, &page))
}

/// The create form, empty.
pub async fn new_form(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, PageError> {
    let form = CredentialForm {
        submission: signed_in.submission(CredentialId::generate().as_str()),
        environment: "live".to_owned(),
        ..CredentialForm::default()
    };
    form_page(&state, &signed_in, form, BTreeMap::new()).await
}

/// Splits a list typed by a person: spaces, commas and new lines separate entries.
fn entries(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads the form into a new credential, collecting every field error it can find by
/// itself. Public for the fuzz target that feeds it arbitrary forms.
pub fn create_request(
    form: &CredentialForm,
) -> Result<NewCredential, BTreeMap<&'static str, String>> {
    let mut errors = BTreeMap::new();
    if let Err(e) = validate_name(&form.name) {
        errors.insert("name", e.message);
    }
    if let Err(e) = validate_description(Some(&form.description)) {
        errors.insert("description", e.message);
    }
    let environment = match form.environment.as_str() {
        "" | "live" => Environment::Live,
        "test" => Environment::Test,
        _ => {
            errors.insert("environment", "must be live or test".to_owned());
            Environment::Live
        }
    };
    let expires_at = match form.expires_on.trim() {
        "" => None,
        text => match Date::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]"),
        ) {
            // The end of the chosen day, UTC: its last millisecond.
            Ok(day) => Some(day.with_time(END_OF_DAY).assume_utc()),
            Err(_) => {
                errors.insert("expires_on", "must be a date like 2027-01-31".to_owned());
                None
            }
        },
    };
    let rate_limit_override = match form.rate_limit.trim() {
        "" => None,
        text => match text.parse::<u64>() {
            Ok(n) => match validate_rate_limit(Some(n)) {
                Ok(_) => Some(n),
                Err(e) => {
                    errors.insert("rate_limit", e.message);
                    None
                }
            },
            Err(_) => {
                errors.insert(
                    "rate_limit",
                    "must be a whole number of requests per second".to_owned(),
                );
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let role = Some(form.role.trim().to_owned()).filter(|r| !r.is_empty());
    Ok(NewCredential {
        name: form.name.clone(),
        description: Some(form.description.clone()).filter(|d| !d.trim().is_empty()),
        environment,
        permissions: entries(&form.scopes),
        role,
        rate_limit_override,
        ip_allowlist: entries(&form.ip_allowlist),
        expires_at,
        ..NewCredential::default()
    })
}

/// The form field a validation error of the service is about.
fn form_field(error: &ValidationError) -> &'static str {
    match error.field {
        "expires_at" | "not_before" => "expires_on",
        "permissions" => "scopes",
        "rate_limit_override" => "rate_limit",
        field => field,
    }
}

#[derive(Template)]
#[template(path = "issued.html")]
struct IssuedPage {
    nav: Nav,
    credential: CredentialView,
    api_key: String,
    client_id: String,
    client_secret: String,
    heading: &'static str,
    previous_until: Option<String>,
}

/// The page that shows new secrets once, in a dialog. It is never cached.
fn issued_page(
    signed_in: &SignedIn,
    issued: &Issued,
    now: OffsetDateTime,
    heading: &'static str,
    previous_until: Option<String>,
) -> Response {
    let page = IssuedPage {
        nav: signed_in.nav("credentials"),
        credential: CredentialView::new(&issued.credential, now),
        api_key: issued.api_key.expose().to_owned(),
        client_id: issued.credential.organization_id.to_string(),
        client_secret: issued.client_secret.expose().to_owned(),
        heading,
        previous_until,
    };
    render(StatusCode::CREATED, &page)
}

/// Creates a credential from the form; on success shows its secrets once.
pub async fn create(
    State(state): State<AppState>,
    Protected { signed_in, form }: Protected<CredentialForm>,
) -> Result<Response, PageError> {
    // A form without a submission token (sent by a script) still creates one credential
    // per post; a token of another session, or made up, is refused.
    let id = match form.submission.trim() {
        "" => CredentialId::generate(),
        token => signed_in
            .submitted(token)
            .and_then(|id| CredentialId::parse(id).ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_form",
                    "this form was shown to another session; load it again",
                )
            })?,
    };
    let new = match create_request(&form) {
        Ok(new) => NewCredential {
            id: Some(id.clone()),
            ..new
        },
        Err(errors) => return form_page(&state, &signed_in, form, errors).await,
    };
    let permit = signed_in.principal().permit::<WriteKeys>()?;
    let created = state.service.credentials().create(&permit, new).await;
    match created {
        Ok(issued) => Ok(issued_page(
            &signed_in,
            &issued,
            state.clock.now(),
            "Credential created",
            None,
        )),
        Err(ServiceError::Validation(error)) => {
            let errors = BTreeMap::from([(form_field(&error), error.message)]);
            form_page(&state, &signed_in, form, errors).await
        }
        Err(ServiceError::Conflict(Conflict::CredentialExists)) => Ok(done(&id, "created")),
        Err(error) => Err(error.into()),
    }
}

async fn member_credential(
    state: &AppState,
    signed_in: &SignedIn,
    id: &str,
) -> Result<Credential, PageError> {
    let permit = signed_in.principal().permit::<ReadKeys>()?;
    Ok(state.service.credentials().get(&permit, id).await?)
}

/// What the detail page says after an action.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DetailQuery {
    /// The action just done: `disabled`, `enabled` or `revoked`.
    pub done: String,
}

#[derive(Template)]
#[template(path = "credential.html")]
struct DetailPage {
    nav: Nav,
    credential: CredentialView,
    notice: &'static str,
}

/// Back to the credential's page, saying what happened.
fn done(id: &CredentialId, what: &str) -> Response {
    Redirect::to(&format!("{LIST_PATH}/{id}?done={what}")).into_response()
}

/// One credential: its settings, its actions and its usage chart.
pub async fn detail(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<Response, PageError> {
    let credential = member_credential(&state, &signed_in, &id).await?;
    let notice = match query.done.as_str() {
        "disabled" => "The credential is disabled: every check refuses it until it is enabled.",
        "enabled" => "The credential is enabled again.",
        "revoked" => "The credential is revoked: every check refuses it, for good.",
        "rotated" => {
            "The credential has a new API key and client secret. The previous ones stop when \
             the grace period you chose ends."
        }
        "created" => {
            "This form was sent already and the credential exists: its API key and client \
             secret were shown once and cannot be shown again. Rotate it for new ones."
        }
        "unchanged" => {
            "Nothing was rotated: the credential changed since that page was shown, or the \
             form was sent twice. Its secrets are as they were."
        }
        _ => "",
    };
    let page = DetailPage {
        nav: signed_in.nav("credentials"),
        credential: CredentialView::new(&credential, state.clock.now()),
        notice,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The usage chart of one credential (an HTML fragment the detail page loads).
pub async fn usage_chart(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let credential = member_credential(&state, &signed_in, &id).await?;
    let chart = UsageChart::last_day(&state, &signed_in, &credential).await?;
    Ok(render(StatusCode::OK, &chart))
}

/// Disables, enables or revokes a credential (`action` names which), then shows it.
pub async fn change_status(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    Protected { signed_in, .. }: Protected<TokenOnly>,
) -> Result<Response, PageError> {
    let (change, what) = match action.as_str() {
        "disable" => (StatusChange::Disable, "disabled"),
        "enable" => (StatusChange::Enable, "enabled"),
        "revoke" => (StatusChange::Revoke, "revoked"),
        _ => return Err(ApiError::NotFound.into()),
    };
    let credential = member_credential(&state, &signed_in, &id).await?;
    let permit = signed_in.principal().permit::<WriteKeys>()?;
    state
        .service
        .credentials()
        .set_status(&permit, credential.id.as_str(), change)
        .await?;
    Ok(done(&credential.id, what))
}

/// The rotate form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RotateForm {
    /// Seconds the old secrets keep working: 0 to 604800.
    pub grace_period_seconds: String,
    /// The credential's version when the form was shown: a form sent twice rotates once.
    pub version: String,
}

/// Issues new secrets, shown once; the old ones stop now or after the chosen grace period.
pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Protected { signed_in, form }: Protected<RotateForm>,
) -> Result<Response, PageError> {
    let credential = member_credential(&state, &signed_in, &id).await?;
    let grace = form
        .grace_period_seconds
        .trim()
        .parse::<i64>()
        .map_err(|_| {
            ApiError::from(ValidationError::new(
                "grace_period_seconds",
                "must be a number of seconds",
            ))
        })?;
    // A form without a version (sent by a script) rotates whatever the credential is now.
    let version = match form.version.trim() {
        "" => None,
        text => Some(text.parse::<i64>().map_err(|_| {
            ApiError::bad_request("invalid_form", "the form's credential version is not one")
        })?),
    };
    let permit = signed_in.principal().permit::<WriteKeys>()?;
    let rotation = Rotation {
        grace_period_seconds: grace,
        expected_version: version,
    };
    let rotated = state
        .service
        .credentials()
        .rotate(&permit, credential.id.as_str(), rotation)
        .await;
    let (issued, old_until) = match rotated {
        Ok(rotated) => (rotated.issued, rotated.previous_secrets_expire_at),
        Err(ServiceError::Conflict(Conflict::CredentialChanged)) => {
            return Ok(done(&credential.id, "unchanged"));
        }
        Err(error) => return Err(error.into()),
    };
    Ok(issued_page(
        &signed_in,
        &issued,
        state.clock.now(),
        "Credential rotated",
        Some(old_until.map_or_else(
            || "The previous API key and client secret no longer work.".to_owned(),
            |t| {
                format!(
                    "The previous API key and client secret keep working until {}.",
                    display_time(t)
                )
            },
        )),
    ))
}
