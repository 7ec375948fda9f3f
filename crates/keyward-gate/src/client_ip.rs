//! The client's address: the TCP peer, or — only when the peer is a configured trusted
//! proxy — the rightmost address in `X-Forwarded-For` that is not itself a trusted proxy.
//! `X-Forwarded-For` from anyone else is ignored, so a client cannot choose its address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The TCP peer of a request, when the server was started with connect info. Without it
/// no request has a client address, and what depends on one cannot protect anything:
/// brute-force throttling counts nothing, and allowlists and IP rules refuse every request
/// they apply to. The first such request logs an error saying so, once per process.
pub fn peer(parts: &Parts) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical());
    if peer.is_none() {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::error!(
                "a request came without its client's address: brute-force protection is off \
                 and IP allowlists and rules refuse every request they cover. Serve the \
                 application with `into_make_service_with_connect_info::<SocketAddr>()`"
            );
        });
    }
    peer
}

/// Stands for a client whose address a trusted proxy sent unreadable: no real client has
/// it, so it fails every allowlist, and all such requests share one brute-force count —
/// never the proxy's own, which would shut out everyone behind it.
pub const UNREADABLE_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// The client address of a request from `peer` with `headers`, given the trusted proxies.
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Hops in order, the nearest last; several headers count as one list, in order. The
    // raw bytes are split, so one unreadable hop cannot hide the others.
    let hops: Vec<&[u8]> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = std::str::from_utf8(hop).ok().and_then(parse_hop) else {
            return Some(UNREADABLE_CLIENT);
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// Reads one hop: an address, possibly `[v6]:port` or `v4:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|addr| addr.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a test's subscriber was given to write.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_request_without_a_peer_is_said_loudly_once() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let (without, _) = axum::http::Request::new(()).into_parts();
        let (mut with, _) = axum::http::Request::new(()).into_parts();
        with.extensions
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 5000))));
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(peer(&with), Some(IpAddr::from([192, 0, 2, 1])));
            assert_eq!(peer(&without), None);
            assert_eq!(peer(&without), None);
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("ERROR").count(), 1, "{text}");
        assert!(text.contains("brute-force protection is off"), "{text}");
        assert!(
            text.contains("into_make_service_with_connect_info"),
            "{text}"
        );
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(FORWARDED_FOR, v.parse().unwrap());
        }
        map
    }

    fn nets(texts: &[&str]) -> Vec<IpNet> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let forged = headers(&["203.0.113.9"]);
        assert_eq!(
            client_address(ip("198.51.100.1"), &forged, &nets(&["10.0.0.0/8"])),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(ip("198.51.100.1"), &forged, &[]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn an_unreadable_hop_is_an_unknown_client_never_the_proxy() {
        let trusted = nets(&["10.0.0.0/8"]);
        let unknown = Some(UNREADABLE_CLIENT);
        assert_eq!(
            client_address(
                ip("10.0.0.2"),
                &headers(&["198.51.100.7, garbage"]),
                &trusted
            ),
            unknown
        );
        let mut raw = HeaderMap::new();
        raw.append(
            FORWARDED_FOR,
            axum::http::HeaderValue::from_bytes(b"\xe9, 10.0.0.9").unwrap(),
        );
        assert_eq!(client_address(ip("10.0.0.2"), &raw, &trusted), unknown);
        let mut mixed = HeaderMap::new();
        mixed.append(
            FORWARDED_FOR,
            axum::http::HeaderValue::from_bytes(b"\xe9, 198.51.100.7").unwrap(),
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &mixed, &trusted),
            ip("198.51.100.7"),
            "the readable rightmost hop still counts"
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_rightmost_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        let chain = headers(&["203.0.113.9, 198.51.100.7, 10.1.1.1"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &chain, &trusted),
            ip("198.51.100.7"),
            "the leftmost entry is the client's claim and is not believed"
        );
        let split = headers(&["203.0.113.9", "198.51.100.7"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &split, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers(&[]), &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers(&["10.0.0.3, 10.0.0.4"]), &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers(&["[2001:db8::1]:4711"]), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers(&["::ffff:192.0.2.1"]), &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_address(
                ip("10.0.0.2"),
                &headers(&["garbage, 198.51.100.7"]),
                &trusted
            ),
            ip("198.51.100.7")
        );
    }
}
