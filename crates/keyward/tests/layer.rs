//! The tower layer inside an axum API: the same decisions as `/v1/authorize`, in-process.

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use keyward::Identity;
use keyward::layer::{KeywardLayer, RequireScope};
use keyward_core::audit::Actor;
use keyward_core::clock::ManualClock;
use keyward_core::credential::Environment;
use keyward_core::typeid::OrganizationId;
use keyward_server::lifecycle::{
    self, Authority, CreateKeyRequest, EnvironmentName, StatusChange, init_organization,
};
use keyward_server::throttle::ThrottleConfig;
use keyward_server::{AppState, ServerConfig};
use keyward_store::SqlStore;
use keyward_store::testing::TestDatabase;
use tower::ServiceExt;

struct Api {
    app: Router,
    state: AppState,
    org: OrganizationId,
    _db: TestDatabase,
}

async fn api(config: ServerConfig) -> Api {
    let db = TestDatabase::from_env()
        .await
        .unwrap_or_else(TestDatabase::sqlite);
    let store = SqlStore::open(db.url()).await.unwrap();
    let clock = ManualClock::new(time::macros::datetime!(2026-06-01 12:00 UTC));
    let state = AppState::new(Arc::new(store), Arc::new(clock), config);
    let (org, _) = init_organization(&state, "Layered").await.unwrap();
    let who = |Extension(identity): Extension<Arc<Identity>>| async move {
        format!(
            "{} {}",
            identity.credential.id,
            identity.scopes.to_strings().join(" ")
        )
    };
    let app = Router::new()
        .route(
            "/v1/domains",
            get(who).route_layer(RequireScope::new("domains:read").unwrap()),
        )
        .route(
            "/v1/dns",
            get(who).route_layer(RequireScope::new("dns:write").unwrap()),
        )
        .route("/v1/open", get(who))
        .layer(KeywardLayer::new(&state));
    Api {
        app,
        state,
        org: org.id,
        _db: db,
    }
}

impl Api {
    async fn key(
        &self,
        permissions: &[&str],
        extra: impl FnOnce(&mut CreateKeyRequest),
    ) -> (String, keyward_core::typeid::CredentialId) {
        let mut request = CreateKeyRequest {
            name: Some("layered".into()),
            permissions: Some(permissions.iter().map(|s| (*s).to_owned()).collect()),
            ..Default::default()
        };
        extra(&mut request);
        let issued = lifecycle::create(
            &self.state,
            &self.org,
            &Actor::cli(),
            Authority::Unlimited,
            request,
        )
        .await
        .unwrap();
        (issued.api_key.expose().to_owned(), issued.credential.id)
    }

    async fn get(
        &self,
        path: &str,
        key: Option<&str>,
        ip: &str,
    ) -> (StatusCode, String, Option<String>) {
        let mut request = Request::builder().uri(path);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let mut request = request.body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 5000)));
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            String::from_utf8(bytes.to_vec()).unwrap(),
            challenge,
        )
    }
}

#[tokio::test]
async fn a_valid_key_reaches_the_handler_with_its_identity() {
    let api = api(ServerConfig::default()).await;
    let (key, id) = api.key(&["domains:*"], |_| {}).await;
    let (status, body, _) = api.get("/v1/domains", Some(&key), "192.0.2.1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("{id} domains:*"));
}

#[tokio::test]
async fn missing_and_bad_credentials_get_401_with_a_challenge() {
    let api = api(ServerConfig::default()).await;
    let (status, body, challenge) = api.get("/v1/open", None, "192.0.2.1").await;
    assert_eq!(
        (status, challenge.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Bearer realm=\"keyward\"")),
        "{body}"
    );
    let (status, body, challenge) = api
        .get("/v1/open", Some("kw_live_not_a_key"), "192.0.2.1")
        .await;
    assert_eq!(status, 401);
    assert!(body.contains("MALFORMED"), "{body}");
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer realm=\"keyward\", error=\"invalid_token\"")
    );
}

#[tokio::test]
async fn require_scope_refuses_with_insufficient_scope() {
    let api = api(ServerConfig::default()).await;
    let (key, _) = api.key(&["domains:read"], |_| {}).await;
    let (status, body, challenge) = api.get("/v1/dns", Some(&key), "192.0.2.1").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("insufficient_scope"));
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer realm=\"keyward\", error=\"insufficient_scope\", scope=\"dns:write\"")
    );
    assert_eq!(api.get("/v1/domains", Some(&key), "192.0.2.1").await.0, 200);
}

