//! Credentials: create, list, read, change, disable, enable, revoke, rotate, and their
//! usage counts.
//!
//! Every interface calls these, so validation, the no-escalation rule, version-checked
//! writes and audit events are the same whichever way a change arrives.

use keyward_core::audit::Actor;
use keyward_core::clock::rfc3339;
use keyward_core::credential::{
    Credential, CredentialSettings, DisplayStatus, Environment, Status, TokenCutoff,
    ValidationError, parse_ip_allowlist, rotation_grace_end, validate_description,
    validate_metadata, validate_name, validate_owner_id, validate_rate_limit, validate_validity,
};
use keyward_core::scope::ScopeSet;
use keyward_core::secret::{PlainSecret, SecretKind, parse_secret};
use keyward_core::typeid::{CredentialId, OrganizationId};
use keyward_core::validation::{TextKind, person_text};
use keyward_store::{
    Conflict as StoreConflict, CredentialQuery, NewSecret, StoreError, UsageCount,
};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::error::{Conflict, Forbidden, ServiceError};
use crate::leaks::{
    LeakAction, LeakReport, MAX_REPORTED, SOURCE_MAX_CHARS, SignedReport, TokenLabel,
};
use crate::principal::{Authority, Operator, Permit, Principal, ReadKeys, WriteKeys};
use crate::records::CredentialRecord;
use crate::service::Service;
use crate::writes::{WRITE_ATTEMPTS, object, written};

/// A credential to create.
#[derive(Debug, Clone, Default)]
pub struct NewCredential {
    /// An id chosen beforehand, so that a form sent twice creates one credential (the
    /// second is [`Conflict::CredentialExists`]); a fresh one when `None`.
    pub id: Option<CredentialId>,
    /// A name, 1–100 characters once trimmed.
    pub name: String,
    /// Notes about its purpose, up to 1,000 characters.
    pub description: Option<String>,
    /// `live` or `test`.
    pub environment: Environment,
    /// Scopes, as written (`dns:read`, `domains:*`, …), checked against the catalogue.
    pub permissions: Vec<String>,
    /// A role whose scopes it also holds.
    pub role: Option<String>,
    /// Requests per second instead of the environment's default.
    pub rate_limit_override: Option<u64>,
    /// Addresses and CIDR ranges allowed to use it, as written.
    pub ip_allowlist: Vec<String>,
    /// A JSON object (≤ 16 KB) returned on every successful verification.
    pub metadata: Option<Value>,
    /// An external id grouping the keys of one end customer.
    pub owner_id: Option<String>,
    /// Not valid before this time.
    pub not_before: Option<OffsetDateTime>,
    /// Expiry; none means never.
    pub expires_at: Option<OffsetDateTime>,
}

/// A change to a credential: fields left `None` stay as they are; `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct CredentialChange {
    /// New name.
    pub name: Option<String>,
    /// New description, or none.
    pub description: Option<Option<String>>,
    /// New scopes (replacing the old ones).
    pub permissions: Option<Vec<String>>,
    /// New role, or none.
    pub role: Option<Option<String>>,
    /// New rate limit, or the environment's default.
    pub rate_limit_override: Option<Option<u64>>,
    /// New allowlist (replacing the old one); empty allows every address.
    pub ip_allowlist: Option<Vec<String>>,
    /// New metadata (replacing the old object).
    pub metadata: Option<Value>,
    /// New owner id, or none.
    pub owner_id: Option<Option<String>>,
    /// New start of validity, or none.
    pub not_before: Option<Option<OffsetDateTime>>,
    /// New expiry, or never.
    pub expires_at: Option<Option<OffsetDateTime>>,
    /// Change only the credential as it was at this version: one changed since (a form
    /// shown before another change) is [`Conflict::CredentialChanged`] and changes nothing.
    pub expected_version: Option<i64>,
}

