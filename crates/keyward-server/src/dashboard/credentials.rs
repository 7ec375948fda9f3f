//! Developer → API Credentials: the table, the create form, the detail page and its
//! actions. Every change goes through the service, as the API's and the CLI's do; a member
//! manages its organization without bound.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::credential::{
    Credential, DisplayStatus, Environment, ValidationError, parse_ip_allowlist,
    validate_description, validate_metadata, validate_name, validate_owner_id, validate_rate_limit,
};
use keyward_core::scope::ScopeCatalogue;
use keyward_core::typeid::CredentialId;
use keyward_service::ServiceError;
use keyward_service::credentials::{
    CredentialChange, CredentialFilter, Issued, NewCredential, Rotation, SecretState, StatusChange,
};
use keyward_service::error::Conflict;
use keyward_service::principal::{ReadKeys, ReadRoles, WriteKeys};
use serde::Deserialize;
use time::{OffsetDateTime, Time};

use crate::dashboard::chart::{Range, UsageChart};
use crate::dashboard::page::{Nav, PageError, display_time, parse_day, render};
use crate::dashboard::session::{Protected, SignedIn, TokenOnly, url_encode};
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
    /// Who it is for in the user's own system, or empty.
    pub owner_id: String,
    /// Its metadata as JSON, or empty when it has none.
    pub metadata: String,
    /// Whether it holds every scope (`*`): revoking it may stop an integration that does
    /// everything.
    pub all_scopes: bool,
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
            owner_id: s.owner_id.clone().unwrap_or_default(),
            metadata: if s.metadata.is_empty() {
                String::new()
            } else {
                serde_json::Value::Object(s.metadata.clone()).to_string()
            },
            all_scopes: s.permissions.grants(&keyward_core::scope::Scope::all()),
        }
    }
}

/// The filters of the table.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListFilter {
    /// `active`, `disabled`, `revoked`, `expired`, `all` (revoked ones included), or empty
    /// for every credential but the revoked ones, which are archived.
    pub status: String,
    /// `live`, `test`, or empty for both.
    pub environment: String,
    /// A name (or part of one), an id or an owner id.
    pub q: String,
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
    /// What the pasted key turned out to be, or an error about the search.
    lookup: Option<Lookup>,
    errors: Vec<(&'static str, String)>,
}

/// The answer to a pasted key.
#[derive(Debug)]
pub struct Lookup {
    /// The credential's id, when the key is one of this organization's.
    id: String,
    name: String,
    /// `active`, `replaced`, … in words.
    state: &'static str,
}

/// The credentials table, filtered by status, environment and a search, newest first;
/// revoked credentials are archived (left out) unless the filter asks for them.
pub async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(filter): Query<ListFilter>,
) -> Result<Response, PageError> {
    list_page(&state, &signed_in, filter, None, Vec::new()).await
}

async fn list_page(
    state: &AppState,
    signed_in: &SignedIn,
    filter: ListFilter,
    lookup: Option<Lookup>,
    mut errors: Vec<(&'static str, String)>,
) -> Result<Response, PageError> {
    let status = DisplayStatus::parse(&filter.status);
    let every = filter.status == "all";
    let environment = Environment::parse(&filter.environment);
    let before = CredentialId::parse(&filter.before).ok();
    let search = Some(filter.q.trim().to_owned()).filter(|q| !q.is_empty());
    let filtered =
        status.is_some() || every || environment.is_some() || before.is_some() || search.is_some();
    let permit = signed_in.principal().permit::<ReadKeys>()?;
    let page_filter = CredentialFilter {
        status,
        environment,
        owner_id: None,
        before,
        search: search.clone(),
        limit: PAGE_SIZE + 1,
        hide_revoked: status.is_none() && !every,
        ..CredentialFilter::default()
    };
    let listed = state.service.credentials().list(&permit, page_filter).await;
    let credentials = match listed {
        Ok(credentials) => credentials,
        // A secret typed in the search box: refused, and said how to look it up.
        Err(ServiceError::Validation(error)) => {
            errors.push(("q", plain_search_error(&error)));
            Vec::new()
        }
        Err(error) => return Err(error.into()),
    };
    let now = state.clock.now();
    let (credentials, cursor) = split_page(credentials, PAGE_SIZE, |c| c.id.to_string());
    let next_page = cursor.map(|id| {
        let mut query = format!("?before={id}");
        if !filter.status.is_empty() {
            query.push_str(&format!("&status={}", url_encode(&filter.status)));
        }
        if let Some(environment) = environment {
            query.push_str(&format!("&environment={}", environment.as_str()));
        }
        if let Some(search) = &search {
            query.push_str(&format!("&q={}", url_encode(search)));
        }
        query
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = ListPage {
        nav: signed_in.nav("credentials"),
        rows: credentials
            .iter()
            .map(|c| CredentialView::new(c, now))
            .collect(),
        filtered,
        filter,
        next_page,
        lookup,
        errors,
    };
    Ok(render(status, &page))
}

/// The search's refusal of a secret, in words.
fn plain_search_error(error: &ValidationError) -> String {
    if error.message.contains("lookup") || error.message.contains("secret") {
        "That looks like a secret: paste it in “Find a pasted key” instead, which never \
         stores or logs it."
            .to_owned()
    } else {
        plain_message("q", &error.message)
    }
}

/// The paste-a-key form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct LookupForm {
    /// The pasted API key or client secret.
    pub secret: String,
}

impl std::fmt::Debug for LookupForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupForm(…)")
    }
}

