//! JSON documents the API shares beyond one handler: a credential as every answer shows it
//! (and the CLI's `--json` output), and the environment names requests use.

use keyward_core::credential::{Environment, ValidationError};
use serde::Deserialize;
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

impl From<Environment> for EnvironmentName {
    fn from(environment: Environment) -> Self {
        match environment {
            Environment::Live => EnvironmentName::Live,
            Environment::Test => EnvironmentName::Test,
        }
    }
}

pub use keyward_service::records::CredentialRecord as KeyResponse;

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
