//! Organization IP access rules: allow or deny CIDR ranges.
//!
//! Evaluation: among the rules whose range contains the address, the most specific (longest
//! prefix) wins, and deny wins a tie. When no rule matches, the address passes only if the
//! organization has no allow rule at all. IPv4-mapped IPv6 addresses are matched in their
//! IPv4 form.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;
use time::OffsetDateTime;

use crate::credential::{ValidationError, parse_ip_network};
use crate::typeid::{IpRuleId, OrganizationId};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Addresses in the range may use the organization's credentials.
    Allow,
    /// Addresses in the range may not.
    Deny,
}

impl RuleKind {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
        }
    }

    /// Reads `allow` or `deny`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "allow" => Some(RuleKind::Allow),
            "deny" => Some(RuleKind::Deny),
            _ => None,
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRule {
    /// `ip_rule_…`.
    pub id: IpRuleId,
    /// The organization it guards.
    pub organization_id: OrganizationId,
    /// The range; a single address is stored as /32 or /128.
    pub network: IpNet,
    /// Allow or deny.
    pub kind: RuleKind,
    /// A note for people.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Who created it.
    pub created_by: String,
    /// When it last decided a request (batched; may lag a few seconds).
    pub last_matched_at: Option<OffsetDateTime>,
    /// Incremented by every change; updates check it so no concurrent change is lost.
    pub version: i64,
}

/// The bounds a deployment puts on rules: how many per organization and how wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePolicy {
    /// Most rules per organization (five by default).
    pub max_rules: usize,
    /// Accepted IPv4 prefix lengths (/25 to /32 by default: a rule names at most 128
    /// addresses).
    pub ipv4_prefixes: RangeInclusive<u8>,
    /// Accepted IPv6 prefix lengths.
    pub ipv6_prefixes: RangeInclusive<u8>,
}

impl Default for RulePolicy {
    fn default() -> Self {
        Self {
            max_rules: 5,
            ipv4_prefixes: 25..=32,
            ipv6_prefixes: 48..=128,
        }
    }
}

impl RulePolicy {
    /// The accepted IPv4 prefix lengths as people read them: `/25–/32`.
    pub fn ipv4_range(&self) -> String {
        format!(
            "/{}–/{}",
            self.ipv4_prefixes.start(),
            self.ipv4_prefixes.end()
        )
    }

    /// The accepted IPv6 prefix lengths as people read them: `/48–/128`.
    pub fn ipv6_range(&self) -> String {
        format!(
            "/{}–/{}",
            self.ipv6_prefixes.start(),
            self.ipv6_prefixes.end()
        )
    }

