//! Webhook endpoints: which events an endpoint hears, where it may point, and the
//! Standard Webhooks secret format.
//!
//! An endpoint's target is refused when it could reach inside the deployment's own
//! network: a loopback, private, shared, link-local (cloud metadata services live there),
//! multicast or otherwise unroutable address, unless the deployment allows such targets.
//! The address rule here is applied twice: to the URL when it is set, and to every
//! address a host name resolves to when a message is sent, so a name that later resolves
//! inward is refused too.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use time::OffsetDateTime;
use url::Url;

use crate::typeid::{OrganizationId, WebhookId};
use crate::validation::ValidationError;

/// Every event type an endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 12] = [
    "key.created",
    "key.updated",
    "key.disabled",
    "key.enabled",
    "key.rotated",
    "key.revoked",
    "key.expiring",
    "key.expired",
    "key.exposed",
    "ip_rule.created",
    "ip_rule.deleted",
    "ip_rule.blocked",
];

/// The event `POST /v1/webhooks/{id}/test` sends, whatever the endpoint subscribed to.
pub const TEST_EVENT: &str = "webhook.test";

/// Longest target URL accepted.
pub const URL_MAX_CHARS: usize = 2_048;

/// What an endpoint hears: every event type, or the ones listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// `["*"]`: every event type, those added later included.
    All,
    /// These event types (at least one).
    Types(BTreeSet<&'static str>),
}

impl Subscription {
    /// Reads a list of event types, or `["*"]`. An unknown type, a repeat, `*` beside
    /// another type, or an empty list is refused.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, ValidationError> {
        if list.is_empty() {
            return Err(ValidationError::new(
                "events",
                "must name at least one event type, or be [\"*\"]",
            ));
        }
        if list.iter().any(|e| e.as_ref() == "*") {
            return if list.len() == 1 {
                Ok(Subscription::All)
            } else {
                Err(ValidationError::new(
                    "events",
                    "\"*\" already names every event type and stands alone",
                ))
            };
        }
        let mut types = BTreeSet::new();
        for name in list {
            let name = name.as_ref();
            let known = EVENT_TYPES
                .iter()
                .find(|t| **t == name)
                .ok_or_else(|| ValidationError::new("events", "names an unknown event type"))?;
            if !types.insert(*known) {
                return Err(ValidationError::new("events", "names an event type twice"));
            }
        }
        Ok(Subscription::Types(types))
    }

    /// Whether the endpoint hears `event_type`.
    pub fn includes(&self, event_type: &str) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Types(types) => types.contains(event_type),
        }
    }

    /// The list, as the API shows it.
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            Subscription::All => vec!["*".to_owned()],
            Subscription::Types(types) => types.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    /// As stored: `*`, or the types between commas with a comma at each end
    /// (`,key.created,key.revoked,`), so that a store finds subscribers with one `LIKE`.
    pub fn stored(&self) -> String {
        match self {
            Subscription::All => "*".to_owned(),
            Subscription::Types(types) => {
                let mut text = String::from(",");
                for t in types {
                    text.push_str(t);
                    text.push(',');
                }
                text
            }
        }
    }

    /// Reads what [`Subscription::stored`] wrote; types no longer known are dropped.
    pub fn from_stored(text: &str) -> Self {
        if text == "*" {
            return Subscription::All;
        }
        Subscription::Types(
            text.split(',')
                .filter_map(|name| EVENT_TYPES.iter().find(|t| **t == name).copied())
                .collect(),
        )
    }
}

/// One webhook endpoint of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `webhook_…`.
    pub id: WebhookId,
    /// The organization whose events it hears.
    pub organization_id: OrganizationId,
    /// Where messages are sent.
    pub url: String,
    /// The event types it hears.
    pub events: Subscription,
    /// A note for people.
    pub description: Option<String>,
    /// Whether messages are sent to it; a disabled endpoint's messages wait.
    pub enabled: bool,
    /// Why it was disabled, when Keyward disabled it (`gone`, `failing`).
    pub disabled_reason: Option<String>,
    /// The signing secret, sealed under the deployment's master key.
    pub sealed_secret: String,
    /// The secret before the last rotation, sealed, and until when it still signs.
    pub previous_secret: Option<(String, OffsetDateTime)>,
    /// Since when every attempt to reach it has failed; none while it answers.
    pub failing_since: Option<OffsetDateTime>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Who created it.
    pub created_by: String,
    /// Its last change.
    pub updated_at: OffsetDateTime,
    /// Incremented by every change; updates check it so no concurrent change is lost.
    pub version: i64,
}

/// Which targets a deployment allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// Allow loopback, private and other inward addresses (tests and closed networks).
    pub allow_private: bool,
    /// Allow `http://` targets besides `https://`.
    pub allow_http: bool,
}

