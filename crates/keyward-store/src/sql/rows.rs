//! Conversions between domain types and rows: JSON text for lists and objects, integer
//! milliseconds for times, raw bytes for digests.

use std::net::IpAddr;

use ipnet::IpNet;
use keyward_core::audit::AuditEvent;
use keyward_core::clock::{from_millis, to_millis};
use keyward_core::credential::{
    Credential, CredentialSettings, Environment, Organization, Status, TokenCutoff,
};
use keyward_core::digest::{HashBytes, LookupDigest, SaltedHash};
use keyward_core::ip_rule::{IpRule, RuleKind};
use keyward_core::member::{Invitation, Member, MemberRole, Session};
use keyward_core::scope::CustomRole;
use keyward_core::scope::{Scope, ScopeSet};
use keyward_core::secret::SecretKind;
use keyward_core::typeid::{AuditEventId, CredentialId, IpRuleId, OrganizationId, UserId};

use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::records::{SecretMatch, SigningKeyRecord};

/// The columns of a credential that change after creation, as bound into statements.
pub(super) struct CredentialRow {
    pub name: String,
    pub description: Option<String>,
    pub permissions: String,
    pub role: Option<String>,
    pub ip_allowlist: String,
    pub rate_limit_override: Option<i64>,
    pub not_before: Option<i64>,
    pub expires_at: Option<i64>,
    pub metadata: String,
    pub owner_id: Option<String>,
    pub status: &'static str,
    pub prefix: String,
    pub hint: String,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
    pub tokens_cut_at: Option<i64>,
    pub tokens_end_at: Option<i64>,
    pub exposed_at: Option<i64>,
}

impl From<&Credential> for CredentialRow {
    fn from(c: &Credential) -> Self {
        let s = &c.settings;
        let nets: Vec<String> = s.ip_allowlist.iter().map(ToString::to_string).collect();
        Self {
            name: s.name.clone(),
            description: s.description.clone(),
            permissions: json_text(&s.permissions.to_strings()),
            role: s.role.clone(),
            ip_allowlist: json_text(&nets),
            rate_limit_override: s.rate_limit_override.map(i64::from),
            not_before: s.not_before.map(to_millis),
            expires_at: s.expires_at.map(to_millis),
            metadata: Value::Object(s.metadata.clone()).to_string(),
            owner_id: s.owner_id.clone(),
            status: c.status.as_str(),
            prefix: c.prefix.clone(),
            hint: c.hint.clone(),
            updated_at: to_millis(c.updated_at),
            revoked_at: c.revoked_at.map(to_millis),
            tokens_cut_at: c.token_cutoff.map(|cut| to_millis(cut.set_at)),
            tokens_end_at: c.token_cutoff.map(|cut| to_millis(cut.ends_at)),
            exposed_at: c.exposed_at.map(to_millis),
        }
    }
}

/// A list of strings as JSON text.
pub(super) fn json_text(items: &[String]) -> String {
    Value::Array(items.iter().cloned().map(Value::String).collect()).to_string()
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("unreadable stored {what}"))
}

pub(super) fn get<'r, T>(row: &'r AnyRow, index: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(index)
        .map_err(|e| StoreError::Internal(format!("column {index}: {e}")))
}

pub(super) fn time_at(row: &AnyRow, index: usize) -> Result<Option<OffsetDateTime>, StoreError> {
    Ok(get::<Option<i64>>(row, index)?.map(from_millis))
}

pub(super) fn parsed<T>(
    text: &str,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(text).ok_or_else(|| corrupt(what))
}

fn string_list(text: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(what))
}

/// Reads an organization row: `id, name, created_at`.
pub(super) fn organization_from_row(row: &AnyRow) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: parsed(&get::<String>(row, 0)?, "organization id", |t| {
            OrganizationId::parse(t).ok()
        })?,
        name: get(row, 1)?,
        created_at: from_millis(get(row, 2)?),
    })
}