#[tokio::test]
async fn a_revoke_refuses_the_very_next_request() {
    let api = api(ServerConfig::default()).await;
    let (key, id) = api.key(&["domains:read"], |_| {}).await;
    assert_eq!(
        api.get("/v1/domains", Some(&key), "192.0.2.1").await.0,
        200,
        "cached now"
    );
    lifecycle::set_status(
        &api.state,
        &api.org,
        &id,
        &Actor::cli(),
        Authority::Unlimited,
        StatusChange::Revoke,
    )
    .await
    .unwrap();
    let (status, body, _) = api.get("/v1/domains", Some(&key), "192.0.2.1").await;
    assert_eq!(status, 401);
    assert!(body.contains("REVOKED"), "{body}");
}

#[tokio::test]
async fn environment_and_address_restrictions_apply() {
    let layered = api(ServerConfig::default()).await;
    let app = Router::new().route("/live", get(|| async { "ok" })).layer(
        KeywardLayer::new(&layered.state)
            .require_environment(Environment::Live)
            .require_scopes(&["domains:read"])
            .unwrap(),
    );
    let (test_key, _) = layered
        .key(&["domains:read"], |r| {
            r.environment = Some(EnvironmentName::Test)
        })
        .await;
    let (narrow, _) = layered
        .key(&["domains:read"], |r| {
            r.ip_allowlist = Some(vec!["192.0.2.0/24".into()])
        })
        .await;
    let call = |key: String, ip: &'static str| {
        let app = app.clone();
        async move {
            let mut request = Request::builder()
                .uri("/live")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 5000)));
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    let (status, body) = call(test_key, "192.0.2.1").await;
    assert_eq!(status, 403);
    assert!(body.contains("environment_mismatch"), "{body}");
    assert_eq!(call(narrow.clone(), "192.0.2.9").await.0, 200);
    let (status, body) = call(narrow, "198.51.100.9").await;
    assert_eq!(status, 403);
    assert!(body.contains("IP_DENIED"), "{body}");
}

#[tokio::test]
async fn a_guessing_address_is_throttled_and_others_are_not() {
    let config = ServerConfig {
        throttle: ThrottleConfig {
            threshold: 5,
            ..ThrottleConfig::default()
        },
        ..ServerConfig::default()
    };
    let api = api(config).await;
    let (key, _) = api.key(&["domains:read"], |_| {}).await;
    for _ in 0..5 {
        assert_eq!(
            api.get("/v1/domains", Some("kw_live_guess"), "203.0.113.66")
                .await
                .0,
            401
        );
    }
    let (status, body, _) = api.get("/v1/domains", Some(&key), "203.0.113.66").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        api.get("/v1/domains", Some(&key), "192.0.2.1").await.0,
        200,
        "the holder elsewhere is unaffected"
    );
}

#[tokio::test]
async fn an_access_token_passes_the_layer_with_its_narrower_scopes() {
    use keyward_server::oauth::token::{Subject, issue};
    let api = api(ServerConfig::default()).await;
    let (_, id) = api.key(&["domains:*", "dns:*"], |_| {}).await;
    let now = api.state.clock.now();
    let ring = api.state.keys.current(&api.state.store, now).await.unwrap();
    let signer = ring.signer(now).unwrap();
    let subject = Subject {
        credential_id: id.as_str(),
        client_id: api.org.as_str(),
        scope: "domains:read",
        environment: "live",
    };
    let (token, _) = issue(&signer, &api.state.config.oauth, now, subject).unwrap();
    let (status, body, _) = api.get("/v1/domains", Some(&token), "192.0.2.1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("{id} domains:read"));
    let (status, _, challenge) = api.get("/v1/dns", Some(&token), "192.0.2.1").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the token holds only domains:read"
    );
    assert!(challenge.unwrap().contains("insufficient_scope"));
}

#[tokio::test]
async fn the_layer_applies_the_rate_limit_with_its_headers() {
    let api = api(ServerConfig::default()).await;
    let (key, _) = api
        .key(&["domains:*"], |r| r.rate_limit_override = Some(1))
        .await;
    let request = |key: &str| {
        let mut request = Request::builder()
            .uri("/v1/domains")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new([192, 0, 2, 1].into(), 5000)));
        request
    };
    let first = api.app.clone().oneshot(request(&key)).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit-limit"], "2");
    assert_eq!(first.headers()["ratelimit-remaining"], "1");
    assert_eq!(
        api.app
            .clone()
            .oneshot(request(&key))
            .await
            .unwrap()
            .status(),
        200
    );
    let refused = api.app.clone().oneshot(request(&key)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
}