impl TargetPolicy {
    /// Checks a target URL: `https` (or `http` where allowed), a host, no user name or
    /// password (a secret kept in plain text), no fragment, at most [`URL_MAX_CHARS`], and
    /// no literal address the policy refuses. Returns the URL as it will be stored.
    pub fn check_url(&self, text: &str) -> Result<Url, ValidationError> {
        let bad = |why: &'static str| ValidationError::new("url", why);
        if text.chars().count() > URL_MAX_CHARS {
            return Err(bad("is longer than 2048 characters"));
        }
        let url = Url::parse(text).map_err(|_| bad("is not an absolute URL"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(bad("must use https")),
            _ => return Err(bad("must be an https URL")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not hold a user name or password"));
        }
        if url.fragment().is_some() {
            return Err(bad("must not have a fragment"));
        }
        match url.host() {
            None => return Err(bad("must name a host")),
            Some(url::Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip))?,
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                if !self.allow_private
                    && (name.eq_ignore_ascii_case("localhost")
                        || name.to_ascii_lowercase().ends_with(".localhost"))
                {
                    return Err(bad("points inside this deployment's network"));
                }
            }
        }
        Ok(url)
    }

    /// Refuses an address inside the deployment's network unless the policy allows it.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), ValidationError> {
        if !self.allow_private && is_inward(ip) {
            return Err(ValidationError::new(
                "url",
                "points inside this deployment's network",
            ));
        }
        Ok(())
    }
}

/// Whether an address is not a public unicast one: loopback, private, shared (CGNAT),
/// link-local (with the cloud metadata services), unspecified, broadcast, multicast,
/// documentation, benchmarking or reserved, for IPv4 and IPv6 alike; IPv4 inside IPv6
/// (mapped, compatible, NAT64) is judged as IPv4.
pub fn is_inward(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => inward_v4(v4),
        IpAddr::V6(v6) => inward_v6(v6),
    }
}

fn inward_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0 && c == 0) // protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn inward_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return inward_v4(v4);
    }
    // NAT64 (64:ff9b::/96, and the local-use 64:ff9b:1::/48) and IPv4-translated
    // (::ffff:0:0:0/96) addresses reach the IPv4 address in their last 32 bits; a
    // local-use NAT64 prefix leads to the deployment's own network whatever follows.
    if segments[..3] == [0x64, 0xff9b, 1] {
        return true;
    }
    // 6to4 (2002::/16) carries an IPv4 address in its second and third groups.
    if segments[0] == 0x2002 {
        return inward_v4(Ipv4Addr::from(
            (u32::from(segments[1]) << 16) | u32::from(segments[2]),
        ));
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
        let [.., hi, lo] = segments;
        return inward_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || segments[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible and reserved
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[0] == 0x0100 && segments[1..4] == [0, 0, 0] // discard-only
}

/// The prefix of a Standard Webhooks signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a signing secret.
pub const SECRET_BYTES: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_read_checked_and_stored() {
        assert_eq!(Subscription::parse(&["*"]).unwrap(), Subscription::All);
        let some = Subscription::parse(&["key.revoked", "ip_rule.blocked"]).unwrap();
        assert!(some.includes("key.revoked") && !some.includes("key.created"));
        assert_eq!(some.stored(), ",ip_rule.blocked,key.revoked,");
        assert_eq!(Subscription::from_stored(&some.stored()), some);
        assert_eq!(Subscription::from_stored("*"), Subscription::All);
        for bad in [
            &[][..],
            &["*", "key.created"][..],
            &["key.made"][..],
            &["key.created", "key.created"][..],
            &["webhook.test"][..],
        ] {
            assert!(Subscription::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn inward_addresses_are_refused_and_public_ones_pass() {
        for inward in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "64:ff9b:1::5db8:d822",
            "::ffff:0:a00:1",
            "2002:7f00:1::1",
            "2001:db8::1",
        ] {
            assert!(is_inward(inward.parse().unwrap()), "{inward}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "2002:5db8:d822::1",
            "64:ff9b::5db8:d822",
        ] {
            assert!(!is_inward(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn target_urls_are_checked_by_the_policy() {
        let strict = TargetPolicy::default();
        assert!(
            strict
                .check_url("https://hooks.example.com/keyward")
                .is_ok()
        );
        for refused in [
            "http://hooks.example.com/",
            "https://127.0.0.1/",
            "https://[::1]:8443/",
            "https://localhost/",
            "https://api.localhost./",
            "https://169.254.169.254/latest/meta-data",
            "https://user:pass@hooks.example.com/",
            "https://hooks.example.com/#x",
            "ftp://hooks.example.com/",
            "hooks.example.com/path",
        ] {
            assert!(strict.check_url(refused).is_err(), "{refused}");
        }
        let open = TargetPolicy {
            allow_private: true,
            allow_http: true,
        };
        assert!(open.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(open.check_url("https://user@127.0.0.1/").is_err());
    }
}
