//! The credential lifecycle: create, change, disable, enable, revoke, rotate.
//!
//! One implementation for every interface: the HTTP handlers and the CLI call these
//! functions, so validation, the no-escalation rule, version-checked writes and audit
//! events are the same whichever way a change arrives.

use keyward_core::audit::Actor;
use keyward_core::credential::{
    Credential, CredentialSettings, Environment, Organization, Status, ValidationError,
    parse_ip_allowlist, rotation_grace_end, validate_description, validate_metadata, validate_name,
    validate_owner_id, validate_rate_limit, validate_validity,
};
use keyward_core::scope::ScopeSet;
use keyward_core::secret::{PlainSecret, SecretKind};
use keyward_core::typeid::{CredentialId, OrganizationId};
use keyward_store::{NewSecret, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;
use crate::verifier::Identity;

/// How far a change may reach: the CLI on the server's machine is unlimited; an API caller
/// is bounded by its own credential.
#[derive(Debug, Clone, Copy)]
pub enum Authority<'a> {
    /// The operator on the machine (CLI, first-run bootstrap).
    Unlimited,
    /// The caller's credential.
    Caller(&'a Identity),
}

impl Authority<'_> {
    /// Refuses with 403 `privilege_escalation` unless `wanted` is within the caller's scopes.
    pub fn permit(&self, wanted: &ScopeSet) -> Result<(), ApiError> {
        match self {
            Authority::Unlimited => Ok(()),
            Authority::Caller(caller) if caller.scopes.covers_all(wanted) => Ok(()),
            Authority::Caller(_) => Err(ApiError::Escalation(format!(
                "the credential would hold {:?}, beyond the caller's own scopes",
                wanted.to_strings()
            ))),
        }
    }

    /// Refuses with 403 `privilege_escalation` unless a credential holding `scopes` is no
    /// wider than the caller in any way: its scopes, its environment (a test key manages
    /// test keys only), its expiry (not later than the caller's), and its addresses (within
    /// the caller's allowlist, when the caller has one).
    pub fn permit_credential(
        &self,
        credential: &Credential,
        scopes: &ScopeSet,
    ) -> Result<(), ApiError> {
        self.permit(scopes)?;
        let Authority::Caller(caller) = self else {
            return Ok(());
        };
        let held = &caller.credential;
        let refuse = |what: &str| {
            Err(ApiError::Escalation(format!(
                "the credential would {what} than the caller's own"
            )))
        };
        if held.environment == Environment::Test && credential.environment != Environment::Test {
            return refuse("reach further (live rather than test)");
        }
        if let Some(limit) = held.settings.expires_at
            && credential.settings.expires_at.is_none_or(|end| end > limit)
        {
            return refuse("live longer");
        }
        let fences = &held.settings.ip_allowlist;
        if !fences.is_empty() {
            let inside = |net: &ipnet::IpNet| fences.iter().any(|fence| fence.contains(net));
            let allowlist = &credential.settings.ip_allowlist;
            if allowlist.is_empty() || !allowlist.iter().all(inside) {
                return refuse("be usable from more addresses");
            }
        }
        Ok(())
    }
}

/// `live` or `test`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentName {
    /// Production.
    #[default]
    Live,
    /// Development and testing.
    Test,
}

impl From<EnvironmentName> for Environment {
    fn from(name: EnvironmentName) -> Self {
        match name {
            EnvironmentName::Live => Environment::Live,
            EnvironmentName::Test => Environment::Test,
        }
    }
}

/// The body of `POST /v1/keys`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A descriptive name, 1–100 characters (required).
    pub name: Option<String>,
    /// Notes about the credential's purpose, up to 1,000 characters.
    pub description: Option<String>,
    /// `live` (default) or `test`.
    pub environment: Option<EnvironmentName>,
    /// Scopes, e.g. `["dns:read", "domains:*"]`.
    pub permissions: Option<Vec<String>>,
    /// A role whose scopes the credential also holds.
    pub role: Option<String>,
    /// Requests per second instead of the environment's default.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub rate_limit_override: Option<u64>,
    /// Addresses and CIDR ranges allowed to use the credential.
    pub ip_allowlist: Option<Vec<String>>,
    /// A JSON object (≤ 16 KB) returned on every successful verification.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// An external id grouping the keys of one end customer.
    pub owner_id: Option<String>,
    /// RFC 3339 time before which the credential is not valid.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub not_before: Option<OffsetDateTime>,
    /// RFC 3339 expiry; absent or null means never.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