/// A rotation: new secrets for a credential.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rotation {
    /// How long the old secrets keep working: 0 (at once) to 604,800 seconds (7 days),
    /// never past the credential's own expiry.
    pub grace_period_seconds: i64,
    /// Rotate only the credential as it was at this version: one changed since (or
    /// rotated already by the same form sent twice) is [`Conflict::CredentialChanged`].
    pub expected_version: Option<i64>,
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

/// The credential a found secret belongs to ([`Credentials::find_by_secret`]).
#[derive(Debug, Clone)]
pub struct SecretOwner {
    /// The credential.
    pub credential: Credential,
    /// Which of its secrets it is.
    pub kind: SecretKind,
    /// Whether the secret still works.
    pub state: SecretState,
}

/// Whether a found secret still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretState {
    /// The credential's state decides: a secret of an active credential works.
    Credential(DisplayStatus),
    /// The secret was rotated out and its grace period is over: it no longer works,
    /// whatever its credential's state.
    Replaced,
}

impl SecretState {
    /// `active`, `disabled`, `revoked`, `expired` or `replaced`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretState::Credential(status) => status.as_str(),
            SecretState::Replaced => "replaced",
        }
    }

    /// Whether the secret is accepted today (as far as the credential's state goes: its
    /// addresses, scopes and limits still apply).
    pub fn works(self) -> bool {
        self == SecretState::Credential(DisplayStatus::Active)
    }
}

/// A rotated credential: its new secrets, and when the previous ones stop.
#[derive(Debug)]
pub struct Rotated {
    /// The credential with its new secrets.
    pub issued: Issued,
    /// When the previous secrets stop working; `None`: they already have.
    pub previous_secrets_expire_at: Option<OffsetDateTime>,
}

/// A status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// Switch off, reversibly.
    Disable,
    /// Switch back on.
    Enable,
    /// Kill for good.
    Revoke,
}

/// Filters and page of a credential listing, newest first.
#[derive(Debug, Clone, Default)]
pub struct CredentialFilter {
    /// Only credentials showing this status now.
    pub status: Option<DisplayStatus>,
    /// Only credentials of this environment.
    pub environment: Option<Environment>,
    /// Only credentials of this end customer.
    pub owner_id: Option<String>,
    /// Only credentials older than this one (the cursor).
    pub before: Option<CredentialId>,
    /// Only credentials whose id or owner id is this text, or whose name holds it (ASCII
    /// letters without case); never a secret, which is looked up by its hash instead.
    pub search: Option<String>,
    /// Leave revoked credentials out: the dashboard's default list, where they are archived.
    pub hide_revoked: bool,
    /// Only credentials never used.
    pub unused: bool,
    /// Only credentials that expire from now until this time, soonest first.
    pub expiring_before: Option<OffsetDateTime>,
    /// At most this many.
    pub limit: u32,
}

/// Which scopes a change must stay within the principal's authority for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// None: the change only takes power away (disable, revoke).
    Unchecked,
    /// The credential's current scopes (enable: it gives back what the key holds).
    Current,
    /// Its current scopes and those after the change (update).
    CurrentAndResult,
}

/// The credentials of an organization.
#[derive(Clone, Copy)]
pub struct Credentials<'a>(pub(crate) &'a Service);

impl Service {
    /// Credentials.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials(self)
    }
}

