//! `GET /v1/authorize`, as a reverse proxy calls it.

use keyward_core::credential::Environment;
use keyward_core::secret::{KeyPrefix, PlainSecret, SecretKind};
use keyward_gate::GateConfig;
use keyward_server::ServerConfig;
use keyward_server::original::{AuthorizeConfig, RouteScopes, RouteScopesConfig, Unmatched};
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn a_good_key_gets_200_with_the_identity_headers() {
    let app = TestApp::new().await;
    let created = app
        .create_key(json!({"name": "proxied", "permissions": ["dns:*"], "owner_id": "cust-9"}))
        .await;
    for transport in ["x-api-key", "authorization"] {
        let value = if transport == "authorization" {
            format!("Bearer {}", created["key"].as_str().unwrap())
        } else {
            created["key"].as_str().unwrap().to_owned()
        };
        let response = app
            .get("/v1/authorize")
            .header(transport, &value)
            .header("x-original-uri", "/v1/dns/records")
            .send()
            .await;
        assert_eq!(response.status, 200, "{}", response.text);
        assert_eq!(
            response.header("x-keyward-key-id"),
            created["key_id"].as_str()
        );
        assert_eq!(
            response.header("x-keyward-organization"),
            Some(app.organization_id.as_str())
        );
        assert_eq!(response.header("x-keyward-environment"), Some("live"));
        assert_eq!(response.header("x-keyward-scopes"), Some("dns:*"));
        assert_eq!(response.header("x-keyward-owner-id"), Some("cust-9"));
    }
}

#[tokio::test]
async fn each_refusal_has_its_status_code_and_challenge() {
    let app = TestApp::new().await;
    let plain = app
        .create_key(json!({"name": "plain", "permissions": ["dns:read"]}))
        .await;
    let revoked = app.create_key(json!({"name": "revoked"})).await;
    app.act_on_key(&revoked, "revoke").await;
    let fenced = app
        .create_key(json!({"name": "fenced", "ip_allowlist": ["192.0.2.0/24"]}))
        .await;
    let disabled = app.create_key(json!({"name": "disabled"})).await;
    app.act_on_key(&disabled, "disable").await;
    let later = app
        .create_key(json!({"name": "later", "not_before": "2026-06-01T13:00:00Z"}))
        .await;
    let unknown =
        PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(Environment::Live));
    let invalid_token = "Bearer realm=\"keyward\", error=\"invalid_token\"";

    let missing = app.get("/v1/authorize").send().await;
    assert_eq!(
        missing.assert_problem(401, "unauthenticated")["outcome"],
        "MISSING"
    );
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"keyward\"")
    );
    for (key, outcome) in [
        ("kw_live_x", "MALFORMED"),
        (unknown.expose(), "NOT_FOUND"),
        (revoked["key"].as_str().unwrap(), "REVOKED"),
        (disabled["key"].as_str().unwrap(), "DISABLED"),
        (later["key"].as_str().unwrap(), "NOT_YET_VALID"),
    ] {
        let response = app.get("/v1/authorize").key(key).send().await;
        assert_eq!(
            response.assert_problem(401, "unauthenticated")["outcome"],
            outcome
        );
        assert_eq!(response.header("www-authenticate"), Some(invalid_token));
    }
    let denied = app
        .get("/v1/authorize")
        .key(fenced["key"].as_str().unwrap())
        .peer("198.51.100.4")
        .send()
        .await;
    assert_eq!(
        denied.assert_problem(403, "ip_denied")["outcome"],
        "IP_DENIED"
    );
    let scoped = app
        .get("/v1/authorize")
        .key(plain["key"].as_str().unwrap())
        .header("x-keyward-required-scopes", "dns:read dns:write")
        .send()
        .await;
    assert_eq!(
        scoped.assert_problem(403, "insufficient_scope")["outcome"],
        "INSUFFICIENT_SCOPE"
    );
    assert_eq!(
        scoped.header("www-authenticate"),
        Some(
            "Bearer realm=\"keyward\", error=\"insufficient_scope\", scope=\"dns:read dns:write\""
        )
    );
    let env = app
        .get("/v1/authorize")
        .key(plain["key"].as_str().unwrap())
        .header("x-keyward-required-environment", "test")
        .send()
        .await;
    assert_eq!(
        env.assert_problem(403, "environment_mismatch")["outcome"],
        "ENVIRONMENT_MISMATCH"
    );
    let both = app
        .get("/v1/authorize")
        .key(plain["key"].as_str().unwrap())
        .header("authorization", "Bearer x")
        .send()
        .await;
    both.assert_problem(400, "multiple_credentials");
    app.get("/v1/authorize")
        .key(plain["key"].as_str().unwrap())
        .header("x-keyward-required-scopes", "dns:fly")
        .send()
        .await
        .assert_problem(400, "invalid_required_scopes");

    let expiring = app
        .create_key(json!({"name": "expiring", "expires_at": "2026-06-01T12:30:00Z"}))
        .await;
    app.clock.advance(time::Duration::minutes(30));
    let expired = app
        .get("/v1/authorize")
        .key(expiring["key"].as_str().unwrap())
        .send()
        .await;
    assert_eq!(
        expired.assert_problem(401, "unauthenticated")["outcome"],
        "EXPIRED"
    );
    assert_eq!(expired.header("www-authenticate"), Some(invalid_token));
}

