//! The original request behind `/v1/authorize`, as a proxy names it: its path normalised
//! the way an API routes it (`normalized_segments`) and matched against configured routes
//! (`route_scopes`).
//!
//! Input: the first line is the original method (the default `GET` when it is not one);
//! the rest is the original URI, read lossily as UTF-8, its query after the first `?`.

#![no_main]

use std::fmt::Write;
use std::sync::LazyLock;

use axum::http::Method;
use keyward_core::scope::ScopeCatalogue;
use keyward_server::original::{RouteScopes, RouteScopesConfig, normalized_segments, route_scopes};
use libfuzzer_sys::fuzz_target;

static ROUTES: LazyLock<Vec<RouteScopes>> = LazyLock::new(|| {
    let catalogue = ScopeCatalogue::default();
    [
        (None, "/v1/domains/*/dns/**", "dns:write"),
        (Some("delete"), "/v1/vps/*", "vps:delete"),
        (Some("GET"), "/v1/keys", "keys:read"),
        (None, "/v1/billing/**", "billing:*"),
    ]
    .into_iter()
    .map(|(method, path, scope)| {
        let config = RouteScopesConfig {
            method: method.map(str::to_owned),
            path: path.to_owned(),
            scopes: vec![scope.to_owned()],
        };
        RouteScopes::from_config(&config, &catalogue).expect("a valid route")
    })
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let (method, uri) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let method = std::str::from_utf8(method)
        .ok()
        .and_then(|text| text.trim().parse::<Method>().ok())
        .unwrap_or(Method::GET);
    let uri = String::from_utf8_lossy(uri);
    let path = uri.split_once('?').map_or(&*uri, |(path, _)| path);

    let segments = normalized_segments(path);
    for segment in &segments {
        assert!(!matches!(segment.as_str(), "" | "." | ".."), "{path:?}");
    }
    let scopes = route_scopes(&ROUTES, &method, path);

    // However a path is spelled, every byte percent-encoded, it is the same path: no
    // spelling reaches a route's scopes but the plain one.
    let mut encoded = String::new();
    for segment in &segments {
        encoded.push('/');
        for byte in segment.bytes() {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    assert_eq!(normalized_segments(&encoded), segments, "{path:?}");
    assert_eq!(route_scopes(&ROUTES, &method, &encoded), scopes, "{path:?}");
    // `..` never climbs above the root: what a path is does not depend on what was before
    // a `..` that reached it.
    if path.starts_with('/') {
        let climbed = format!("/x/..{path}");
        assert_eq!(normalized_segments(&climbed), segments, "{path:?}");
    }
});