/// The body of `PATCH /v1/keys/{id}`: fields absent stay as they are; `null` clears.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    /// New name.
    pub name: Option<String>,
    /// New description; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New scopes (replacing the old ones).
    pub permissions: Option<Vec<String>>,
    /// New role; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub role: Option<Option<String>>,
    /// New rate limit; `null` returns to the environment's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub rate_limit_override: Option<Option<u64>>,
    /// New allowlist (replacing the old one); `[]` allows every address.
    pub ip_allowlist: Option<Vec<String>>,
    /// New metadata (replacing the old object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// New owner id; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub owner_id: Option<Option<String>>,
    /// New start of validity (RFC 3339); `null` clears it.
    #[serde(default, deserialize_with = "present_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub not_before: Option<Option<OffsetDateTime>>,
    /// New expiry (RFC 3339); `null` means never.
    #[serde(default, deserialize_with = "present_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<OffsetDateTime>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`, by `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn present_time<'de, D>(deserializer: D) -> Result<Option<Option<OffsetDateTime>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    time::serde::rfc3339::option::deserialize(deserializer).map(Some)
}

/// The body of `POST /v1/keys/{id}/rotate`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// How long the old API key and client secret keep working: 0 (default, at once) to
    /// 604800 (7 days), never past the credential's own expiry.
    pub grace_period_seconds: Option<i64>,
}

/// A credential with its two new secrets, shown once.
#[derive(Debug)]
pub struct Issued {
    /// The stored record.
    pub credential: Credential,
    /// The API key.
    pub api_key: PlainSecret,
    /// The OAuth client secret.
    pub client_secret: PlainSecret,
}

/// A status change requested through the API or the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// Switch off, reversibly.
    Disable,
    /// Switch back on.
    Enable,
    /// Kill for good.
    Revoke,
}

/// Checks that a role exists in the organization (built-in or custom).
async fn check_role(state: &AppState, org: &OrganizationId, role: &str) -> Result<(), ApiError> {
    match state.verifier.role_scopes(org, role).await? {
        Some(_) => Ok(()),
        None => Err(ValidationError::new("role", format!("unknown role `{role}`")).into()),
    }
}

/// The scopes a credential would hold: its permissions and its role's.
async fn effective_scopes(state: &AppState, credential: &Credential) -> Result<ScopeSet, ApiError> {
    Ok(state.verifier.effective_scopes(credential).await?)
}

fn parse_permissions(state: &AppState, texts: &[String]) -> Result<ScopeSet, ValidationError> {
    state
        .config
        .catalogue
        .parse_set(texts)
        .map_err(|e| ValidationError::new("permissions", e.to_string()))
}

fn new_secrets(
    state: &AppState,
    environment: Environment,
) -> (PlainSecret, PlainSecret, Vec<NewSecret>) {
    let prefix = &state.config.key_prefix;
    let api_key = PlainSecret::generate(prefix, SecretKind::ApiKey(environment));
    let client_secret = PlainSecret::generate(prefix, SecretKind::ClientSecret);
    let stored = [&api_key, &client_secret]
        .iter()
        .map(|s| NewSecret {
            kind: s.kind(),
            digests: s.digests(),
        })
        .collect();
    (api_key, client_secret, stored)
}

/// Creates a credential and its two secrets.
pub async fn create(
    state: &AppState,
    organization_id: &OrganizationId,
    actor: &Actor,
    authority: Authority<'_>,
    request: CreateKeyRequest,
) -> Result<Issued, ApiError> {
    create_with_id(
        state,
        organization_id,
        actor,
        authority,
        request,
        CredentialId::generate(),
    )
    .await
}

