//! Addresses and CIDR ranges as clients send them: a credential's IP allowlist
//! (`parse_ip_allowlist`, `parse_ip_network`) and an organization's IP rules
//! (`RulePolicy::parse_network`), and how a parsed range then decides (`ip_allowed`,
//! `evaluate`).
//!
//! Input: any bytes, read lossily as UTF-8; as one entry, and as an allowlist split on
//! commas and white space, as the dashboard splits it.

#![no_main]

use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;
use keyward_core::credential::{ip_allowed, parse_ip_allowlist, parse_ip_network};
use keyward_core::ip_rule::{IpRule, RuleKind, RulePolicy, evaluate};
use keyward_core::typeid::{IpRuleId, OrganizationId};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_ip_network(&text);
    if let Some(net) = parsed {
        check_network(net);
    }
    check_policies(&text);
    let entries: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|entry| !entry.is_empty())
        .collect();
    check_allowlist(&entries);
});

/// A parsed range is normalised (host bits cleared, never IPv4-mapped IPv6), prints as
/// text that parses back to it, and contains its own first and last address, whichever
/// way a rule or an allowlist reads it.
///
/// Rules and allowlists read an IPv4-mapped address as IPv4, so an IPv6 range over
/// `::ffff:0:0/96` never matches one: such an address is left out of the checks.
fn check_network(net: IpNet) {
    assert_eq!(net, net.trunc());
    assert_eq!(parse_ip_network(&net.to_string()), Some(net), "{net}");
    if let IpNet::V6(v6) = net {
        assert!(v6.addr().to_ipv4_mapped().is_none(), "{net}");
    }
    for ip in [net.network(), net.broadcast()] {
        assert!(net.contains(&ip), "{net} {ip}");
        if ip.to_canonical() != ip {
            continue;
        }
        assert!(ip_allowed(&[net], ip), "{net} {ip}");
        let mut addresses = vec![ip];
        if let IpAddr::V4(v4) = ip {
            addresses.push(IpAddr::V6(v4.to_ipv6_mapped()));
        }
        for address in addresses {
            assert!(evaluate(&[rule(net, RuleKind::Allow)], address).allows());
            assert!(!evaluate(&[rule(net, RuleKind::Deny)], address).allows());
        }
    }
}

/// A policy accepts what the parser reads (trimmed) and nothing else, within its bounds
/// on prefix lengths.
fn check_policies(text: &str) {
    let any = RulePolicy {
        max_rules: 5,
        ipv4_prefixes: 0..=32,
        ipv6_prefixes: 0..=128,
    };
    let trimmed = parse_ip_network(text.trim());
    assert_eq!(any.parse_network(text).ok(), trimmed);
    let default = RulePolicy::default();
    if let Ok(net) = default.parse_network(text) {
        assert_eq!(Some(net), trimmed);
        let bounds: &RangeInclusive<u8> = match net {
            IpNet::V4(_) => &default.ipv4_prefixes,
            IpNet::V6(_) => &default.ipv6_prefixes,
        };
        assert!(bounds.contains(&net.prefix_len()), "{net}");
    }
}

/// An allowlist is its entries parsed, in order, without duplicates; one bad entry or too
/// many refuse it all.
fn check_allowlist(entries: &[&str]) {
    let Ok(nets) = parse_ip_allowlist(entries) else {
        return;
    };
    let mut expected: Vec<IpNet> = Vec::new();
    for entry in entries {
        let net = parse_ip_network(entry.trim()).expect("an accepted entry parses");
        if !expected.contains(&net) {
            expected.push(net);
        }
    }
    assert_eq!(nets, expected);
}

/// A rule of `kind` over `net`.
fn rule(net: IpNet, kind: RuleKind) -> IpRule {
    IpRule {
        id: IpRuleId::from_uuid(Default::default()),
        organization_id: OrganizationId::from_uuid(Default::default()),
        network: net,
        kind,
        description: None,
        created_at: OffsetDateTime::UNIX_EPOCH,
        created_by: "fuzz".to_owned(),
        last_matched_at: None,
        version: 1,
    }
}
