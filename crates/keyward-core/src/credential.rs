//! Organizations and credentials, their validation rules and lifecycle arithmetic.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::clock::within_rfc3339;
use crate::scope::ScopeSet;
use crate::typeid::{CredentialId, OrganizationId};
pub use crate::validation::ValidationError;
use crate::validation::{TextKind, person_text};

/// A tenant: owns credentials, rules and roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// `organization_…`, also the OAuth client id.
    pub id: OrganizationId,
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// Live or test: production traffic is kept apart from development.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Environment {
    /// Production.
    #[default]
    Live,
    /// Development and testing.
    Test,
}

impl Environment {
    /// `live` or `test`, as in keys and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }

    /// Reads `live` or `test`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "live" => Some(Environment::Live),
            "test" => Some(Environment::Test),
            _ => None,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stored status of a credential. `expired` is not stored: it follows from `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Usable (unless expired or not yet valid).
    Active,
    /// Switched off; can be enabled again.
    Disabled,
    /// Permanently dead.
    Revoked,
}

impl Status {
    /// `active`, `disabled` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
            Status::Revoked => "revoked",
        }
    }

    /// Reads a stored status.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Status::Active),
            "disabled" => Some(Status::Disabled),
            "revoked" => Some(Status::Revoked),
            _ => None,
        }
    }
}

/// The status a person sees: the stored one, or `expired` once `expires_at` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisplayStatus {
    /// Usable.
    Active,
    /// Switched off.
    Disabled,
    /// Permanently dead.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl DisplayStatus {
    /// `active`, `disabled`, `revoked` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            DisplayStatus::Active => "active",
            DisplayStatus::Disabled => "disabled",
            DisplayStatus::Revoked => "revoked",
            DisplayStatus::Expired => "expired",
        }
    }

    /// Reads a display status, as used by list filters.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(DisplayStatus::Active),
            "disabled" => Some(DisplayStatus::Disabled),
            "revoked" => Some(DisplayStatus::Revoked),
            "expired" => Some(DisplayStatus::Expired),
            _ => None,
        }
    }
}

/// A credential: the record behind an API key and a client secret. Holds no secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    /// `api_key_…`.
    pub id: CredentialId,
    /// The owning organization.
    pub organization_id: OrganizationId,
    /// Live or test; fixed at creation (it is written into the key).
    pub environment: Environment,
    /// What a person may change.
    pub settings: CredentialSettings,
    /// Active, disabled or revoked.
    pub status: Status,
    /// `{prefix}_{env}_` of the current API key.
    pub prefix: String,
    /// Last four characters of the current API key.
    pub hint: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Who created it: a credential id, a user, or `cli`.
    pub created_by: String,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// When a check last accepted it (batched; may lag a few seconds).
    pub last_used_at: Option<OffsetDateTime>,
    /// The address of that check.
    pub last_used_ip: Option<IpAddr>,
    /// Incremented by every change; updates check it so no concurrent write is lost.
    pub version: i64,
    /// The latest cut of its access tokens, if any: set by a rotation and by disabling.
    pub token_cutoff: Option<TokenCutoff>,
    /// When a secret of it was last reported found in public (a leak report).
    pub exposed_at: Option<OffsetDateTime>,
}

/// Access tokens minted before `set_at` are not accepted from `ends_at` on.
///
/// A token carries the `set_at` of the cutoff in force when it was minted (its
/// generation, 0 when there was none), so "before" is decided by this record alone, not by
/// comparing clocks of the nodes that minted and cut. A rotation sets a cutoff ending with
/// its grace period, so the old client secret's tokens end with the old secret; disabling
/// sets one ending at once, so enabling the credential again revives none of the tokens
/// from before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCutoff {
    /// When it was set: the generation of the tokens minted after it.
    pub set_at: OffsetDateTime,
    /// From when the tokens of earlier generations are refused.
    pub ends_at: OffsetDateTime,
}

impl TokenCutoff {
    /// The cutoff that replaces `earlier` at `now`, ending earlier tokens at `ends_at`.
    /// Tokens the earlier one was ending still end no later than it said, and `set_at`
    /// moves forward even if the clock went back, so every earlier generation stays
    /// before it.
    pub fn after(
        earlier: Option<TokenCutoff>,
        now: OffsetDateTime,
        ends_at: OffsetDateTime,
    ) -> Self {
        let Some(earlier) = earlier else {
            return Self {
                set_at: now,
                ends_at,
            };
        };
        Self {
            set_at: now.max(earlier.set_at + Duration::milliseconds(1)),
            ends_at: match earlier.ends_at > now {
                true => ends_at.min(earlier.ends_at),
                false => ends_at,
            },
        }
    }

    /// When a token of `generation` (milliseconds since the epoch) stops being accepted,
    /// if this cutoff ends it.
    pub fn end_of(&self, generation: i64) -> Option<OffsetDateTime> {
        (generation < crate::clock::to_millis(self.set_at)).then_some(self.ends_at)
    }
}

/// The fields of a credential that its owners set and may change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CredentialSettings {
    /// 1–100 characters, trimmed.
    pub name: String,
    /// Up to 1,000 characters.
    pub description: Option<String>,
    /// Scopes granted directly.
    pub permissions: ScopeSet,
    /// A role whose scopes are granted too.
    pub role: Option<String>,
    /// Addresses and ranges allowed to use it; empty allows any.
    pub ip_allowlist: Vec<IpNet>,
    /// Requests per second instead of the environment's default.
    pub rate_limit_override: Option<u32>,
    /// Not usable before this time.
    pub not_before: Option<OffsetDateTime>,
    /// Not usable from this time on.
    pub expires_at: Option<OffsetDateTime>,
    /// Returned with every successful verification; a JSON object up to 16 KB.
    pub metadata: Map<String, Value>,
    /// An external id grouping the keys of one end customer.
    pub owner_id: Option<String>,
}

impl Credential {
    /// The status a person sees at `now`.
    pub fn display_status(&self, now: OffsetDateTime) -> DisplayStatus {
        match self.status {
            Status::Revoked => DisplayStatus::Revoked,
            Status::Disabled => DisplayStatus::Disabled,
            Status::Active if self.settings.expires_at.is_some_and(|e| e <= now) => {
                DisplayStatus::Expired
            }
            Status::Active => DisplayStatus::Active,
        }
    }
}

/// Longest name, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest description, in characters.
pub const DESCRIPTION_MAX_CHARS: usize = 1_000;
/// Largest metadata object, in bytes of compact JSON.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;
/// Longest owner id, in characters.
pub const OWNER_ID_MAX_CHARS: usize = 255;
/// Most entries in an IP allowlist.
pub const IP_ALLOWLIST_MAX_ENTRIES: usize = 100;
/// Highest per-credential rate limit, in requests per second.
pub const RATE_LIMIT_MAX: u32 = 1_000_000;
/// Longest grace period for the old secrets of a rotated credential: 7 days.
pub const MAX_ROTATION_GRACE: Duration = Duration::days(7);

/// Checks a name: 1–100 characters by the rule every name follows
/// ([`person_text`]); returns it trimmed.
pub fn validate_name(name: &str) -> Result<String, ValidationError> {
    person_text("name", name, NAME_MAX_CHARS, TextKind::Name).map(Option::unwrap_or_default)
}

/// Checks a description: at most 1,000 characters by the rule every description follows
/// ([`person_text`]); an empty one becomes none.
pub fn validate_description(text: Option<&str>) -> Result<Option<String>, ValidationError> {
    person_text(
        "description",
        text.unwrap_or_default(),
        DESCRIPTION_MAX_CHARS,
        TextKind::Description,
    )
}

/// Checks an owner id: 1–255 visible ASCII characters (it travels in HTTP headers).
pub fn validate_owner_id(text: Option<&str>) -> Result<Option<String>, ValidationError> {
    let Some(text) = text else { return Ok(None) };
    if text.is_empty()
        || text.len() > OWNER_ID_MAX_CHARS
        || !text.bytes().all(|b| (b' '..=b'~').contains(&b))
    {
        return Err(ValidationError::new(
            "owner_id",
            format!("must be 1 to {OWNER_ID_MAX_CHARS} visible ASCII characters"),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// Checks metadata is a JSON object of at most 16 KB.
pub fn validate_metadata(value: Option<Value>) -> Result<Map<String, Value>, ValidationError> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => {
            let size = serde_json::to_vec(&map)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > METADATA_MAX_BYTES {
                return Err(ValidationError::new(
                    "metadata",
                    format!("must be at most {METADATA_MAX_BYTES} bytes of JSON"),
                ));
            }
            Ok(map)
        }
        Some(_) => Err(ValidationError::new("metadata", "must be a JSON object")),
    }
}

/// Checks a per-credential rate limit: 1 to 1,000,000 requests per second.
pub fn validate_rate_limit(value: Option<u64>) -> Result<Option<u32>, ValidationError> {
    match value {
        None => Ok(None),
        Some(v) if (1..=u64::from(RATE_LIMIT_MAX)).contains(&v) => Ok(Some(v as u32)),
        Some(_) => Err(ValidationError::new(
            "rate_limit_override",
            format!("must be between 1 and {RATE_LIMIT_MAX} requests per second"),
        )),
    }
}

/// Parses an IP allowlist: addresses (stored as /32 or /128) and CIDR ranges, IPv4 and
/// IPv6; IPv4-mapped IPv6 addresses become their IPv4 form. Duplicates are dropped.
pub fn parse_ip_allowlist<S: AsRef<str>>(entries: &[S]) -> Result<Vec<IpNet>, ValidationError> {
    if entries.len() > IP_ALLOWLIST_MAX_ENTRIES {
        return Err(ValidationError::new(
            "ip_allowlist",
            format!("must have at most {IP_ALLOWLIST_MAX_ENTRIES} entries"),
        ));
    }
    let mut nets = Vec::with_capacity(entries.len());
    for entry in entries {
        let entry = entry.as_ref().trim();
        let net = parse_ip_network(entry).ok_or_else(|| {
            ValidationError::new(
                "ip_allowlist",
                format!("`{entry}` is not an IP address or CIDR range"),
            )
        })?;
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// Reads an address or a CIDR range, normalised: host bits cleared, IPv4-mapped IPv6
/// turned into IPv4.
pub fn parse_ip_network(text: &str) -> Option<IpNet> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    let net = match (net, net.addr().to_canonical()) {
        (IpNet::V6(v6), IpAddr::V4(v4)) if v6.prefix_len() >= 96 => {
            IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).ok()?
        }
        _ => net,
    };
    Some(net.trunc())
}

/// Whether `ip` is in one of `nets` (an empty list allows every address).
pub fn ip_allowed(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.is_empty() || nets.iter().any(|net| net.contains(&ip))
}

/// Checks that both times can be shown and stored (their year in UTC is 0000 to 9999),
/// that `not_before` comes before `expires_at`, and that a new expiry is in the future.
pub fn validate_validity(
    not_before: Option<OffsetDateTime>,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<(), ValidationError> {
    for (field, time) in [("not_before", not_before), ("expires_at", expires_at)] {
        if time.is_some_and(|t| !within_rfc3339(t)) {
            return Err(ValidationError::new(
                field,
                "must be from year 0000 to 9999 in UTC",
            ));
        }
    }
    if let (Some(start), Some(end)) = (not_before, expires_at)
        && start >= end
    {
        return Err(ValidationError::new(
            "expires_at",
            "must be later than not_before",
        ));
    }
    if expires_at.is_some_and(|end| end <= now) {
        return Err(ValidationError::new("expires_at", "must be in the future"));
    }
    Ok(())
}

/// When the old secrets of a rotated credential stop working.
///
/// `None` means at once (OpenSRS's behaviour). A grace period keeps them until `now + grace`,
/// but never past the credential's own expiry, and never longer than 7 days.
pub fn rotation_grace_end(
    now: OffsetDateTime,
    grace: Duration,
    expires_at: Option<OffsetDateTime>,
) -> Result<Option<OffsetDateTime>, ValidationError> {
    if grace.is_negative() || grace > MAX_ROTATION_GRACE {
        return Err(ValidationError::new(
            "grace_period_seconds",
            format!(
                "must be between 0 and {} seconds",
                MAX_ROTATION_GRACE.whole_seconds()
            ),
        ));
    }
    let end = match expires_at {
        Some(expiry) => (now + grace).min(expiry),
        None => now + grace,
    };
    Ok((end > now).then_some(end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn a_token_cutoff_ends_earlier_generations_never_later_than_before() {
        let t0 = datetime!(2026-06-01 12:00 UTC);
        let first = TokenCutoff::after(None, t0, t0 + Duration::hours(1));
        assert_eq!(first.set_at, t0);
        let gen_before = crate::clock::to_millis(t0) - 1;
        let gen_of_first = crate::clock::to_millis(t0);
        assert_eq!(first.end_of(gen_before), Some(t0 + Duration::hours(1)));
        assert_eq!(first.end_of(0), Some(t0 + Duration::hours(1)));
        assert_eq!(first.end_of(gen_of_first), None);

        // A second cut within the first's grace keeps the earlier end if it is sooner...
        let t1 = t0 + Duration::minutes(10);
        let second = TokenCutoff::after(Some(first), t1, t1 + Duration::days(1));
        assert_eq!(second.ends_at, t0 + Duration::hours(1));
        assert_eq!(second.end_of(gen_of_first), Some(t0 + Duration::hours(1)));
        // ...takes its own when sooner, and after the first's end only its own counts.
        let at_once = TokenCutoff::after(Some(first), t1, t1);
        assert_eq!(at_once.ends_at, t1);
        let later = t0 + Duration::hours(2);
        let third = TokenCutoff::after(Some(first), later, later + Duration::days(1));
        assert_eq!(third.ends_at, later + Duration::days(1));

        // A clock that went back still makes a later generation.
        let back = TokenCutoff::after(Some(first), t0 - Duration::minutes(5), t0);
        assert_eq!(back.set_at, t0 + Duration::milliseconds(1));
        assert!(back.end_of(gen_of_first).is_some());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Production  ").unwrap(), "Production");
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"é".repeat(100)).is_ok());
        assert!(validate_name(&"é".repeat(101)).is_err());
        assert!(validate_name("a\u{0}b").is_err());
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(validate_metadata(Some(serde_json::json!({"plan": "pro"}))).is_ok());
        assert!(validate_metadata(Some(serde_json::json!([1]))).is_err());
        let big = "x".repeat(METADATA_MAX_BYTES);
        assert!(validate_metadata(Some(serde_json::json!({ "a": big }))).is_err());
    }

    #[test]
    fn allowlists_normalise_addresses_and_ranges() {
        let nets = parse_ip_allowlist(&[
            "203.0.113.7",
            "198.51.100.9/24",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ])
        .unwrap();
        let texts: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "203.0.113.7/32",
                "198.51.100.0/24",
                "2001:db8::1/128",
                "192.0.2.1/32"
            ]
        );
        assert!(parse_ip_allowlist(&["300.1.1.1"]).is_err());
        assert!(parse_ip_allowlist(&["10.0.0.0/33"]).is_err());
    }

    #[test]
    fn ipv4_mapped_addresses_match_their_ipv4_form() {
        let nets = parse_ip_allowlist(&["192.0.2.0/24"]).unwrap();
        assert!(ip_allowed(&nets, "::ffff:192.0.2.9".parse().unwrap()));
        assert!(!ip_allowed(&nets, "::ffff:192.0.3.9".parse().unwrap()));
        assert!(ip_allowed(&[], "2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn rotation_grace_never_outlives_the_credential() {
        let now = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(rotation_grace_end(now, Duration::ZERO, None).unwrap(), None);
        assert_eq!(
            rotation_grace_end(now, Duration::hours(1), None).unwrap(),
            Some(now + Duration::hours(1))
        );
        let expiry = now + Duration::minutes(10);
        assert_eq!(
            rotation_grace_end(now, Duration::hours(1), Some(expiry)).unwrap(),
            Some(expiry)
        );
        assert_eq!(
            rotation_grace_end(now, Duration::hours(1), Some(now - Duration::hours(1))).unwrap(),
            None
        );
        assert!(rotation_grace_end(now, Duration::days(7), None).is_ok());
        assert!(rotation_grace_end(now, Duration::days(7) + Duration::SECOND, None).is_err());
        assert!(rotation_grace_end(now, -Duration::SECOND, None).is_err());
    }

    #[test]
    fn validity_windows_must_be_ordered_and_in_the_future() {
        let now = datetime!(2026-01-01 00:00 UTC);
        assert!(validate_validity(None, Some(now + Duration::DAY), now).is_ok());
        assert!(validate_validity(None, Some(now), now).is_err());
        assert!(
            validate_validity(Some(now + Duration::DAY), Some(now + Duration::HOUR), now).is_err()
        );
    }

    #[test]
    fn times_outside_four_digit_years_in_utc_are_refused() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let last = datetime!(9999-12-31 23:59:59.999 UTC);
        assert!(validate_validity(None, Some(last), now).is_ok());
        // The same wall-clock time behind UTC is in year 10000 once in UTC.
        let after = datetime!(9999-12-31 23:59:59 -05:00);
        let error = validate_validity(None, Some(after), now).unwrap_err();
        assert_eq!(error.field, "expires_at");
        let before = datetime!(0000-01-01 00:00 +01:00);
        let error = validate_validity(Some(before), None, now).unwrap_err();
        assert_eq!(error.field, "not_before");
        assert!(validate_validity(Some(datetime!(0000-01-01 00:00 UTC)), None, now).is_ok());
    }

    proptest! {
        #[test]
        fn allowlist_matching_agrees_with_ipnet(addr in any::<u32>(), net in any::<u32>(), len in 0u8..=32) {
            let network = ipnet::Ipv4Net::new(net.into(), len).unwrap().trunc();
            let nets = parse_ip_allowlist(&[network.to_string()]).unwrap();
            let ip = std::net::Ipv4Addr::from(addr);
            prop_assert_eq!(ip_allowed(&nets, IpAddr::V4(ip)), network.contains(&ip));
            let mapped = IpAddr::V6(ip.to_ipv6_mapped());
            prop_assert_eq!(ip_allowed(&nets, mapped), network.contains(&ip));
        }
    }
}