/// Finds the credential of a pasted key: the server hashes what was pasted and looks the
/// digest up, as `POST /v1/keys/lookup` does; nothing pasted is stored, logged or shown
/// back.
pub async fn lookup(
    State(state): State<AppState>,
    Protected { signed_in, form }: Protected<LookupForm>,
) -> Result<Response, PageError> {
    let permit = signed_in.principal().permit::<ReadKeys>()?;
    let found = state
        .service
        .credentials()
        .identify(&permit, form.secret.trim())
        .await?;
    let (lookup, errors) = match found {
        Some(owner) => (
            Some(Lookup {
                id: owner.credential.id.to_string(),
                name: owner.credential.settings.name.clone(),
                state: match owner.state {
                    SecretState::Replaced => "replaced by a rotation: it no longer works",
                    SecretState::Credential(DisplayStatus::Active) => "active: it works",
                    SecretState::Credential(DisplayStatus::Disabled) => "disabled",
                    SecretState::Credential(DisplayStatus::Revoked) => "revoked",
                    SecretState::Credential(DisplayStatus::Expired) => "expired",
                },
            }),
            Vec::new(),
        ),
        None => (
            None,
            vec![(
                "secret",
                "No credential of your organization has this key or client secret.".to_owned(),
            )],
        ),
    };
    list_page(&state, &signed_in, ListFilter::default(), lookup, errors).await
}

/// The fields of the create and edit forms, as typed.
#[derive(Debug, Default)]
pub struct CredentialForm {
    /// The submission token of the create form ([`SignedIn::submission`]): the id the
    /// credential will have, chosen by the server when the form is shown, so sending the
    /// form twice (a reload) cannot create a second credential.
    pub submission: String,
    /// The credential's version when the edit form was shown: a form older than another
    /// change is refused, not applied over it.
    pub version: String,
    /// Name (required).
    pub name: String,
    /// Description.
    pub description: String,
    /// Expiration date, `YYYY-MM-DD` (the credential expires at the end of that day, UTC).
    pub expires_on: String,
    /// First day of validity, `YYYY-MM-DD` (from its start, UTC), or empty for at once.
    pub starts_on: String,
    /// `live` or `test`.
    pub environment: String,
    /// Scopes typed, separated by spaces, commas or new lines.
    pub scopes: String,
    /// Scopes ticked in the picker (`scope`, a field named once per box).
    pub picked: Vec<String>,
    /// A role, or empty.
    pub role: String,
    /// Addresses or CIDR ranges, separated by spaces, commas or new lines.
    pub ip_allowlist: String,
    /// Requests per second, or empty for the environment's default.
    pub rate_limit: String,
    /// Who the credential belongs to in the user's own system, or empty.
    pub owner_id: String,
    /// A JSON object, or empty.
    pub metadata: String,
}