    /// Parses and bounds a rule's range: `192.0.2.7` becomes `192.0.2.7/32`.
    pub fn parse_network(&self, text: &str) -> Result<IpNet, ValidationError> {
        let net = parse_ip_network(text.trim()).ok_or_else(|| {
            ValidationError::new(
                "ip_network",
                format!("`{text}` is not an IP address or CIDR range"),
            )
        })?;
        let (range, family) = match net {
            IpNet::V4(_) => (&self.ipv4_prefixes, "IPv4"),
            IpNet::V6(_) => (&self.ipv6_prefixes, "IPv6"),
        };
        if !range.contains(&net.prefix_len()) {
            return Err(ValidationError::new(
                "ip_network",
                format!(
                    "{family} prefixes from /{} to /{} are supported",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(net)
    }
}

/// What the rules say about an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleDecision {
    /// Allowed, by this rule or (none) because nothing restricts it.
    Allowed(Option<IpRuleId>),
    /// Denied, by this deny rule or (none) because allow rules exist and none matched.
    Denied(Option<IpRuleId>),
}

impl RuleDecision {
    /// Whether the address may pass.
    pub fn allows(&self) -> bool {
        matches!(self, RuleDecision::Allowed(_))
    }

    /// The rule that decided, if one did.
    pub fn rule(&self) -> Option<&IpRuleId> {
        match self {
            RuleDecision::Allowed(rule) | RuleDecision::Denied(rule) => rule.as_ref(),
        }
    }
}

/// Evaluates an organization's rules for an address.
pub fn evaluate(rules: &[IpRule], ip: IpAddr) -> RuleDecision {
    let ip = ip.to_canonical();
    let best = rules
        .iter()
        .filter(|rule| rule.network.contains(&ip))
        .max_by_key(|rule| (rule.network.prefix_len(), rule.kind == RuleKind::Deny));
    match best {
        Some(rule) if rule.kind == RuleKind::Deny => RuleDecision::Denied(Some(rule.id.clone())),
        Some(rule) => RuleDecision::Allowed(Some(rule.id.clone())),
        None if rules.iter().any(|rule| rule.kind == RuleKind::Allow) => RuleDecision::Denied(None),
        None => RuleDecision::Allowed(None),
    }
}

/// Whether replacing `before` with `after` would shut out `ip`, which passes now.
pub fn would_lock_out(before: &[IpRule], after: &[IpRule], ip: IpAddr) -> bool {
    evaluate(before, ip).allows() && !evaluate(after, ip).allows()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(net: &str, kind: RuleKind) -> IpRule {
        IpRule {
            id: IpRuleId::generate(),
            organization_id: OrganizationId::from_uuid(uuid::Uuid::nil()),
            network: RulePolicy {
                max_rules: 99,
                ipv4_prefixes: 0..=32,
                ipv6_prefixes: 0..=128,
            }
            .parse_network(net)
            .unwrap(),
            kind,
            description: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            created_by: "test".into(),
            last_matched_at: None,
            version: 1,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn no_rules_allow_everything() {
        assert_eq!(
            evaluate(&[], ip("203.0.113.9")),
            RuleDecision::Allowed(None)
        );
    }

    #[test]
    fn allow_rules_make_everything_else_denied() {
        let rules = [rule("192.0.2.0/25", RuleKind::Allow)];
        assert!(evaluate(&rules, ip("192.0.2.5")).allows());
        assert_eq!(
            evaluate(&rules, ip("192.0.2.200")),
            RuleDecision::Denied(None)
        );
        assert_eq!(
            evaluate(&rules, ip("2001:db8::1")),
            RuleDecision::Denied(None)
        );
    }

    #[test]
    fn deny_rules_alone_deny_only_their_range() {
        let rules = [rule("198.51.100.0/26", RuleKind::Deny)];
        assert!(!evaluate(&rules, ip("198.51.100.7")).allows());
        assert!(evaluate(&rules, ip("198.51.100.70")).allows());
    }

    #[test]
    fn the_most_specific_rule_wins_and_deny_wins_a_tie() {
        let allow_wide = rule("192.0.2.0/25", RuleKind::Allow);
        let deny_narrow = rule("192.0.2.8/29", RuleKind::Deny);
        let allow_host = rule("192.0.2.9/32", RuleKind::Allow);
        let rules = [allow_wide.clone(), deny_narrow.clone(), allow_host.clone()];
        assert_eq!(
            evaluate(&rules, ip("192.0.2.9")),
            RuleDecision::Allowed(Some(allow_host.id.clone()))
        );
        assert_eq!(
            evaluate(&rules, ip("192.0.2.10")),
            RuleDecision::Denied(Some(deny_narrow.id.clone()))
        );
        assert_eq!(
            evaluate(&rules, ip("192.0.2.100")),
            RuleDecision::Allowed(Some(allow_wide.id.clone()))
        );
        let tie = [
            rule("192.0.2.0/30", RuleKind::Allow),
            rule("192.0.2.0/30", RuleKind::Deny),
        ];
        assert!(!evaluate(&tie, ip("192.0.2.1")).allows());
    }

    #[test]
    fn mapped_ipv6_addresses_match_ipv4_rules() {
        let rules = [rule("192.0.2.0/25", RuleKind::Allow)];
        assert!(evaluate(&rules, ip("::ffff:192.0.2.5")).allows());
        assert!(!evaluate(&rules, ip("::ffff:192.0.2.200")).allows());
    }

    #[test]
    fn the_default_policy_bounds_ipv4_prefixes_to_25_through_32() {
        let policy = RulePolicy::default();
        assert_eq!(
            policy.parse_network("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            policy.parse_network("192.0.2.130/25").unwrap().to_string(),
            "192.0.2.128/25"
        );
        assert!(policy.parse_network("192.0.2.0/24").is_err());
        assert!(policy.parse_network("2001:db8::/48").is_ok());
        assert!(policy.parse_network("2001:db8::/32").is_err());
        assert!(policy.parse_network("banana").is_err());
    }

    #[test]
    fn a_change_that_shuts_out_the_caller_is_detected() {
        let me = ip("192.0.2.5");
        let before: Vec<IpRule> = vec![];
        assert!(would_lock_out(
            &before,
            &[rule("198.51.100.0/25", RuleKind::Allow)],
            me
        ));
        assert!(would_lock_out(
            &before,
            &[rule("192.0.2.0/29", RuleKind::Deny)],
            me
        ));
        assert!(!would_lock_out(
            &before,
            &[rule("192.0.2.0/25", RuleKind::Allow)],
            me
        ));
        let allowed = vec![rule("192.0.2.0/25", RuleKind::Allow)];
        assert!(
            !would_lock_out(&allowed, &[], ip("10.0.0.1")),
            "an address already shut out is not locked out by a change"
        );
    }

    proptest! {
        /// Against `ipnet` as the oracle: the winning rule is a longest matching prefix, and
        /// the decision follows the stated rules.
        #[test]
        fn evaluation_agrees_with_a_direct_reading(
            nets in prop::collection::vec((any::<u32>(), 0u8..=32, any::<bool>()), 0..6),
            addr in any::<u32>(),
            mapped in any::<bool>(),
        ) {
            let rules: Vec<IpRule> = nets
                .iter()
                .map(|(net, len, deny)| {
                    let text = ipnet::Ipv4Net::new((*net).into(), *len).unwrap().trunc().to_string();
                    rule(&text, if *deny { RuleKind::Deny } else { RuleKind::Allow })
                })
                .collect();
            let v4 = std::net::Ipv4Addr::from(addr);
            let address = if mapped { IpAddr::V6(v4.to_ipv6_mapped()) } else { IpAddr::V4(v4) };
            let matching: Vec<&IpRule> = rules.iter().filter(|r| match r.network {
                IpNet::V4(n) => n.contains(&v4),
                IpNet::V6(_) => false,
            }).collect();
            let expected = match matching.iter().map(|r| r.network.prefix_len()).max() {
                Some(longest) => !matching.iter().any(|r| r.network.prefix_len() == longest && r.kind == RuleKind::Deny),
                None => !rules.iter().any(|r| r.kind == RuleKind::Allow),
            };
            prop_assert_eq!(evaluate(&rules, address).allows(), expected);
        }
    }
}
