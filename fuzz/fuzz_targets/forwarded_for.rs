//! The client address of a request (`client_address`): the TCP peer, or behind trusted
//! proxies the rightmost `X-Forwarded-For` hop that is not one of them.
//!
//! Input: the first line is the peer's address (empty or unreadable for none); the second
//! the trusted proxies, addresses or CIDR ranges separated by commas or spaces; every
//! further line one `X-Forwarded-For` header value.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use keyward_core::credential::parse_ip_network;
use keyward_fuzz::{lines, text};
use keyward_gate::client_ip::{UNREADABLE_CLIENT, client_address};
use libfuzzer_sys::fuzz_target;

const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

fuzz_target!(|data: &[u8]| {
    let mut lines = lines(data);
    // As the gate takes it from the connection: IPv4-mapped IPv6 in its IPv4 form.
    let peer = lines
        .next()
        .and_then(text)
        .and_then(|text| text.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical());
    let trusted: Vec<IpNet> = lines
        .next()
        .and_then(text)
        .map(|text| {
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter_map(parse_ip_network)
                .collect()
        })
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(FORWARDED_FOR, value);
        }
    }

    let client = client_address(peer, &headers, &trusted);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let Some(peer) = peer else {
        assert_eq!(client, None, "no peer, no address");
        return;
    };
    if !is_trusted(&peer) {
        assert_eq!(
            client,
            Some(peer),
            "only a trusted proxy may name another address"
        );
        return;
    }
    assert_eq!(client, Some(expected(peer, &headers, &is_trusted)));
});

/// The rule, read directly: walking the hops from the nearest, the first one that is
/// unreadable or not trusted decides (an unreadable one stands for an unknown client);
/// when every hop is a trusted address, the farthest is the client, and with no hop the
/// peer is.
fn expected(peer: IpAddr, headers: &HeaderMap, is_trusted: &dyn Fn(&IpAddr) -> bool) -> IpAddr {
    let hops: Vec<Option<IpAddr>> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .map(|hop| {
            std::str::from_utf8(hop.trim_ascii())
                .ok()
                .and_then(read_hop)
        })
        .collect();
    let deciding = hops
        .iter()
        .rev()
        .find(|hop| hop.is_none_or(|ip| !is_trusted(&ip)));
    match (deciding, hops.first()) {
        (Some(None), _) => UNREADABLE_CLIENT,
        (Some(Some(ip)), _) => *ip,
        (None, Some(Some(farthest))) => *farthest,
        (None, Some(None)) => unreachable!("an unreadable hop always decides"),
        (None, None) => peer,
    }
}

/// A hop: an address, or an address with a port (`[v6]:port`, `v4:port`).
fn read_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))?;
    Some(ip.to_canonical())
}