/// Reads the credential columns that `select_credentials!` lists first.
pub(super) fn credential_from_row(row: &AnyRow) -> Result<Credential, StoreError> {
    let permissions: ScopeSet = string_list(&get::<String>(row, 5)?, "permissions")?
        .iter()
        .map(|s| parsed(s, "permissions", Scope::from_canonical))
        .collect::<Result<_, _>>()?;
    let ip_allowlist = string_list(&get::<String>(row, 7)?, "ip_allowlist")?
        .iter()
        .map(|t| parsed(t, "ip_allowlist", |t| t.parse::<IpNet>().ok()))
        .collect::<Result<_, _>>()?;
    let metadata: Map<String, Value> =
        serde_json::from_str(&get::<String>(row, 11)?).map_err(|_| corrupt("metadata"))?;
    let last_used_ip = get::<Option<String>>(row, 21)?
        .map(|t| parsed(&t, "last_used_ip", |t| t.parse::<IpAddr>().ok()))
        .transpose()?;
    Ok(Credential {
        id: parsed(&get::<String>(row, 0)?, "credential id", |t| {
            CredentialId::parse(t).ok()
        })?,
        organization_id: parsed(&get::<String>(row, 1)?, "organization id", |t| {
            OrganizationId::parse(t).ok()
        })?,
        environment: parsed(&get::<String>(row, 2)?, "environment", Environment::parse)?,
        settings: CredentialSettings {
            name: get(row, 3)?,
            description: get(row, 4)?,
            permissions,
            role: get(row, 6)?,
            ip_allowlist,
            rate_limit_override: get::<Option<i64>>(row, 8)?
                .map(|v| u32::try_from(v).map_err(|_| corrupt("rate_limit_override")))
                .transpose()?,
            not_before: time_at(row, 9)?,
            expires_at: time_at(row, 10)?,
            metadata,
            owner_id: get(row, 12)?,
        },
        status: parsed(&get::<String>(row, 13)?, "status", Status::parse)?,
        prefix: get(row, 14)?,
        hint: get(row, 15)?,
        created_at: from_millis(get(row, 16)?),
        created_by: get(row, 17)?,
        updated_at: from_millis(get(row, 18)?),
        revoked_at: time_at(row, 19)?,
        last_used_at: time_at(row, 20)?,
        last_used_ip,
        version: get(row, 22)?,
        token_cutoff: match (time_at(row, 23)?, time_at(row, 24)?) {
            (Some(set_at), Some(ends_at)) => Some(TokenCutoff { set_at, ends_at }),
            (None, None) => None,
            _ => return Err(corrupt("token cutoff")),
        },
        exposed_at: time_at(row, 25)?,
    })
}

/// Reads a credential followed by `kind, salt, salted_hash, expires_at` of one secret and
/// its organization's `change_seq`.
pub(super) fn secret_match_from_row(row: &AnyRow) -> Result<SecretMatch, StoreError> {
    let salt: Vec<u8> = get(row, 27)?;
    let hash: Vec<u8> = get(row, 28)?;
    let credential = credential_from_row(row)?;
    let environment = credential.environment;
    Ok(SecretMatch {
        kind: parsed(&get::<String>(row, 26)?, "secret kind", |name| {
            SecretKind::from_storage_name(name, environment)
        })?,
        credential,
        salted: SaltedHash {
            salt: salt.try_into().map_err(|_| corrupt("salt"))?,
            hash: HashBytes(hash.try_into().map_err(|_| corrupt("salted hash"))?),
        },
        expires_at: time_at(row, 29)?,
        org_change_seq: get(row, 30)?,
    })
}

/// Reads an audit event row.
pub(super) fn audit_event_from_row(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    let details: Map<String, Value> =
        serde_json::from_str(&get::<String>(row, 7)?).map_err(|_| corrupt("details"))?;
    Ok(AuditEvent {
        id: parsed(&get::<String>(row, 0)?, "audit event id", |t| {
            AuditEventId::parse(t).ok()
        })?,
        organization_id: parsed(&get::<String>(row, 1)?, "organization id", |t| {
            OrganizationId::parse(t).ok()
        })?,
        occurred_at: from_millis(get(row, 2)?),
        action: get(row, 3)?,
        actor: get(row, 4)?,
        source_ip: get::<Option<String>>(row, 5)?
            .map(|t| parsed(&t, "source_ip", |t| t.parse().ok()))
            .transpose()?,
        target_id: get(row, 6)?,
        details,
        notice: None,
    })
}