/// Creates a credential with an id chosen beforehand (the dashboard's form carries one, so
/// that sending the form twice creates one credential): an id already taken is 409
/// `credential_exists`.
pub async fn create_with_id(
    state: &AppState,
    organization_id: &OrganizationId,
    actor: &Actor,
    authority: Authority<'_>,
    request: CreateKeyRequest,
    id: CredentialId,
) -> Result<Issued, ApiError> {
    let now = state.clock.now();
    let name = request
        .name
        .as_deref()
        .ok_or_else(|| ValidationError::new("name", "is required"))?;
    let settings = CredentialSettings {
        name: validate_name(name)?,
        description: validate_description(request.description.as_deref())?,
        permissions: parse_permissions(state, request.permissions.as_deref().unwrap_or_default())?,
        role: request.role,
        ip_allowlist: parse_ip_allowlist(request.ip_allowlist.as_deref().unwrap_or_default())?,
        rate_limit_override: validate_rate_limit(request.rate_limit_override)?,
        not_before: request.not_before,
        expires_at: request.expires_at,
        metadata: validate_metadata(request.metadata)?,
        owner_id: validate_owner_id(request.owner_id.as_deref())?,
    };
    if let Some(role) = &settings.role {
        check_role(state, organization_id, role).await?;
    }
    validate_validity(settings.not_before, settings.expires_at, now)?;
    let environment: Environment = request.environment.unwrap_or_default().into();
    let (api_key, client_secret, stored) = new_secrets(state, environment);
    let credential = Credential {
        id,
        organization_id: organization_id.clone(),
        environment,
        settings,
        status: Status::Active,
        prefix: api_key.display_prefix().to_owned(),
        hint: api_key.hint().to_owned(),
        created_at: now,
        created_by: actor.id.clone(),
        updated_at: now,
        revoked_at: None,
        last_used_at: None,
        last_used_ip: None,
        version: 1,
    };
    authority.permit_credential(&credential, &effective_scopes(state, &credential).await?)?;
    let details = json!({
        "name": credential.settings.name,
        "environment": environment.as_str(),
        "permissions": credential.settings.permissions.to_strings(),
        "role": credential.settings.role,
    });
    let event = actor.event(
        organization_id,
        now,
        "key.created",
        Some(credential.id.as_str()),
        object(details),
    );
    match state
        .store
        .insert_credential(&credential, &stored, &event)
        .await
    {
        Ok(()) => {}
        // The id is taken: the same form sent before (or twice at once) created it.
        Err(StoreError::Conflict {
            constraint: "unique",
        }) if state
            .store
            .credential(organization_id, &credential.id)
            .await?
            .is_some() =>
        {
            return Err(credential_exists());
        }
        Err(error) => return Err(error.into()),
    }
    tracing::info!(key.id = %credential.id, org.id = %organization_id, "created key {}", credential.id);
    Ok(Issued {
        credential,
        api_key,
        client_secret,
    })
}