impl Credentials<'_> {
    /// Creates a credential and its two secrets. Its scopes, environment, expiry and
    /// addresses must be within the principal's own.
    pub async fn create(
        &self,
        permit: &Permit<'_, WriteKeys>,
        new: NewCredential,
    ) -> Result<Issued, ServiceError> {
        let service = self.0;
        let (organization_id, actor) = (permit.organization(), permit.actor());
        let now = service.clock.now();
        let settings = CredentialSettings {
            name: validate_name(&new.name)?,
            description: validate_description(new.description.as_deref())?,
            permissions: self.parse_permissions(&new.permissions)?,
            role: new.role,
            ip_allowlist: parse_ip_allowlist(&new.ip_allowlist)?,
            rate_limit_override: validate_rate_limit(new.rate_limit_override)?,
            not_before: new.not_before,
            expires_at: new.expires_at,
            metadata: validate_metadata(new.metadata)?,
            owner_id: validate_owner_id(new.owner_id.as_deref())?,
        };
        if let Some(role) = &settings.role {
            self.check_role(organization_id, role).await?;
        }
        validate_validity(settings.not_before, settings.expires_at, now)?;
        let environment = new.environment;
        let (api_key, client_secret, stored) = self.new_secrets(environment);
        let credential = Credential {
            id: new.id.unwrap_or_else(CredentialId::generate),
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
            token_cutoff: None,
            exposed_at: None,
        };
        self.within_reach(&permit.authority(), &credential).await?;
        let details = json!({
            "name": credential.settings.name,
            "environment": environment.as_str(),
            "permissions": credential.settings.permissions.to_strings(),
            "role": credential.settings.role,
        });
        let event = actor
            .event(
                organization_id,
                now,
                "key.created",
                Some(credential.id.as_str()),
                object(details),
            )
            .with_notice(
                "key.created",
                json!(CredentialRecord::new(&credential, now)),
            );
        match service
            .store
            .insert_credential(&credential, &stored, &event)
            .await
        {
            Ok(()) => {}
            // The id is taken: the same form sent before (or twice at once) created it.
            Err(StoreError::Conflict(StoreConflict::Unique))
                if service
                    .store
                    .credential(organization_id, &credential.id)
                    .await?
                    .is_some() =>
            {
                return Err(Conflict::CredentialExists.into());
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

    /// The organization's credentials, newest first.
    pub async fn list(
        &self,
        permit: &Permit<'_, ReadKeys>,
        filter: CredentialFilter,
    ) -> Result<Vec<Credential>, ServiceError> {
        let service = self.0;
        let search = filter.search;
        if let Some(text) = &search {
            if text.is_empty() || text.chars().count() > 200 {
                return Err(ValidationError::new("search", "must be 1 to 200 characters").into());
            }
            // A secret is never a search term: it would sit in URLs and logs. Its hash
            // finds its credential (`identify`).
            if parse_secret(text).is_ok() {
                return Err(ValidationError::new(
                    "search",
                    "looks like a secret: look it up by its hash with POST /v1/keys/lookup",
                )
                .into());
            }
        }
        let query = CredentialQuery {
            status: filter.status,
            environment: filter.environment,
            owner_id: filter.owner_id,
            before: filter.before,
            search,
            hide_revoked: filter.hide_revoked,
            unused: filter.unused,
            expiring_before: filter.expiring_before,
            limit: filter.limit,
            now: service.clock.now(),
        };
        Ok(service
            .store
            .list_credentials(permit.organization(), &query)
            .await?)
    }

    /// The credential `id` of the organization; another organization's, or an id that
    /// cannot exist, is [`ServiceError::NotFound`].
    pub async fn get(
        &self,
        permit: &Permit<'_, ReadKeys>,
        id: &str,
    ) -> Result<Credential, ServiceError> {
        self.read(permit.organization(), &key_id(id)?).await
    }

    /// What the secret `secret` (found in a file, a log, a report) belongs to in this
    /// deployment: `None` for a secret no credential here has (another deployment's, or a
    /// look-alike whose checksum happens to hold, or a secret rotated out without grace,
    /// which is not kept). The secret is confirmed against its
    /// salted hash, not only found by its digest. Whether it still works is
    /// [`SecretOwner::state`]. For the operator only: it crosses organizations.
    pub async fn find_by_secret(
        &self,
        _operator: &Operator,
        secret: &str,
    ) -> Result<Option<SecretOwner>, ServiceError> {
        self.owner_of(secret).await
    }

    /// [`Credentials::find_by_secret`] within the principal's organization: a secret of
    /// another organization's credential is `None`, as one no credential has.
    pub async fn identify(
        &self,
        permit: &Permit<'_, ReadKeys>,
        secret: &str,
    ) -> Result<Option<SecretOwner>, ServiceError> {
        Ok(self
            .owner_of(secret)
            .await?
            .filter(|owner| owner.credential.organization_id == *permit.organization()))
    }

    /// The credential that has `secret`, confirmed by its salted hash, and whether the
    /// secret still works; across organizations.
    async fn owner_of(&self, secret: &str) -> Result<Option<SecretOwner>, ServiceError> {
        if parse_secret(secret).is_err() {
            return Ok(None);
        }
        let lookup = keyward_core::digest::LookupDigest::of(secret);
        let Some(found) = self.0.store.credential_by_secret(&lookup).await? else {
            return Ok(None);
        };
        if !found.salted.matches(secret) {
            return Ok(None);
        }
        let now = self.0.clock.now();
        let replaced = found.expires_at.is_some_and(|end| end <= now);
        let state = if replaced {
            SecretState::Replaced
        } else {
            SecretState::Credential(found.credential.display_status(now))
        };
        Ok(Some(SecretOwner {
            credential: found.credential,
            kind: found.kind,
            state,
        }))
    }

    /// Acts on a report of secrets found in public: each one that belongs to a credential
    /// here that still has it and is not revoked gets `key.exposed` in the audit log (with
    /// the source and the reporter's address), then the deployment's [`LeakAction`]. The
    /// reporter learns nothing of what was found; each report counts against its address
    /// ([`ServiceError::Throttled`] past the limit). Secrets of the wrong shape are passed
    /// over without a store read.
    pub async fn report_exposed(&self, report: &LeakReport<'_>) -> Result<(), ServiceError> {
        let service = self.0;
        if let Some(ip) = report.reporter_ip {
            let now = service.clock.now();
            if let Some(wait) = service.leak_reports.blocked(ip, now) {
                return Err(ServiceError::Throttled(wait));
            }
            service.leak_reports.record_failure(ip, now);
        }
        if report.secrets.len() > MAX_REPORTED {
            return Err(ValidationError::new(
                "keys",
                format!("at most {MAX_REPORTED} keys a report"),
            )
            .into());
        }
        let source = person_text("source", report.source, SOURCE_MAX_CHARS, TextKind::Name)?
            .ok_or_else(|| ValidationError::new("source", "must not be empty"))?;
        let actor = Actor {
            id: "leak_report".to_owned(),
            source_ip: report.reporter_ip,
            via: None,
        };
        for secret in report.secrets {
            self.expose(secret.trim(), &source, &actor).await?;
        }
        Ok(())
    }

    /// Acts on a report signed by a partner's secret scanning (GitHub's format: a JSON
    /// array of `{token, type, url, source}`): refused ([`Forbidden::BadSignature`])
    /// unless the signature verifies with the key it names; then each token is handled as
    /// [`Credentials::report_exposed`] handles a secret, with the `url` as its source, and
    /// the partner is told, by the token's SHA-256, which were live here.
    pub async fn report_signed(
        &self,
        report: &SignedReport<'_>,
    ) -> Result<Vec<TokenLabel>, ServiceError> {
        #[derive(serde::Deserialize)]
        struct Reported {
            token: String,
            #[serde(rename = "type", default)]
            kind: String,
            #[serde(default)]
            url: String,
            #[serde(default)]
            source: String,
        }
        let keys = self.0.config.leaks.github_keys.as_ref();
        if !keys
            .is_some_and(|keys| keys.verify(report.key_identifier, report.signature, report.body))
        {
            return Err(Forbidden::BadSignature.into());
        }
        // Where the body fails, not serde's words, which may quote a token.
        let reported: Vec<Reported> = serde_json::from_slice(report.body).map_err(|e| {
            ValidationError::new(
                "body",
                format!(
                    "not a list of {{token, type, url, source}} (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        if reported.len() > MAX_REPORTED {
            return Err(ValidationError::new(
                "body",
                format!("at most {MAX_REPORTED} tokens a report"),
            )
            .into());
        }
        let actor = Actor {
            id: "secret_scanning".to_owned(),
            source_ip: None,
            via: None,
        };
        let mut labels = Vec::with_capacity(reported.len());
        for token in &reported {
            let place = if token.url.is_empty() {
                &token.source
            } else {
                &token.url
            };
            let source: String = format!("{} {place}", token.source)
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(SOURCE_MAX_CHARS)
                .collect();
            let live = self.expose(token.token.trim(), &source, &actor).await?;
            labels.push(TokenLabel {
                token_hash: keyward_core::digest::to_hex(
                    keyward_core::digest::LookupDigest::of(&token.token).as_bytes(),
                ),
                token_type: token.kind.clone(),
                label: if live {
                    "true_positive"
                } else {
                    "false_positive"
                },
            });
        }
        Ok(labels)
    }

    /// One reported secret: when it belongs to a credential here that still has it and is
    /// not revoked, `key.exposed` is audited as `actor` with `source`, then the
    /// deployment's [`LeakAction`] applies. Whether it did (the secret was live here).
    async fn expose(
        &self,
        secret: &str,
        source: &str,
        actor: &Actor,
    ) -> Result<bool, ServiceError> {
        let Some(owner) = self.owner_of(secret).await? else {
            return Ok(false);
        };
        if matches!(
            owner.state,
            SecretState::Replaced | SecretState::Credential(DisplayStatus::Revoked)
        ) {
            return Ok(false);
        }
        let action = self.0.config.leaks.action;
        let principal = Principal {
            organization: &owner.credential.organization_id,
            actor,
            authority: Authority::Unlimited,
        };
        let permit = Permit::<WriteKeys>::granted(principal);
        let details = json!({
            "source": source,
            "action": match action {
                LeakAction::Revoke => "revoke",
                LeakAction::Disable => "disable",
                LeakAction::Flag => "flag",
            },
        });
        let id = &owner.credential.id;
        self.modify(&permit, id, Reach::Unchecked, |credential, now| {
            credential.exposed_at = Some(now);
            Ok(Some(("key.exposed", details.clone())))
        })
        .await?;
        let change = match action {
            LeakAction::Revoke => StatusChange::Revoke,
            LeakAction::Disable => StatusChange::Disable,
            LeakAction::Flag => return Ok(true),
        };
        match self.set_status(&permit, id.as_str(), change).await {
            // Revoked by someone else in between: what the report asked for is done.
            Ok(_) | Err(ServiceError::Conflict(Conflict::CredentialRevoked)) => Ok(true),
            Err(error) => Err(error),
        }
    }

    /// The credential's requests from minute `from` (included) to `to` (excluded) since
    /// the epoch, summed per bucket of `bucket_minutes` and outcome, oldest first.
    pub async fn usage(
        &self,
        permit: &Permit<'_, ReadKeys>,
        credential: &Credential,
        (from, to): (i64, i64),
        bucket_minutes: i64,
    ) -> Result<Vec<UsageCount>, ServiceError> {
        if credential.organization_id != *permit.organization() {
            return Err(ServiceError::NotFound);
        }
        Ok(self
            .0
            .store
            .usage(&credential.id, from, to, bucket_minutes)
            .await?)
    }

    /// Until when the secrets `credential`'s last rotation replaced keep working, if they
    /// still do (its grace period).
    pub async fn previous_secrets_until(
        &self,
        permit: &Permit<'_, ReadKeys>,
        credential: &Credential,
    ) -> Result<Option<OffsetDateTime>, ServiceError> {
        if credential.organization_id != *permit.organization() {
            return Err(ServiceError::NotFound);
        }
        let now = self.0.clock.now();
        Ok(self
            .0
            .store
            .previous_secrets_until(&credential.id, now)
            .await?)
    }

    /// When and from where a secret `credential`'s rotations replaced was last presented
    /// (and refused), if ever.
    pub async fn old_secret_use(
        &self,
        permit: &Permit<'_, ReadKeys>,
        credential: &Credential,
    ) -> Result<Option<(OffsetDateTime, Option<std::net::IpAddr>)>, ServiceError> {
        if credential.organization_id != *permit.organization() {
            return Err(ServiceError::NotFound);
        }
        Ok(self.0.store.old_secret_use(&credential.id).await?)
    }

    /// The usage of every credential of the organization from minute `from` to `to`,
    /// summed per bucket, outcome and credential: the organization's overview.
    pub async fn organization_usage(
        &self,
        permit: &Permit<'_, ReadKeys>,
        (from, to): (i64, i64),
        bucket_minutes: i64,
    ) -> Result<Vec<UsageCount>, ServiceError> {
        Ok(self
            .0
            .store
            .organization_usage(permit.organization(), from, to, bucket_minutes)
            .await?)
    }

    /// Applies a change atomically: neither the credential's current scopes nor those it
    /// would hold may exceed the principal's.
    pub async fn update(
        &self,
        permit: &Permit<'_, WriteKeys>,
        id: &str,
        change: CredentialChange,
    ) -> Result<Credential, ServiceError> {
        let id = key_id(id)?;
        let organization_id = permit.organization();
        // Validate once, before any read: the same values apply on every attempt.
        let name = change.name.as_deref().map(validate_name).transpose()?;
        let description = change
            .description
            .as_ref()
            .map(|d| validate_description(d.as_deref()))
            .transpose()?;
        let permissions = change
            .permissions
            .as_deref()
            .map(|p| self.parse_permissions(p))
            .transpose()?;
        if let Some(Some(role)) = &change.role {
            self.check_role(organization_id, role).await?;
        }
        let ip_allowlist = change
            .ip_allowlist
            .as_deref()
            .map(parse_ip_allowlist)
            .transpose()?;
        let rate_limit = change
            .rate_limit_override
            .map(validate_rate_limit)
            .transpose()?;
        let metadata = change
            .metadata
            .clone()
            .map(|m| validate_metadata(Some(m)))
            .transpose()?;
        let owner_id = change
            .owner_id
            .as_ref()
            .map(|o| validate_owner_id(o.as_deref()))
            .transpose()?;
        self.modify(permit, &id, Reach::CurrentAndResult, |credential, now| {
            refuse_revoked(credential)?;
            if change
                .expected_version
                .is_some_and(|version| version != credential.version)
            {
                return Err(Conflict::CredentialChanged.into());
            }
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
            set!(role, change.role.clone());
            set!(ip_allowlist, ip_allowlist.clone());
            set!(rate_limit_override, rate_limit);
            set!(metadata, metadata.clone());
            set!(owner_id, owner_id.clone());
            set!(not_before, change.not_before);
            set!(expires_at, change.expires_at);
            if changed.is_empty() {
                return Ok(None);
            }
            if settings.not_before != before.not_before || settings.expires_at != before.expires_at
            {
                validate_validity(settings.not_before, settings.expires_at, now)?;
            }
            Ok(Some(("key.updated", json!({ "changed": changed }))))
        })
        .await
    }

    /// Disables, enables or revokes. Repeating a change that is already in effect answers
    /// the record unchanged; a revoked credential can be neither disabled nor enabled.
    /// Enabling gives back what the key holds, so it must be within the principal's own.
    pub async fn set_status(
        &self,
        permit: &Permit<'_, WriteKeys>,
        id: &str,
        change: StatusChange,
    ) -> Result<Credential, ServiceError> {
        let id = key_id(id)?;
        let reach = if change == StatusChange::Enable {
            Reach::Current
        } else {
            Reach::Unchecked
        };
        self.modify(permit, &id, reach, |credential, now| {
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
            match target {
                Status::Revoked => credential.revoked_at = Some(now),
                // Disabling cuts every token minted so far: enabling again brings back the
                // credential's secrets, not its earlier tokens.
                Status::Disabled => {
                    credential.token_cutoff =
                        Some(TokenCutoff::after(credential.token_cutoff, now, now));
                }
                Status::Active => {}
            }
            Ok(Some((action, json!({}))))
        })
        .await
    }

    /// Revokes the principal's own credential, whatever its scopes: whoever holds a key
    /// can always end it (a key found in public is revoked by its holder without asking
    /// anyone for `keys:write`). Only a credential has itself: any other principal is
    /// [`ServiceError::NotFound`].
    pub async fn revoke_self(&self, principal: &Principal<'_>) -> Result<Credential, ServiceError> {
        let Authority::Credential(identity) = principal.authority else {
            return Err(ServiceError::NotFound);
        };
        let permit = Permit::<WriteKeys>::granted(*principal);
        self.set_status(
            &permit,
            identity.credential.id.as_str(),
            StatusChange::Revoke,
        )
        .await
    }

    /// Issues new secrets for a credential. The old ones stop at once, or when the grace
    /// period ends (never past the credential's own expiry), and so do the access tokens
    /// minted before.
    pub async fn rotate(
        &self,
        permit: &Permit<'_, WriteKeys>,
        id: &str,
        rotation: Rotation,
    ) -> Result<Rotated, ServiceError> {
        let service = self.0;
        let id = key_id(id)?;
        let organization_id = permit.organization();
        let actor = permit.actor();
        let grace = Duration::seconds(rotation.grace_period_seconds);
        for _ in 0..WRITE_ATTEMPTS {
            let mut credential = self.read(organization_id, &id).await?;
            refuse_revoked(&credential)?;
            if rotation
                .expected_version
                .is_some_and(|v| v != credential.version)
            {
                return Err(Conflict::CredentialChanged.into());
            }
            self.within_reach(&permit.authority(), &credential).await?;
            let now = service.clock.now();
            let old_until = rotation_grace_end(now, grace, credential.settings.expires_at)?;
            // The old client secret's access tokens end with it.
            credential.token_cutoff = Some(TokenCutoff::after(
                credential.token_cutoff,
                now,
                old_until.unwrap_or(now),
            ));
            let (api_key, client_secret, stored) = self.new_secrets(credential.environment);
            credential.prefix = api_key.display_prefix().to_owned();
            credential.hint = api_key.hint().to_owned();
            credential.updated_at = now;
            let details = json!({
                "grace_period_seconds": grace.whole_seconds(),
                "previous_secrets_expire_at": old_until.map(rfc3339),
            });
            let event = actor
                .event(
                    organization_id,
                    now,
                    "key.rotated",
                    Some(id.as_str()),
                    object(details),
                )
                .with_notice(
                    "key.rotated",
                    json!(CredentialRecord::new(&credential, now)),
                );
            let rotated = service
                .store
                .rotate_credential(&credential, &stored, old_until, &event)
                .await;
            if written(rotated)? {
                service.engine.forget_credential(&id);
                credential.version += 1;
                tracing::info!(key.id = %id, "rotated key {id}");
                return Ok(Rotated {
                    issued: Issued {
                        credential,
                        api_key,
                        client_secret,
                    },
                    previous_secrets_expire_at: old_until,
                });
            }
        }
        Err(Conflict::ConcurrentUpdate.into())
    }

    /// The bootstrap credential of a new organization, holding every scope (`*`), made by
    /// the operator.
    pub(crate) async fn bootstrap(&self, operator: Principal<'_>) -> Result<Issued, ServiceError> {
        let new = NewCredential {
            name: "Bootstrap credential".to_owned(),
            description: Some("Created by `keyward init`; holds every scope.".to_owned()),
            permissions: vec!["*".to_owned()],
            ..NewCredential::default()
        };
        self.create(&operator.permit()?, new).await
    }

    /// Reads a credential, applies `change`, and writes it back if nothing changed it
    /// meanwhile; on a concurrent write it reads again and re-applies, so no write is lost.
    /// `change` returns the audit action and details, or `None` when there is nothing to
    /// do; a change to do must stay within the principal's authority as `reach` says.
    async fn modify<F>(
        &self,
        permit: &Permit<'_, WriteKeys>,
        id: &CredentialId,
        reach: Reach,
        mut change: F,
    ) -> Result<Credential, ServiceError>
    where
        F: FnMut(
            &mut Credential,
            OffsetDateTime,
        ) -> Result<Option<(&'static str, Value)>, ServiceError>,
    {
        let service = self.0;
        let organization_id = permit.organization();
        let authority = permit.authority();
        for _ in 0..WRITE_ATTEMPTS {
            let mut credential = self.read(organization_id, id).await?;
            // Checked before anything else, so that a principal cannot even read, through a
            // change that changes nothing, a credential beyond its authority.
            if reach != Reach::Unchecked {
                self.within_reach(&authority, &credential).await?;
            }
            let now = service.clock.now();
            let Some((action, details)) = change(&mut credential, now)? else {
                return Ok(credential);
            };
            if reach == Reach::CurrentAndResult {
                self.within_reach(&authority, &credential).await?;
            }
            credential.updated_at = now;
            // Every change made here is an event type webhooks hear; a report of exposure
            // also says where the secret was found.
            let mut data = json!(CredentialRecord::new(&credential, now));
            if action == "key.exposed" {
                data["exposure"] = details.clone();
            }
            let event = permit
                .actor()
                .event(
                    organization_id,
                    now,
                    action,
                    Some(id.as_str()),
                    object(details),
                )
                .with_notice(action, data);
            if written(service.store.update_credential(&credential, &event).await)? {
                service.engine.forget_credential(id);
                credential.version += 1;
                tracing::info!(key.id = %id, action, "{action} {id}");
                return Ok(credential);
            }
        }
        Err(Conflict::ConcurrentUpdate.into())
    }

    /// Reads a credential of the organization, or [`ServiceError::NotFound`].
    async fn read(
        &self,
        organization_id: &OrganizationId,
        id: &CredentialId,
    ) -> Result<Credential, ServiceError> {
        self.0
            .store
            .credential(organization_id, id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Checks that a role exists in the organization (built-in or custom).
    async fn check_role(&self, org: &OrganizationId, role: &str) -> Result<(), ServiceError> {
        match self.0.engine.role_scopes(org, role).await? {
            Some(_) => Ok(()),
            None => Err(ValidationError::new("role", format!("unknown role `{role}`")).into()),
        }
    }

    /// Refuses unless `credential` is within `authority`'s reach in every way
    /// ([`Authority::permit_credential`]).
    async fn within_reach(
        &self,
        authority: &Authority<'_>,
        credential: &Credential,
    ) -> Result<(), ServiceError> {
        let scopes = self.effective_scopes(credential).await?;
        authority.permit_credential(credential, &scopes, &self.0.engine.config().rate_limits)
    }

    /// The scopes a credential would hold: its permissions and its role's.
    async fn effective_scopes(&self, credential: &Credential) -> Result<ScopeSet, ServiceError> {
        Ok(self.0.engine.effective_scopes(credential).await?)
    }

    fn parse_permissions(&self, texts: &[String]) -> Result<ScopeSet, ValidationError> {
        self.0
            .engine
            .config()
            .catalogue
            .parse_set(texts)
            .map_err(|e| ValidationError::new("permissions", e.to_string()))
    }

    fn new_secrets(&self, environment: Environment) -> (PlainSecret, PlainSecret, Vec<NewSecret>) {
        let prefix = &self.0.config.key_prefix;
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
}

/// The credential id `text`; one that cannot exist is simply not found, like another
/// organization's id.
fn key_id(text: &str) -> Result<CredentialId, ServiceError> {
    CredentialId::parse(text).map_err(|_| ServiceError::NotFound)
}

fn refuse_revoked(credential: &Credential) -> Result<(), ServiceError> {
    if credential.status == Status::Revoked {
        return Err(Conflict::CredentialRevoked.into());
    }
    Ok(())
}
