//! `TestApp`: the production router driven in-process on a fresh database of the backend
//! `KEYWARD_TEST_DATABASE` names (SQLite by default), with a manual clock and an
//! organization whose bootstrap key holds every scope.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use keyward_core::clock::ManualClock;
use keyward_server::{AppState, ServerConfig, router};
use keyward_service::Operator;
use keyward_store::testing::{TestDatabase, record_secrets, record_secrets_shown};
use keyward_store::{SqlStore, Store};
use serde_json::Value;
use time::macros::datetime;
use tower::ServiceExt;

/// One application under test.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    /// The store under the application, for reading what it wrote.
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    /// The bootstrap credential's API key (scope `*`).
    pub admin_key: String,
    pub organization_id: String,
    pub database: TestDatabase,
}

/// An answer, with its body read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, for a call whose answer a test relies on but does not read.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        self
    }

    /// Asserts a problem+json answer with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        let body = self.json();
        assert_eq!(body["code"], code, "{}", self.text);
        assert_eq!(body["status"], status);
        body
    }
}

/// A request being built.
pub struct Call<'a> {
    app: &'a TestApp,
    request: Request<Body>,
}

impl Call<'_> {
    pub fn key(self, key: &str) -> Self {
        self.header("x-api-key", key)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request.headers_mut().append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        self
    }

    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.request.headers_mut().append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_bytes(value).unwrap(),
        );
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        *self.request.body_mut() = Body::from(body.to_string());
        self.header("content-type", "application/json")
    }

    pub fn raw(mut self, content_type: &str, body: impl Into<Body>) -> Self {
        *self.request.body_mut() = body.into();
        self.header("content-type", content_type)
    }

    pub fn peer(mut self, ip: &str) -> Self {
        let addr = SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 40000);
        self.request.extensions_mut().insert(ConnectInfo(addr));
        self
    }

    pub async fn send(self) -> TestResponse {
        let response = self.app.router.clone().oneshot(self.request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        // Every secret an answer shows, for the scan after the whole run.
        record_secrets_shown(&text);
        record_secrets(
            headers
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split(';').next()?.split_once('='))
                .filter(|(name, _)| name.contains("keyward_"))
                .map(|(_, value)| value),
        );
        TestResponse {
            status,
            headers,
            text,
        }
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(ServerConfig::default()).await
    }

    pub async fn with_config(config: ServerConfig) -> Self {
        // PostgreSQL unreachable and not required: the notice is printed, SQLite stands in.
        let database = TestDatabase::from_env().await;
        let store: Arc<dyn Store> = Arc::new(SqlStore::open(database.url()).await.unwrap());
        let clock = ManualClock::new(datetime!(2026-06-01 12:00 UTC));
        let state = AppState::new(store.clone(), Arc::new(clock.clone()), config);
        let (organization, issued) = state
            .service
            .organizations()
            .init(&Operator::new(), "Acme Registrar")
            .await
            .unwrap();
        record_secrets([issued.api_key.expose(), issued.client_secret.expose()]);
        Self {
            router: router(state.clone()),
            state,
            store,
            clock,
            admin_key: issued.api_key.expose().to_owned(),
            organization_id: organization.id.to_string(),
            database,
        }
    }

    /// An application whose organizations' management requests share a ceiling of
    /// `per_second` with bursts of `burst`.
    pub async fn with_management_ceiling(per_second: u32, burst: u32) -> Self {
        use keyward_core::rate_limit::RateLimit;
        use keyward_engine::{EngineConfig, RateLimits};
        Self::with_config(ServerConfig {
            engine: EngineConfig {
                rate_limits: RateLimits {
                    management: RateLimit { per_second, burst },
                    ..RateLimits::default()
                },
                ..EngineConfig::default()
            },
            ..ServerConfig::default()
        })
        .await
    }

    pub fn call(&self, method: Method, uri: &str) -> Call<'_> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        Call { app: self, request }.peer("127.0.0.1")
    }

    pub fn get(&self, uri: &str) -> Call<'_> {
        self.call(Method::GET, uri)
    }

    pub fn post(&self, uri: &str) -> Call<'_> {
        self.call(Method::POST, uri)
    }

    pub fn patch(&self, uri: &str) -> Call<'_> {
        self.call(Method::PATCH, uri)
    }

    /// Creates a key with the admin key; asserts the 201 and returns the body.
    pub async fn create_key(&self, body: Value) -> Value {
        self.create_key_as(&self.admin_key, body).await
    }

    /// `POST /v1/keys/{id}/{action}` (`disable`, `enable`, `revoke`) of a key as created,
    /// with the admin key; asserts the 200.
    pub async fn act_on_key(&self, created: &Value, action: &str) {
        let id = created["key_id"].as_str().expect("a created key's body");
        let response = self
            .post(&format!("/v1/keys/{id}/{action}"))
            .key(&self.admin_key)
            .send()
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }

    /// Creates a key with `key`; asserts the 201 and returns the body.
    pub async fn create_key_as(&self, key: &str, body: Value) -> Value {
        let response = self.post("/v1/keys").key(key).json(body).send().await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
        response.json()
    }

    /// Creates a key with the admin key from `ip`; asserts the 201 and returns the body.
    pub async fn create_key_as_from(&self, body: Value, ip: &str) -> Value {
        let response = self
            .post("/v1/keys")
            .key(&self.admin_key)
            .peer(ip)
            .json(body)
            .send()
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
        response.json()
    }

    /// Initialises a second organization in the same store; returns its admin key.
    pub async fn other_organization(&self) -> String {
        let (_, issued) = self
            .state
            .service
            .organizations()
            .init(&Operator::new(), "Other Registrar")
            .await
            .unwrap();
        record_secrets([issued.api_key.expose(), issued.client_secret.expose()]);
        issued.api_key.expose().to_owned()
    }
}