fn credential_exists() -> ApiError {
    ApiError::Conflict {
        code: "credential_exists",
        message: "a credential with this id exists already".into(),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// How often a version-checked change is retried when another write came in between.
pub(crate) const WRITE_ATTEMPTS: usize = 5;

/// Which scopes a change must stay within the caller's authority for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// None: the change only takes power away (disable, revoke).
    Unchecked,
    /// The credential's current scopes (enable: it gives back what the key holds).
    Current,
    /// Its current scopes and those after the change (patch).
    CurrentAndResult,
}

/// Reads a credential, applies `change`, and writes it back if nothing changed it meanwhile;
/// on a concurrent write it reads again and re-applies, so no write is lost. `change`
/// returns the audit action and details, or `None` when there is nothing to do; a change
/// to do must stay within `authority` as `reach` says.
async fn modify<F>(
    state: &AppState,
    organization_id: &OrganizationId,
    id: &CredentialId,
    actor: &Actor,
    (authority, reach): (Authority<'_>, Reach),
    mut change: F,
) -> Result<Credential, ApiError>
where
    F: FnMut(&mut Credential, OffsetDateTime) -> Result<Option<(&'static str, Value)>, ApiError>,
{
    for _ in 0..WRITE_ATTEMPTS {
        let mut credential = read(state, organization_id, id).await?;
        // Checked before anything else, so that a caller cannot even read, through a
        // change that changes nothing, a credential beyond its authority.
        if reach != Reach::Unchecked {
            authority
                .permit_credential(&credential, &effective_scopes(state, &credential).await?)?;
        }
        let now = state.clock.now();
        let Some((action, details)) = change(&mut credential, now)? else {
            return Ok(credential);
        };
        if reach == Reach::CurrentAndResult {
            authority
                .permit_credential(&credential, &effective_scopes(state, &credential).await?)?;
        }
        credential.updated_at = now;
        let event = actor.event(
            organization_id,
            now,
            action,
            Some(id.as_str()),
            object(details),
        );
        if written(state.store.update_credential(&credential, &event).await)? {
            state.verifier.forget_credential(id);
            credential.version += 1;
            tracing::info!(key.id = %id, action, "{action} {id}");
            return Ok(credential);
        }
    }
    Err(concurrent_update())
}

/// Reads a credential of the organization, or 404.
async fn read(
    state: &AppState,
    organization_id: &OrganizationId,
    id: &CredentialId,
) -> Result<Credential, ApiError> {
    state
        .store
        .credential(organization_id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// `Ok(true)` when a version-checked write went through, `Ok(false)` when another write
/// came first.
pub(crate) fn written(result: Result<(), StoreError>) -> Result<bool, ApiError> {
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict {
            constraint: "version",
        }) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// The answer when [`WRITE_ATTEMPTS`] read-change-write attempts were all beaten by
/// concurrent writes.
pub(crate) fn concurrent_update() -> ApiError {
    StoreError::Conflict {
        constraint: "version",
    }
    .into()
}

fn refuse_revoked(credential: &Credential) -> Result<(), ApiError> {
    if credential.status == Status::Revoked {
        return Err(ApiError::Conflict {
            code: "credential_revoked",
            message: "the credential is revoked; revocation cannot be undone".into(),
        });
    }
    Ok(())
}

/// Applies a partial update atomically.
pub async fn update(
    state: &AppState,
    organization_id: &OrganizationId,
    id: &CredentialId,
    actor: &Actor,
    authority: Authority<'_>,
    request: UpdateKeyRequest,
) -> Result<Credential, ApiError> {
    // Validate once, before any read: the same values apply on every attempt.
    let name = request.name.as_deref().map(validate_name).transpose()?;
    let description = request
        .description
        .as_ref()
        .map(|d| validate_description(d.as_deref()))
        .transpose()?;
    let permissions = request
        .permissions
        .as_deref()
        .map(|p| parse_permissions(state, p))
        .transpose()?;
    if let Some(Some(role)) = &request.role {
        check_role(state, organization_id, role).await?;
    }
    let ip_allowlist = request
        .ip_allowlist
        .as_deref()
        .map(parse_ip_allowlist)
        .transpose()?;
    let rate_limit = request
        .rate_limit_override
        .map(validate_rate_limit)
        .transpose()?;
    let metadata = request
        .metadata
        .clone()
        .map(|m| validate_metadata(Some(m)))
        .transpose()?;
    let owner_id = request
        .owner_id
        .as_ref()
        .map(|o| validate_owner_id(o.as_deref()))
        .transpose()?;
    modify(
        state,
        organization_id,
        id,
        actor,
        (authority, Reach::CurrentAndResult),
        |credential, now| {
            refuse_revoked(credential)?;
            let before = credential.settings.clone();
            let settings = &mut credential.settings;
            let mut changed = Vec::new();
            macro_rules! set {
                ($field:ident, $value:expr) => {
                    if let Some(value) = $value {
                        if settings.$field != value {
                            settings.$field = value;
                            changed.push(stringify!($field));
                        }
                    }
                };
            }
            set!(name, name.clone());
            set!(description, description.clone());
            set!(permissions, permissions.clone());
            set!(role, request.role.clone());
            set!(ip_allowlist, ip_allowlist.clone());
            set!(rate_limit_override, rate_limit);
            set!(metadata, metadata.clone());
            set!(owner_id, owner_id.clone());
            set!(not_before, request.not_before);
            set!(expires_at, request.expires_at);
            if changed.is_empty() {
                return Ok(None);
            }
            if settings.not_before != before.not_before || settings.expires_at != before.expires_at
            {
                validate_validity(settings.not_before, settings.expires_at, now)?;
            }
            Ok(Some(("key.updated", json!({ "changed": changed }))))
        },
    )
    .await
}

/// Disables, enables or revokes. Repeating a change that is already in effect answers the
/// record unchanged; a revoked credential can be neither disabled nor enabled.
pub async fn set_status(
    state: &AppState,
    organization_id: &OrganizationId,
    id: &CredentialId,
    actor: &Actor,
    authority: Authority<'_>,
    change: StatusChange,
) -> Result<Credential, ApiError> {
    let reach = if change == StatusChange::Enable {
        Reach::Current
    } else {
        Reach::Unchecked
    };
    modify(
        state,
        organization_id,
        id,
        actor,
        (authority, reach),
        |credential, now| {
            let (target, action) = match change {
                StatusChange::Disable => (Status::Disabled, "key.disabled"),
                StatusChange::Enable => (Status::Active, "key.enabled"),
                StatusChange::Revoke => (Status::Revoked, "key.revoked"),
            };
            if credential.status == target {
                return Ok(None);
            }
            refuse_revoked(credential)?;
            credential.status = target;
            if target == Status::Revoked {
                credential.revoked_at = Some(now);
            }
            Ok(Some((action, json!({}))))
        },
    )
    .await
}

/// Issues new secrets for a credential. The old ones stop at once, or when the grace
/// period ends (never past the credential's own expiry).
pub async fn rotate(
    state: &AppState,
    organization_id: &OrganizationId,
    id: &CredentialId,
    actor: &Actor,
    authority: Authority<'_>,
    request: RotateKeyRequest,
) -> Result<(Issued, Option<OffsetDateTime>), ApiError> {
    rotate_version(state, organization_id, id, actor, authority, request, None).await
}

/// Rotates as [`rotate`] does, but only the credential as it was at `expected_version`
/// when that is given: a credential changed since (or already rotated by the same form
/// sent twice) is 409 `credential_changed`, and nothing is rotated.
pub async fn rotate_version(
    state: &AppState,
    organization_id: &OrganizationId,
    id: &CredentialId,
    actor: &Actor,
    authority: Authority<'_>,
    request: RotateKeyRequest,
    expected_version: Option<i64>,
) -> Result<(Issued, Option<OffsetDateTime>), ApiError> {
    let grace = Duration::seconds(request.grace_period_seconds.unwrap_or(0));
    for _ in 0..WRITE_ATTEMPTS {
        let mut credential = read(state, organization_id, id).await?;
        refuse_revoked(&credential)?;
        if expected_version.is_some_and(|v| v != credential.version) {
            return Err(ApiError::Conflict {
                code: "credential_changed",
                message: "the credential changed since this form was shown".into(),
            });
        }
        authority.permit_credential(&credential, &effective_scopes(state, &credential).await?)?;
        let now = state.clock.now();
        let old_until = rotation_grace_end(now, grace, credential.settings.expires_at)?;
        let (api_key, client_secret, stored) = new_secrets(state, credential.environment);
        credential.prefix = api_key.display_prefix().to_owned();
        credential.hint = api_key.hint().to_owned();
        credential.updated_at = now;
        let details = json!({
            "grace_period_seconds": grace.whole_seconds(),
            "previous_secrets_expire_at": old_until.map(crate::routes::rfc3339),
        });
        let event = actor.event(
            organization_id,
            now,
            "key.rotated",
            Some(id.as_str()),
            object(details),
        );
        if written(
            state
                .store
                .rotate_credential(&credential, &stored, old_until, &event)
                .await,
        )? {
            state.verifier.forget_credential(id);
            credential.version += 1;
            tracing::info!(key.id = %id, "rotated key {id}");
            return Ok((
                Issued {
                    credential,
                    api_key,
                    client_secret,
                },
                old_until,
            ));
        }
    }
    Err(concurrent_update())
}

/// Creates an organization and its bootstrap credential, holding every scope (`*`).
pub async fn init_organization(
    state: &AppState,
    name: &str,
) -> Result<(Organization, Issued), ApiError> {
    let actor = Actor::cli();
    let now = state.clock.now();
    let organization = Organization {
        id: OrganizationId::generate(),
        name: validate_name(name)?,
        created_at: now,
    };
    let event = actor.event(
        &organization.id,
        now,
        "organization.created",
        Some(organization.id.as_str()),
        object(json!({ "name": organization.name })),
    );
    state
        .store
        .insert_organization(&organization, &event)
        .await?;
    let request = CreateKeyRequest {
        name: Some("Bootstrap credential".to_owned()),
        description: Some("Created by `keyward init`; holds every scope.".to_owned()),
        permissions: Some(vec!["*".to_owned()]),
        ..CreateKeyRequest::default()
    };
    let issued = create(
        state,
        &organization.id,
        &actor,
        Authority::Unlimited,
        request,
    )
    .await?;
    Ok((organization, issued))
}