#[tokio::test]
async fn repeated_failures_from_one_address_get_429_with_retry_after() {
    let app = TestApp::new().await;
    let good = app.create_key(json!({"name": "good"})).await;
    for _ in 0..20 {
        app.get("/v1/authorize")
            .key("kw_live_guessing")
            .peer("203.0.113.99")
            .send()
            .await
            .assert_problem(401, "unauthenticated");
    }
    let blocked = app
        .get("/v1/authorize")
        .key(good["key"].as_str().unwrap())
        .peer("203.0.113.99")
        .send()
        .await;
    assert_eq!(
        blocked.assert_problem(429, "too_many_failures")["outcome"],
        "RATE_LIMITED"
    );
    assert_eq!(blocked.header("retry-after"), Some("10"));
    let elsewhere = app
        .get("/v1/authorize")
        .key(good["key"].as_str().unwrap())
        .peer("198.51.100.1")
        .send()
        .await;
    assert_eq!(
        elsewhere.status, 200,
        "the holder of a valid key elsewhere is unaffected"
    );
    app.clock.advance(time::Duration::seconds(10));
    assert_eq!(
        app.get("/v1/authorize")
            .key(good["key"].as_str().unwrap())
            .peer("203.0.113.99")
            .send()
            .await
            .status,
        200
    );
}

fn route(method: &str, path: &str, scopes: &[&str]) -> RouteScopes {
    let config = RouteScopesConfig {
        method: Some(method.into()),
        path: path.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    };
    RouteScopes::from_config(&config, &keyward_core::scope::ScopeCatalogue::default()).unwrap()
}

#[tokio::test]
async fn configured_routes_require_their_scopes() {
    let config = ServerConfig {
        authorize: AuthorizeConfig {
            routes: vec![
                route("GET", "/v1/domains/**", &["domains:read"]),
                route("DELETE", "/v1/domains/*", &["domains:delete"]),
            ],
            ..Default::default()
        },
        ..Default::default()
    };
    let app = TestApp::with_config(config).await;
    let reader = app
        .create_key(json!({"name": "reader", "permissions": ["domains:read"]}))
        .await;
    let key = reader["key"].as_str().unwrap();
    let original = |uri: &str, method: &str| {
        app.get("/v1/authorize")
            .key(key)
            .header("x-original-uri", uri)
            .header("x-original-method", method)
            .send()
    };
    assert_eq!(
        original("/v1/domains/example.com?verbose=1", "GET")
            .await
            .status,
        200
    );
    original("/v1/domains/example.com", "DELETE")
        .await
        .assert_problem(403, "insufficient_scope");
    // Spellings an API routes the same way match the same route.
    for spelled in [
        "/v1/domains/example.com/",
        "/v1//domains/example.com",
        "/v1/%64omains/example.com",
        "/v1/x/../domains/example.com",
    ] {
        original(spelled, "DELETE")
            .await
            .assert_problem(403, "insufficient_scope");
    }
    // A request no route matches is refused, and so is one whose path is not given.
    original("/v1/vps/7", "DELETE")
        .await
        .assert_problem(403, "route_not_allowed");
    app.get("/v1/authorize")
        .key(key)
        .send()
        .await
        .assert_problem(403, "route_not_allowed");
    // An unreadable original URI is a 400, never a fall-back to no path.
    let unreadable = app
        .get("/v1/authorize")
        .key(key)
        .header_bytes("x-original-uri", b"/v1/vps/7?\xe9")
        .send()
        .await;
    unreadable.assert_problem(400, "unreadable_original_request");
    // Only the configured headers are read: Traefik's cannot stand in for nginx's.
    let other = app
        .get("/v1/authorize")
        .key(key)
        .header("x-forwarded-uri", "/v1/domains/example.com")
        .header("x-forwarded-method", "GET")
        .send()
        .await;
    other.assert_problem(403, "route_not_allowed");
    // Envoy appends the original path; it wins over any header.
    let envoy = app
        .call(axum::http::Method::DELETE, "/v1/authorize/v1/domains/x")
        .key(key)
        .header("x-original-uri", "/v1/domains/x")
        .header("x-original-method", "GET")
        .send()
        .await;
    envoy.assert_problem(403, "insufficient_scope");
    let envoy_get = app
        .get("/v1/authorize/v1/domains/x?a=1")
        .key(key)
        .send()
        .await;
    assert_eq!(envoy_get.status, 200, "{}", envoy_get.text);
}