impl<'de> Deserialize<'de> for CredentialForm {
    /// Read from the form's pairs: the picker's boxes (`scope`) are a field named more
    /// than once, which a plain urlencoded struct cannot hold. Any other field named twice
    /// is refused, as such a struct would; unknown names are ignored.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut form = CredentialForm::default();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in Vec::<(String, String)>::deserialize(deserializer)? {
            if name != "scope" && !seen.insert(name.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate field `{name}`"
                )));
            }
            let field = match name.as_str() {
                "scope" => {
                    form.picked.push(value);
                    continue;
                }
                "submission" => &mut form.submission,
                "version" => &mut form.version,
                "name" => &mut form.name,
                "description" => &mut form.description,
                "expires_on" => &mut form.expires_on,
                "starts_on" => &mut form.starts_on,
                "environment" => &mut form.environment,
                "scopes" => &mut form.scopes,
                "role" => &mut form.role,
                "ip_allowlist" => &mut form.ip_allowlist,
                "rate_limit" => &mut form.rate_limit,
                "owner_id" => &mut form.owner_id,
                "metadata" => &mut form.metadata,
                _ => continue,
            };
            *field = value;
        }
        Ok(form)
    }
}

impl CredentialForm {
    /// The form filled with `credential` as it is, to edit it: the catalogue's exact scopes
    /// and resource wildcards go to the picker, anything else to the text.
    fn of(credential: &Credential, picker: &ScopePicker) -> Self {
        let s = &credential.settings;
        let (picked, typed): (Vec<String>, Vec<String>) = s
            .permissions
            .to_strings()
            .into_iter()
            .partition(|scope| picker.offers(scope));
        Self {
            version: credential.version.to_string(),
            name: s.name.clone(),
            description: s.description.clone().unwrap_or_default(),
            expires_on: s
                .expires_at
                .map(|t| {
                    let day = t.to_offset(time::UtcOffset::UTC).date();
                    format!(
                        "{:04}-{:02}-{:02}",
                        day.year(),
                        u8::from(day.month()),
                        day.day()
                    )
                })
                .unwrap_or_default(),
            starts_on: s.not_before.map(day_of).unwrap_or_default(),
            environment: credential.environment.as_str().to_owned(),
            scopes: typed.join(" "),
            picked,
            role: s.role.clone().unwrap_or_default(),
            ip_allowlist: s
                .ip_allowlist
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            rate_limit: s
                .rate_limit_override
                .map(|r| r.to_string())
                .unwrap_or_default(),
            owner_id: s.owner_id.clone().unwrap_or_default(),
            metadata: if s.metadata.is_empty() {
                String::new()
            } else {
                serde_json::to_string_pretty(&s.metadata).unwrap_or_default()
            },
            submission: String::new(),
        }
    }

    /// Every scope the form holds: ticked, then typed.
    fn permissions(&self) -> Vec<String> {
        let mut all = self.picked.clone();
        all.extend(entries(&self.scopes));
        all
    }
}

