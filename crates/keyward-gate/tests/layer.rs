//! The tower layer inside an axum API: the same decisions as `/v1/authorize`, in-process.

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use keyward_core::clock::{Clock, ManualClock, SystemClock};
use keyward_core::credential::Environment;
use keyward_core::typeid::OrganizationId;
use keyward_engine::throttle::ThrottleConfig;
use keyward_engine::{Client, EngineConfig, Identity, Verifier};
use keyward_gate::layer::{KeywardLayer, RequireScope};
use keyward_gate::{Gate, GateConfig};
use keyward_service::credentials::{Issued, NewCredential, StatusChange};
use keyward_service::principal::WriteKeys;
use keyward_service::{Operator, Service, ServiceConfig};
use keyward_store::testing::TestDatabase;
use keyward_store::{SqlStore, Store};
use tower::ServiceExt;

/// An API with the layer in front, on a gate of its own, and the management service that
/// makes its keys (and signs tokens) on the same store.
struct Api {
    app: Router,
    gate: Gate,
    service: Service,
    org: OrganizationId,
    _db: TestDatabase,
}

/// The management side of a node on `store` and `clock`, and the engine it keeps in step,
/// made with `config`: the server's wiring, without HTTP.
fn node(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
) -> (Service, Arc<Verifier>) {
    let service_config = ServiceConfig::default();
    let keys = Service::key_ring(&service_config, &config.tokens, store.clone());
    let engine = Arc::new(Verifier::new(
        store.clone(),
        clock.clone(),
        config,
        keys.clone(),
    ));
    let service = Service::new(store, clock, engine.clone(), keys, service_config);
    (service, engine)
}

/// The routes of an API whose handlers answer with the identity's credential and scopes.
fn routes(gate: &Gate) -> Router {
    let who = |Extension(identity): Extension<Arc<Identity>>| async move {
        format!(
            "{} {}",
            identity.credential.id,
            identity.scopes.to_strings().join(" ")
        )
    };
    Router::new()
        .route(
            "/v1/domains",
            get(who).route_layer(RequireScope::new("domains:read").unwrap()),
        )
        .route(
            "/v1/dns",
            get(who).route_layer(RequireScope::new("dns:write").unwrap()),
        )
        .route("/v1/open", get(who))
        .layer(KeywardLayer::new(gate))
}

async fn api(config: EngineConfig) -> Api {
    let db = TestDatabase::from_env().await;
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let clock = ManualClock::new(time::macros::datetime!(2026-06-01 12:00 UTC));
    let (service, engine) = node(store, Arc::new(clock), config);
    let gate = Gate::new(engine, GateConfig::default());
    let (org, _) = service
        .organizations()
        .init(&Operator::new(), "Layered")
        .await
        .unwrap();
    Api {
        app: routes(&gate),
        gate,
        service,
        org: org.id,
        _db: db,
    }
}

/// A credential of `org` holding `permissions`, made by the operator.
async fn credential(
    service: &Service,
    org: &OrganizationId,
    permissions: &[&str],
    extra: impl FnOnce(&mut NewCredential),
) -> Issued {
    let mut new = NewCredential {
        name: "layered".into(),
        permissions: permissions.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    extra(&mut new);
    let operator = Operator::new();
    let permit = operator.in_organization(org).permit::<WriteKeys>().unwrap();
    service.credentials().create(&permit, new).await.unwrap()
}

/// An access token for `scope`, issued to the OAuth client `issued` (authenticated by the
/// engine `engine` with its client secret) by `service`.
async fn token(service: &Service, engine: &Verifier, issued: &Issued, scope: &str) -> String {
    let client = engine
        .check_client(
            issued.credential.organization_id.as_str(),
            issued.client_secret.expose(),
            Client::default(),
        )
        .await
        .unwrap();
    service
        .tokens()
        .issue(&client, Some(scope))
        .await
        .unwrap()
        .access_token
}

impl Api {
    async fn key(
        &self,
        permissions: &[&str],
        extra: impl FnOnce(&mut NewCredential),
    ) -> (String, keyward_core::typeid::CredentialId) {
        let issued = credential(&self.service, &self.org, permissions, extra).await;
        (issued.api_key.expose().to_owned(), issued.credential.id)
    }

    async fn get(
        &self,
        path: &str,
        key: Option<&str>,
        ip: &str,
    ) -> (StatusCode, String, Option<String>) {
        let credential = key.map(|key| ("x-api-key", key.to_owned()));
        send(&self.app, path, credential, ip).await
    }
}

/// `GET path` through `app` from `ip`, with the credential header given: the status, the
/// body and the `WWW-Authenticate` challenge.
async fn send(
    app: &Router,
    path: &str,
    credential: Option<(&str, String)>,
    ip: &str,
) -> (StatusCode, String, Option<String>) {
    let mut request = Request::builder().uri(path);
    if let Some((name, value)) = credential {
        request = request.header(name, value);
    }
    let mut request = request.body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 5000)));
    let response = app.clone().oneshot(request).await.unwrap();
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