#[tokio::test]
async fn traefik_headers_are_read_when_configured_and_unmatched_may_be_allowed() {
    let config = ServerConfig {
        authorize: AuthorizeConfig {
            uri_header: axum::http::HeaderName::from_static("x-forwarded-uri"),
            method_header: axum::http::HeaderName::from_static("x-forwarded-method"),
            routes: vec![route("DELETE", "/v1/domains/*", &["domains:delete"])],
            unmatched: Unmatched::Allow,
        },
        ..Default::default()
    };
    let app = TestApp::with_config(config).await;
    let reader = app
        .create_key(json!({"name": "reader", "permissions": ["domains:read"]}))
        .await;
    let key = reader["key"].as_str().unwrap();
    let forwarded = |uri: &str, method: &str| {
        app.get("/v1/authorize")
            .key(key)
            .header("x-forwarded-uri", uri)
            .header("x-forwarded-method", method)
            .header("x-original-uri", "/public")
            .send()
    };
    forwarded("/v1/domains/example.com", "DELETE")
        .await
        .assert_problem(403, "insufficient_scope");
    assert_eq!(
        forwarded("/v1/status", "GET").await.status,
        200,
        "unmatched requests are allowed when configured so"
    );
}

#[tokio::test]
async fn the_query_string_of_the_original_uri_carries_a_key_only_when_enabled() {
    let app = TestApp::new().await;
    let uri = format!("/v1/domains?api_key={}", app.admin_key);
    app.get("/v1/authorize")
        .header("x-original-uri", &uri)
        .send()
        .await
        .assert_problem(401, "unauthenticated");
    let app = TestApp::with_config(ServerConfig {
        gate: GateConfig {
            allow_query_api_key: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let uri = format!("/v1/domains?api_key={}", app.admin_key);
    assert_eq!(
        app.get("/v1/authorize")
            .header("x-original-uri", &uri)
            .send()
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let config = ServerConfig {
        gate: GateConfig {
            trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
            ..Default::default()
        },
        ..Default::default()
    };
    let app = TestApp::with_config(config).await;
    let fenced = app
        .create_key(json!({"name": "fenced", "ip_allowlist": ["192.0.2.0/24"]}))
        .await;
    let key = fenced["key"].as_str().unwrap();
    // From the trusted proxy, the forwarded client address counts.
    let via_proxy = app
        .get("/v1/authorize")
        .key(key)
        .peer("127.0.0.1")
        .header("x-forwarded-for", "192.0.2.10")
        .send()
        .await;
    assert_eq!(via_proxy.status, 200, "{}", via_proxy.text);
    let spoofed_chain = app
        .get("/v1/authorize")
        .key(key)
        .peer("127.0.0.1")
        .header("x-forwarded-for", "192.0.2.10, 198.51.100.3")
        .send()
        .await;
    spoofed_chain.assert_problem(403, "ip_denied");
    // From anyone else, X-Forwarded-For is ignored.
    let forged = app
        .get("/v1/authorize")
        .key(key)
        .peer("198.51.100.3")
        .header("x-forwarded-for", "192.0.2.10")
        .send()
        .await;
    forged.assert_problem(403, "ip_denied");
    let direct = app
        .get("/v1/authorize")
        .key(key)
        .peer("192.0.2.11")
        .header("x-forwarded-for", "198.51.100.3")
        .send()
        .await;
    assert_eq!(direct.status, 200);
}