/// The UTC day of `t`, as a date field holds it.
fn day_of(t: OffsetDateTime) -> String {
    let day = t.to_offset(time::UtcOffset::UTC).date();
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// The scope picker: a grid of the catalogue's resources by the preset actions, each
/// resource's wildcard, and every scope.
#[derive(Debug)]
pub struct ScopePicker {
    /// Resource name, and its actions among the presets.
    rows: Vec<(String, Vec<&'static str>)>,
}

/// The actions the picker's columns hold.
pub const PICKER_COLUMNS: [&str; 3] = ["read", "write", "delete"];

impl ScopePicker {
    fn new(catalogue: &ScopeCatalogue) -> Self {
        Self {
            rows: catalogue
                .resources()
                .map(|(resource, actions)| {
                    let columns = PICKER_COLUMNS
                        .into_iter()
                        .filter(|a| actions.iter().any(|b| b == a))
                        .collect();
                    (resource.to_owned(), columns)
                })
                .collect(),
        }
    }

    /// Whether the picker has a box for `scope`.
    fn offers(&self, scope: &str) -> bool {
        scope == "*"
            || self.rows.iter().any(|(resource, actions)| {
                scope
                    .strip_prefix(resource.as_str())
                    .and_then(|r| r.strip_prefix(':'))
                    .is_some_and(|action| action == "*" || actions.contains(&action))
            })
    }
}

#[derive(Template)]
#[template(path = "credential_form.html")]
struct FormPage {
    nav: Nav,
    form: CredentialForm,
    /// `None` to create; the credential's id and name to edit it.
    editing: Option<(String, String)>,
    roles: Vec<RoleChoice>,
    picker: ScopePicker,
    /// The scopes the form gives, with its role's: what the credential would hold.
    effective: Vec<String>,
    errors: Vec<(&'static str, String)>,
    /// Whether the credential changed since the edit form was shown.
    conflict: bool,
    default_rates: String,
}

/// A role the form offers, with the scopes it grants (for the effective scopes).
#[derive(Debug)]
pub struct RoleChoice {
    name: String,
    scopes: String,
}

impl FormPage {
    /// The error of `field`, or empty.
    fn error(&self, field: &str) -> &str {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map_or("", |(_, m)| m.as_str())
    }

    /// Whether the picker's box for `scope` is ticked.
    fn picked(&self, scope: &str) -> bool {
        self.form.picked.iter().any(|p| p == scope)
    }
}

/// What a form field is called in messages.
fn label(field: &str) -> &'static str {
    match field {
        "name" => "Name",
        "description" => "Description",
        "expires_on" => "Expiration date",
        "starts_on" => "Start date",
        "environment" => "Environment",
        "scopes" => "Scopes",
        "role" => "Role",
        "ip_allowlist" => "IP allowlist",
        "rate_limit" => "Rate limit",
        "owner_id" => "Owner ID",
        "metadata" => "Metadata",
        "q" => "Search",
        "ip_network" => "Address or range",
        "type" => "Type",
        "url" => "URL",
        "events" => "Events",
        "secret" => "The pasted key",
        _ => "This field",
    }
}

/// A validation message in plain words for a person: the field's name first, typed values
/// in quotes rather than code marks, and a long value cut short.
pub fn plain_message(field: &str, message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut run = 0usize;
    for c in message.chars() {
        if c == '`' {
            out.push(if quoted { '”' } else { '“' });
            quoted = !quoted;
            run = 0;
            continue;
        }
        if quoted {
            run += 1;
            if run == 41 {
                out.push('…');
            }
            if run > 40 {
                continue;
            }
        }
        out.push(c);
    }
    let label = label(field);
    if out.starts_with(char::is_uppercase) {
        format!("{label}: {out}")
    } else {
        format!("{label} {out}")
    }
}

async fn form_page(
    state: &AppState,
    signed_in: &SignedIn,
    form: CredentialForm,
    editing: Option<(String, String)>,
    errors: BTreeMap<&'static str, String>,
    conflict: bool,
) -> Result<Response, PageError> {
    let status = if conflict {
        StatusCode::CONFLICT
    } else if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let limits = &state.engine.config().rate_limits;
    let catalogue = &state.engine.config().catalogue;
    let principal = signed_in.principal();
    let roles = principal.permit::<ReadRoles>()?;
    let service_roles = state.service.roles();
    let mut choices: Vec<RoleChoice> = service_roles
        .builtin()
        .into_iter()
        .map(|(name, scopes)| RoleChoice {
            name: name.to_owned(),
            scopes: scopes.to_strings().join(" "),
        })
        .collect();
    choices.extend(
        service_roles
            .custom(&roles)
            .await?
            .into_iter()
            .map(|role| RoleChoice {
                scopes: role.scopes.to_strings().join(" "),
                name: role.name,
            }),
    );
    let mut effective: Vec<String> = form.permissions();
    if let Some(role) = choices.iter().find(|r| r.name == form.role) {
        effective.extend(
            role.scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    effective.sort();
    effective.dedup();
    let page = FormPage {
        nav: signed_in.nav("credentials"),
        roles: choices,
        picker: ScopePicker::new(catalogue),
        effective,
        form,
        editing,
        errors: errors
            .into_iter()
            .map(|(field, message)| (field, plain_message(field, &message)))
            .collect(),
        conflict,
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
    signed_in.principal().permit::<WriteKeys>()?;
    let form = CredentialForm {
        submission: signed_in.submission(CredentialId::generate().as_str()),
        environment: "live".to_owned(),
        ..CredentialForm::default()
    };
    form_page(&state, &signed_in, form, None, BTreeMap::new(), false).await
}

/// Splits a list typed by a person: spaces, commas and new lines separate entries.
fn entries(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The settings the form gives, checked field by field against the `catalogue`'s scopes
/// so that every error shows at once, and the fields that cannot be used.
struct Checked {
    name: String,
    description: Option<String>,
    environment: Environment,
    expires_at: Option<OffsetDateTime>,
    not_before: Option<OffsetDateTime>,
    rate_limit_override: Option<u64>,
    permissions: Vec<String>,
    ip_allowlist: Vec<String>,
    role: Option<String>,
    owner_id: Option<String>,
    metadata: Option<serde_json::Value>,
}

fn check_form(
    form: &CredentialForm,
    catalogue: &ScopeCatalogue,
) -> Result<Checked, BTreeMap<&'static str, String>> {
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
        text => match parse_day(text) {
            // The end of the chosen day, UTC: its last millisecond.
            Some(day) => Some(day.with_time(END_OF_DAY).assume_utc()),
            None => {
                errors.insert("expires_on", "must be a date like 2027-01-31".to_owned());
                None
            }
        },
    };
    let not_before = match form.starts_on.trim() {
        "" => None,
        text => match parse_day(text) {
            Some(day) => Some(day.midnight().assume_utc()),
            None => {
                errors.insert("starts_on", "must be a date like 2027-01-31".to_owned());
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
    let permissions = form.permissions();
    if let Err(e) = catalogue.parse_set(&permissions) {
        errors.insert("scopes", e.to_string());
    }
    let ip_allowlist = entries(&form.ip_allowlist);
    if let Err(e) = parse_ip_allowlist(&ip_allowlist) {
        errors.insert("ip_allowlist", e.message);
    }
    let owner_id = Some(form.owner_id.trim().to_owned()).filter(|o| !o.is_empty());
    if let Err(e) = validate_owner_id(owner_id.as_deref()) {
        errors.insert("owner_id", e.message);
    }
    let metadata = match form.metadata.trim() {
        "" => None,
        text => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => match validate_metadata(Some(value.clone())) {
                Ok(_) => Some(value),
                Err(e) => {
                    errors.insert("metadata", e.message);
                    None
                }
            },
            Err(_) => {
                errors.insert(
                    "metadata",
                    "must be a JSON object, like {\"plan\": \"pro\"}".to_owned(),
                );
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Checked {
        name: form.name.clone(),
        description: Some(form.description.clone()).filter(|d| !d.trim().is_empty()),
        environment,
        expires_at,
        not_before,
        rate_limit_override,
        permissions,
        ip_allowlist,
        role: Some(form.role.trim().to_owned()).filter(|r| !r.is_empty()),
        owner_id,
        metadata,
    })
}

/// Reads the create form into a new credential, collecting every field error it can find
/// by itself, scopes checked against `catalogue`. Public for the fuzz target that feeds it
/// arbitrary forms.
pub fn create_request(
    form: &CredentialForm,
    catalogue: &ScopeCatalogue,
) -> Result<NewCredential, BTreeMap<&'static str, String>> {
    let checked = check_form(form, catalogue)?;
    Ok(NewCredential {
        name: checked.name,
        description: checked.description,
        environment: checked.environment,
        permissions: checked.permissions,
        role: checked.role,
        rate_limit_override: checked.rate_limit_override,
        ip_allowlist: checked.ip_allowlist,
        expires_at: checked.expires_at,
        not_before: checked.not_before,
        owner_id: checked.owner_id,
        metadata: checked.metadata,
        ..NewCredential::default()
    })
}

/// Reads the edit form into a change of every field it shows, for the credential at the
/// version the form was shown for.
fn change_request(
    form: &CredentialForm,
    catalogue: &ScopeCatalogue,
) -> Result<CredentialChange, BTreeMap<&'static str, String>> {
    let checked = check_form(form, catalogue)?;
    Ok(CredentialChange {
        name: Some(checked.name),
        description: Some(checked.description),
        permissions: Some(checked.permissions),
        role: Some(checked.role),
        rate_limit_override: Some(checked.rate_limit_override),
        ip_allowlist: Some(checked.ip_allowlist),
        metadata: Some(
            checked
                .metadata
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
        ),
        owner_id: Some(checked.owner_id),
        not_before: Some(checked.not_before),
        expires_at: Some(checked.expires_at),
        expected_version: form.version.trim().parse().ok(),
    })
}

/// The form field a validation error of the service is about.
fn form_field(error: &ValidationError) -> &'static str {
    match error.field {
        "expires_at" => "expires_on",
        "not_before" => "starts_on",
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
    let new = match create_request(&form, &state.engine.config().catalogue) {
        Ok(new) => NewCredential {
            id: Some(id.clone()),
            ..new
        },
        Err(errors) => return form_page(&state, &signed_in, form, None, errors, false).await,
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
            form_page(&state, &signed_in, form, None, errors, false).await
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
    /// Until when the secrets the last rotation replaced keep working, or empty.
    previous_until: String,
    /// When and from where a replaced secret was last presented (and refused), or empty.
    old_secret_used: String,
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
        "updated" => "The credential's settings were saved. Checks use them from now on.",
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
    let permit = signed_in.principal().permit::<ReadKeys>()?;
    let previous_until = state
        .service
        .credentials()
        .previous_secrets_until(&permit, &credential)
        .await?
        .map(display_time)
        .unwrap_or_default();
    let old_secret_used = state
        .service
        .credentials()
        .old_secret_use(&permit, &credential)
        .await?
        .map(|(at, ip)| match ip {
            Some(ip) => format!("{} from {ip}", display_time(at)),
            None => display_time(at),
        })
        .unwrap_or_default();
    let page = DetailPage {
        nav: signed_in.nav("credentials"),
        credential: CredentialView::new(&credential, state.clock.now()),
        notice,
        previous_until,
        old_secret_used,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The edit form, filled with the credential as it is now.
pub async fn edit_form(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    signed_in.principal().permit::<WriteKeys>()?;
    let credential = member_credential(&state, &signed_in, &id).await?;
    if credential.status == keyward_core::credential::Status::Revoked {
        return Err(ServiceError::Conflict(Conflict::CredentialRevoked).into());
    }
    let picker = ScopePicker::new(&state.engine.config().catalogue);
    let form = CredentialForm::of(&credential, &picker);
    let editing = Some((credential.id.to_string(), credential.settings.name.clone()));
    form_page(&state, &signed_in, form, editing, BTreeMap::new(), false).await
}

/// Applies the edit form, under the API's rules; a form shown before another change to
/// the credential is refused with a conflict that shows the credential as it is now.
pub async fn edit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Protected { signed_in, form }: Protected<CredentialForm>,
) -> Result<Response, PageError> {
    let credential = member_credential(&state, &signed_in, &id).await?;
    let editing = Some((credential.id.to_string(), credential.settings.name.clone()));
    let change = match change_request(&form, &state.engine.config().catalogue) {
        Ok(change) => change,
        Err(errors) => {
            return form_page(&state, &signed_in, form, editing, errors, false).await;
        }
    };
    let permit = signed_in.principal().permit::<WriteKeys>()?;
    let updated = state
        .service
        .credentials()
        .update(&permit, credential.id.as_str(), change)
        .await;
    match updated {
        Ok(_) => Ok(done(&credential.id, "updated")),
        Err(ServiceError::Validation(error)) => {
            let errors = BTreeMap::from([(form_field(&error), error.message)]);
            form_page(&state, &signed_in, form, editing, errors, false).await
        }
        Err(ServiceError::Conflict(Conflict::CredentialChanged)) => {
            // Show what is stored now, to apply the change again on top of it.
            let current = member_credential(&state, &signed_in, &id).await?;
            let picker = ScopePicker::new(&state.engine.config().catalogue);
            let form = CredentialForm::of(&current, &picker);
            form_page(&state, &signed_in, form, editing, BTreeMap::new(), true).await
        }
        Err(error) => Err(error.into()),
    }
}

/// The range a chart is asked for.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChartQuery {
    /// `24h` (the default), `7d` or `30d`.
    pub range: String,
}

/// The usage chart of one credential over a range (an HTML fragment the detail page
/// loads, and swaps when another range is chosen).
pub async fn usage_chart(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<ChartQuery>,
) -> Result<Response, PageError> {
    let credential = member_credential(&state, &signed_in, &id).await?;
    let range = Range::parse(&query.range);
    let now = state.clock.now();
    let permit = signed_in.principal().permit::<ReadKeys>()?;
    let counts = state
        .service
        .credentials()
        .usage(
            &permit,
            &credential,
            range.window(now),
            range.bucket_minutes(),
        )
        .await?;
    let base = format!("{LIST_PATH}/{}/usage-chart", credential.id);
    let chart = UsageChart::new(range, now, &counts, base);
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