/// An `Authorization: Bearer` header.
fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

#[tokio::test]
async fn a_valid_key_reaches_the_handler_with_its_identity() {
    let api = api(EngineConfig::default()).await;
    let (key, id) = api.key(&["domains:*"], |_| {}).await;
    let (status, body, _) = api.get("/v1/domains", Some(&key), "192.0.2.1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("{id} domains:*"));
}

#[tokio::test]
async fn missing_and_bad_credentials_get_401_with_a_challenge() {
    let api = api(EngineConfig::default()).await;
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
    let api = api(EngineConfig::default()).await;
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
    let api = api(EngineConfig::default()).await;
    let (key, id) = api.key(&["domains:read"], |_| {}).await;
    assert_eq!(
        api.get("/v1/domains", Some(&key), "192.0.2.1").await.0,
        200,
        "cached now"
    );
    let operator = Operator::new();
    let permit = operator
        .in_organization(&api.org)
        .permit::<WriteKeys>()
        .unwrap();
    api.service
        .credentials()
        .set_status(&permit, id.as_str(), StatusChange::Revoke)
        .await
        .unwrap();
    let (status, body, _) = api.get("/v1/domains", Some(&key), "192.0.2.1").await;
    assert_eq!(status, 401);
    assert!(body.contains("REVOKED"), "{body}");
}

#[tokio::test]
async fn environment_and_address_restrictions_apply() {
    let layered = api(EngineConfig::default()).await;
    let app = Router::new().route("/live", get(|| async { "ok" })).layer(
        KeywardLayer::new(&layered.gate)
            .require_environment(Environment::Live)
            .require_scopes(&["domains:read"])
            .unwrap(),
    );
    let (test_key, _) = layered
        .key(&["domains:read"], |r| r.environment = Environment::Test)
        .await;
    let (narrow, _) = layered
        .key(&["domains:read"], |r| {
            r.ip_allowlist = vec!["192.0.2.0/24".into()]
        })
        .await;
    let call = |key: String, ip: &'static str| {
        let app = app.clone();
        async move {
            let (status, body, _) = send(&app, "/live", bearer(&key), ip).await;
            (status, body)
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
    let config = EngineConfig {
        throttle: ThrottleConfig {
            threshold: 5,
            ..ThrottleConfig::default()
        },
        ..EngineConfig::default()
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
    let api = api(EngineConfig::default()).await;
    let issued = credential(&api.service, &api.org, &["domains:*", "dns:*"], |_| {}).await;
    let id = issued.credential.id.clone();
    let token = token(&api.service, api.gate.engine(), &issued, "domains:read").await;
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
    let api = api(EngineConfig::default()).await;
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

/// An API that links only the layer (`keyward_gate::connect`) checks tokens against the
/// keys the server publishes in the store, and hears of a revoke made on the server within
/// its cache's lifetime.
#[tokio::test]
async fn a_layer_connected_to_the_servers_store_accepts_its_tokens_and_sees_its_revokes() {
    let db = TestDatabase::from_env().await;
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(db.url()).await.unwrap());
    // The server's side, on the same clock as the layer's.
    let (server, server_engine) = node(store, Arc::new(SystemClock), EngineConfig::default());
    let (org, _) = server
        .organizations()
        .init(&Operator::new(), "Server")
        .await
        .unwrap();
    let issued = credential(&server, &org.id, &["domains:read"], |_| {}).await;
    let token = token(&server, &server_engine, &issued, "domains:read").await;
    // The API's side: its own engine, reading the published keys from the store.
    let config = EngineConfig {
        cache_ttl: std::time::Duration::from_millis(100),
        ..EngineConfig::default()
    };
    let gate = keyward_gate::connect(db.url(), config, GateConfig::default())
        .await
        .unwrap();
    let app = routes(&gate);
    let call = |token: String| {
        let app = app.clone();
        async move {
            let (status, body, _) = send(&app, "/v1/domains", bearer(&token), "192.0.2.1").await;
            (status, body)
        }
    };
    let (status, body) = call(token.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("{} domains:read", issued.credential.id));
    // One byte of the signature changed: signed by no published key.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let (status, body) = call(String::from_utf8(forged).unwrap()).await;
    assert_eq!(status, 401, "{body}");
    // Revoked on the server: the layer's engine sees it at its next read of the
    // organization's change counter.
    let operator = Operator::new();
    let permit = operator
        .in_organization(&org.id)
        .permit::<WriteKeys>()
        .unwrap();
    server
        .credentials()
        .set_status(&permit, issued.credential.id.as_str(), StatusChange::Revoke)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, body) = call(token.clone()).await;
        if status == 401 {
            assert!(body.contains("REVOKED"), "{body}");
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the revoke was not seen within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
