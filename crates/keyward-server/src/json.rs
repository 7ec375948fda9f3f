//! JSON documents the API shares beyond one handler: a credential as every answer shows it
//! (and the CLI's `--json` output), and the environment names requests use.

use keyward_core::clock::rfc3339;
use keyward_core::credential::{Credential, Environment, ValidationError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

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

/// A credential as shown after creation: every field but the secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyResponse {
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
    #[schema(value_type = Object)]
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
}

impl KeyResponse {
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
        }
    }
}

/// A whole number as JSON Schema's `integer` counts them, which the document promises:
/// `5`, `5.0` and `5e0` are the same number. serde reads only the first as an integer;
/// this reads all three, and refuses a fraction, or a number `T` cannot hold, as serde
/// refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeNumber<T>(pub T);

impl<T> WholeNumber<T> {
    /// The number.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<'de, T: TryFrom<u64> + TryFrom<i64>> Deserialize<'de> for WholeNumber<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, Unexpected, Visitor};

        struct Whole<T>(std::marker::PhantomData<T>);

        impl<T: TryFrom<u64> + TryFrom<i64>> Visitor<'_> for Whole<T> {
            type Value = WholeNumber<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a whole number in range")
            }

            fn visit_u64<E: Error>(self, n: u64) -> Result<Self::Value, E> {
                T::try_from(n)
                    .map(WholeNumber)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
            }

            fn visit_i64<E: Error>(self, n: i64) -> Result<Self::Value, E> {
                T::try_from(n)
                    .map(WholeNumber)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(n), &self))
            }

            // The bounds are 2^64 and -2^63, which an f64 holds exactly; within them the
            // casts are exact for every whole number.
            fn visit_f64<E: Error>(self, n: f64) -> Result<Self::Value, E> {
                if n.fract() == 0.0 {
                    if (0.0..18_446_744_073_709_551_616.0).contains(&n) {
                        return self.visit_u64(n as u64);
                    }
                    if (-9_223_372_036_854_775_808.0..0.0).contains(&n) {
                        return self.visit_i64(n as i64);
                    }
                }
                Err(E::invalid_value(Unexpected::Float(n), &self))
            }
        }

        deserializer.deserialize_any(Whole(std::marker::PhantomData))
    }
}

/// The one rule of every `PATCH` body: a field left out stays as it is; a field sent as
/// `null` is cleared where it may be empty and refused (422) where it may not. Serde reads
/// both as `None` for an `Option<T>`, so a patchable field is an `Option<Option<T>>` read
/// with this function: `None` when left out, `Some(None)` when `null`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// [`present`] for an RFC 3339 time.
pub fn present_time<'de, D>(deserializer: D) -> Result<Option<Option<OffsetDateTime>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    time::serde::rfc3339::option::deserialize(deserializer).map(Some)
}

/// A patched field that cannot be empty: `null` is refused.
pub fn not_null<T>(
    field: &'static str,
    value: Option<Option<T>>,
) -> Result<Option<T>, ValidationError> {
    match value {
        Some(None) => Err(ValidationError::new(
            field,
            "cannot be cleared: leave it out to keep it",
        )),
        Some(Some(value)) => Ok(Some(value)),
        None => Ok(None),
    }
}

/// A patched field whose empty value is `empty`: `null` sets it.
pub fn or_empty<T>(value: Option<Option<T>>, empty: impl FnOnce() -> T) -> Option<T> {
    value.map(|value| value.unwrap_or_else(empty))
}
