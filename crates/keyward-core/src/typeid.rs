//! TypeIDs: `{type}_{26 lowercase Crockford base32 characters of a UUIDv7}`.
//!
//! The suffix encodes the UUID's 128 bits big-endian in 26 characters (the first carries
//! only 3 bits, so it is at most `7`). Because the encoding is fixed-width and ordered like
//! the bytes, ids sort by creation time, which the store uses for cursor pagination.

use std::fmt;

use uuid::Uuid;

/// The Crockford base32 alphabet in lowercase, as the TypeID specification uses it.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Why a TypeID could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeIdError {
    /// The type prefix is not the one expected.
    #[error("expected an id starting with `{expected}_`")]
    WrongPrefix {
        /// The prefix this id type carries.
        expected: &'static str,
    },
    /// The suffix is not 26 valid base32 characters starting with 0–7.
    #[error("the id suffix must be 26 lowercase base32 characters")]
    BadSuffix,
}

/// Encodes a UUID as the 26-character TypeID suffix.
pub fn encode_suffix(uuid: Uuid) -> String {
    let value = uuid.as_u128();
    (0..26)
        .map(|i| {
            let shift = 5 * (25 - i);
            ALPHABET[((value >> shift) & 0x1f) as usize] as char
        })
        .collect()
}

/// Decodes a 26-character TypeID suffix into its UUID.
pub fn decode_suffix(suffix: &str) -> Result<Uuid, TypeIdError> {
    let bytes = suffix.as_bytes();
    if bytes.len() != 26 || bytes[0] > b'7' {
        return Err(TypeIdError::BadSuffix);
    }
    let mut value: u128 = 0;
    for &b in bytes {
        let digit = ALPHABET
            .iter()
            .position(|&a| a == b)
            .ok_or(TypeIdError::BadSuffix)?;
        value = (value << 5) | digit as u128;
    }
    Ok(Uuid::from_u128(value))
}

/// Declares a TypeID-backed id type with its fixed prefix.
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The TypeID type prefix of this id.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id from a new UUIDv7.
            pub fn generate() -> Self {
                Self::from_uuid(Uuid::now_v7())
            }

            /// The id of the given UUID.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(format!("{}_{}", $prefix, encode_suffix(uuid)))
            }

            /// Parses `{prefix}_{suffix}`, checking the prefix and the suffix.
            pub fn parse(text: &str) -> Result<Self, TypeIdError> {
                let suffix = text
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or(TypeIdError::WrongPrefix { expected: $prefix })?;
                decode_suffix(suffix)?;
                Ok(Self(text.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = TypeIdError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// An organization (tenant) id, `organization_…`; also its OAuth `client_id`.
    OrganizationId,
    "organization"
);
typed_id!(
    /// A credential id, `api_key_…`.
    CredentialId,
    "api_key"
);
typed_id!(
    /// An organization IP access rule id, `ip_rule_…`.
    IpRuleId,
    "ip_rule"
);
typed_id!(
    /// An organization member (dashboard user) id, `user_…`.
    UserId,
    "user"
);
typed_id!(
    /// An audit event id, `audit_event_…`.
    AuditEventId,
    "audit_event"
);
typed_id!(
    /// A webhook endpoint id, `webhook_…`.
    WebhookId,
    "webhook"
);
typed_id!(
    /// A webhook message id, `msg_…`: the `webhook-id` every attempt to deliver one event
    /// to one endpoint carries, so a receiver can drop a repeat.
    MessageId,
    "msg"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The valid vectors of the TypeID specification (v0.3, valid.yml).
    const SPEC_VECTORS: &[(&str, &str)] = &[
        (
            "00000000000000000000000000",
            "00000000-0000-0000-0000-000000000000",
        ),
        (
            "0000000000e008000000000001",
            "00000000-0000-7000-8000-000000000001",
        ),
        (
            "0000000000e00900000000000a",
            "00000000-0000-7000-9000-00000000000a",
        ),
        (
            "0000000000e00a00000000000g",
            "00000000-0000-7000-a000-000000000010",
        ),
        (
            "0000000000e00b000000000010",
            "00000000-0000-7000-b000-000000000020",
        ),
        (
            "7zzzzzzzzzzzzzzzzzzzzzzzzz",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ),
        (
            "0123456789abcbefghjkmnpqrs",
            "0110c853-1d09-52d8-b73e-1194e95b5f19",
        ),
        (
            "01h455vb4pex5vsknk084sn02q",
            "01890a5d-ac96-774b-bcce-b302099a8057",
        ),
    ];

    #[test]
    fn encodes_and_decodes_the_specification_vectors() {
        for (suffix, uuid) in SPEC_VECTORS {
            let uuid = Uuid::parse_str(uuid).unwrap();
            assert_eq!(encode_suffix(uuid), *suffix);
            assert_eq!(decode_suffix(suffix).unwrap(), uuid);
        }
    }

    #[test]
    fn rejects_the_specification_invalid_suffixes() {
        for bad in [
            "8zzzzzzzzzzzzzzzzzzzzzzzzz", // overflows 128 bits
            "0123456789abcdefghijklmnop", // i, l, o are not in the alphabet
            "01H455VB4PEX5VSKNK084SN02Q", // uppercase
            "01h455vb4pex5vsknk084sn02",  // too short
            "01h455vb4pex5vsknk084sn02qq",
            "",
        ] {
            assert_eq!(decode_suffix(bad), Err(TypeIdError::BadSuffix), "{bad}");
        }
    }

    #[test]
    fn parses_an_organization_id_of_the_documented_form() {
        let id = OrganizationId::parse("organization_01jxe20q5hf9p4bm3kfz7v0w6t").unwrap();
        assert_eq!(id.as_str(), "organization_01jxe20q5hf9p4bm3kfz7v0w6t");
        assert!(CredentialId::parse("organization_01jxe20q5hf9p4bm3kfz7v0w6t").is_err());
        assert!(CredentialId::parse("api_key01jxe20q5hf9p4bm3kfz7v0w6t").is_err());
    }

    #[test]
    fn generated_ids_sort_by_creation() {
        let ids: Vec<_> = (0..1000).map(|_| CredentialId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    proptest! {
        #[test]
        fn any_uuid_round_trips(value in any::<u128>()) {
            let uuid = Uuid::from_u128(value);
            prop_assert_eq!(decode_suffix(&encode_suffix(uuid)).unwrap(), uuid);
            let id = CredentialId::from_uuid(uuid);
            prop_assert_eq!(CredentialId::parse(id.as_str()).unwrap(), id);
        }
    }
}
