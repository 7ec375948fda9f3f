//! What every interface shows of an object: the API's answers, the CLI's `--json`, the
//! dashboard, and the `data` of webhook messages. Never a secret.

use keyward_core::clock::rfc3339;
use keyward_core::credential::Credential;
use keyward_core::ip_rule::IpRule;
use serde::Serialize;
use serde_json::{Map, Value};

/// A credential as every interface shows it — the API's answers, the CLI's `--json`, and
/// the `data` of its webhook messages: every field but the secrets.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = KeyResponse))]
pub struct CredentialRecord {
    /// `api_key_…`: the id used to manage the credential.
    pub key_id: String,
    /// The organization id, which is the OAuth client id.
    pub client_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `live` or `test`.
    pub environment: &'static str,
    /// Scopes granted directly.
    pub permissions: Vec<String>,
    /// Role whose scopes are granted too.
    pub role: Option<String>,
    /// Requests per second instead of the environment default; null = default.
    pub rate_limit_override: Option<u32>,
    /// Allowed addresses and ranges; empty = any.
    pub ip_allowlist: Vec<String>,
    /// Returned on every successful verification.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Map<String, Value>,
    /// External id of the end customer.
    pub owner_id: Option<String>,
    /// Start of validity (RFC 3339).
    pub not_before: Option<String>,
    /// Expiry (RFC 3339); null = never.
    pub expires_at: Option<String>,
    /// `active`, `disabled`, `revoked` or `expired`.
    pub status: &'static str,
    /// `{prefix}_{env}_` of the API key.
    pub prefix: String,
    /// Last four characters of the API key.
    pub hint: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Revocation time (RFC 3339).
    pub revoked_at: Option<String>,
    /// When a check last accepted it (RFC 3339; written in batches within seconds, and
    /// kept to the second: uses less than a second apart count as one).
    pub last_used_at: Option<String>,
    /// The address of that check.
    pub last_used_ip: Option<String>,
    /// When a secret of it was last reported found in public (RFC 3339); null if never.
    pub exposed_at: Option<String>,
}

impl CredentialRecord {
    /// The view of a credential at `now` (which decides `expired`).
    pub fn new(credential: &Credential, now: time::OffsetDateTime) -> Self {
        let s = &credential.settings;
        Self {
            key_id: credential.id.to_string(),
            client_id: credential.organization_id.to_string(),
            name: s.name.clone(),
            description: s.description.clone(),
            environment: credential.environment.as_str(),
            permissions: s.permissions.to_strings(),
            role: s.role.clone(),
            rate_limit_override: s.rate_limit_override,
            ip_allowlist: s.ip_allowlist.iter().map(ToString::to_string).collect(),
            metadata: s.metadata.clone(),
            owner_id: s.owner_id.clone(),
            not_before: s.not_before.map(rfc3339),
            expires_at: s.expires_at.map(rfc3339),
            status: credential.display_status(now).as_str(),
            prefix: credential.prefix.clone(),
            hint: credential.hint.clone(),
            created_at: rfc3339(credential.created_at),
            created_by: credential.created_by.clone(),
            updated_at: rfc3339(credential.updated_at),
            revoked_at: credential.revoked_at.map(rfc3339),
            last_used_at: credential.last_used_at.map(rfc3339),
            last_used_ip: credential.last_used_ip.map(|ip| ip.to_string()),
            exposed_at: credential.exposed_at.map(rfc3339),
        }
    }
}

/// One rule.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = IpRuleResponse))]
pub struct IpRuleRecord {
    /// `ip_rule_…`.
    pub id: String,
    /// The range; single addresses show as /32 or /128.
    pub ip_network: String,
    /// `allow` or `deny`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The note.
    pub description: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// When it last decided a request (RFC 3339; updated in batches).
    pub last_matched_at: Option<String>,
}

impl From<&IpRule> for IpRuleRecord {
    fn from(rule: &IpRule) -> Self {
        Self {
            id: rule.id.to_string(),
            ip_network: rule.network.to_string(),
            kind: rule.kind.as_str(),
            description: rule.description.clone(),
            created_at: rfc3339(rule.created_at),
            created_by: rule.created_by.clone(),
            last_matched_at: rule.last_matched_at.map(rfc3339),
        }
    }
}