/// Reads an IP rule row.
pub(super) fn ip_rule_from_row(row: &AnyRow) -> Result<IpRule, StoreError> {
    Ok(IpRule {
        id: parsed(&get::<String>(row, 0)?, "ip rule id", |t| {
            IpRuleId::parse(t).ok()
        })?,
        organization_id: parsed(&get::<String>(row, 1)?, "organization id", |t| {
            OrganizationId::parse(t).ok()
        })?,
        network: parsed(&get::<String>(row, 2)?, "ip_network", |t| {
            t.parse::<IpNet>().ok()
        })?,
        kind: parsed(&get::<String>(row, 3)?, "rule kind", RuleKind::parse)?,
        description: get(row, 4)?,
        created_at: from_millis(get(row, 5)?),
        created_by: get(row, 6)?,
        last_matched_at: time_at(row, 7)?,
        version: get(row, 8)?,
    })
}

/// Reads a custom role row.
pub(super) fn role_from_row(row: &AnyRow) -> Result<CustomRole, StoreError> {
    let scopes: ScopeSet = string_list(&get::<String>(row, 3)?, "role scopes")?
        .iter()
        .map(|s| parsed(s, "role scopes", Scope::from_canonical))
        .collect::<Result<_, _>>()?;
    Ok(CustomRole {
        organization_id: parsed(&get::<String>(row, 0)?, "organization id", |t| {
            OrganizationId::parse(t).ok()
        })?,
        name: get(row, 1)?,
        description: get(row, 2)?,
        scopes,
        created_at: from_millis(get(row, 4)?),
        created_by: get(row, 5)?,
    })
}

pub(super) fn signing_key_from_row(row: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: get(row, 0)?,
        generation: get(row, 1)?,
        algorithm: get(row, 2)?,
        public_jwk: get(row, 3)?,
        sealed_private_key: get(row, 4)?,
        created_at: from_millis(get(row, 5)?),
        activates_at: from_millis(get(row, 6)?),
        retired_at: time_at(row, 7)?,
        published_until: time_at(row, 8)?,
    })
}

/// Reads the member columns that `select_members!` lists, from column `at` on.
pub(super) fn member_from_row(row: &AnyRow, at: usize) -> Result<Member, StoreError> {
    Ok(Member {
        id: parsed(&get::<String>(row, at)?, "user id", |t| {
            UserId::parse(t).ok()
        })?,
        organization_id: parsed(&get::<String>(row, at + 1)?, "organization id", |t| {
            OrganizationId::parse(t).ok()
        })?,
        email: get(row, at + 2)?,
        password_hash: get(row, at + 3)?,
        created_at: from_millis(get(row, at + 4)?),
        password_changed_at: from_millis(get(row, at + 5)?),
        role: parsed(
            &get::<String>(row, at + 6)?,
            "member role",
            MemberRole::parse,
        )?,
        last_login_at: time_at(row, at + 7)?,
        second_factor: get::<i64>(row, at + 8)? != 0,
    })
}

/// Reads an invitation row as `select_invitations!` lists it.
pub(super) fn invitation_from_row(row: &AnyRow) -> Result<Invitation, StoreError> {
    let digest: Vec<u8> = get(row, 0)?;
    Ok(Invitation {
        digest: LookupDigest::from_bytes(
            digest
                .try_into()
                .map_err(|_| corrupt("invitation digest"))?,
        ),
        organization_id: parsed(&get::<String>(row, 1)?, "organization id", |t| {
            OrganizationId::parse(t).ok()
        })?,
        role: parsed(&get::<String>(row, 2)?, "member role", MemberRole::parse)?,
        created_by: get(row, 3)?,
        created_at: from_millis(get(row, 4)?),
        expires_at: from_millis(get(row, 5)?),
    })
}

/// Reads a session row: `digest, user_id, created_at, expires_at`.
pub(super) fn session_from_row(row: &AnyRow) -> Result<Session, StoreError> {
    let digest: Vec<u8> = get(row, 0)?;
    Ok(Session {
        digest: LookupDigest::from_bytes(digest.try_into().map_err(|_| corrupt("session digest"))?),
        user_id: parsed(&get::<String>(row, 1)?, "user id", |t| {
            UserId::parse(t).ok()
        })?,
        created_at: from_millis(get(row, 2)?),
        expires_at: from_millis(get(row, 3)?),
    })
}
