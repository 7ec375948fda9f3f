//! Keyward in front of an API, whatever the proxy: what a client of the proxy must see
//! (the proxy tests, `nginx` and `caddy`, each start their proxy in a [`Setting`] and run
//! [`scenario`] through it with [`Setting::check_proxy`]), an
//! upstream API that echoes what the proxy forwarded, and clients bound to 127.0.0.2,
//! 127.0.0.3, … to be distinct source addresses.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::any;
use serde_json::{Value, json};

use keyward_store::testing::TestDatabase;

use crate::support::{Server, database, init};

/// A proxy process, stopped on drop.
pub struct Proxy(pub Child);

impl Drop for Proxy {
    /// SIGTERM, so a proxy stops its workers before it exits (SIGKILL would leave nginx's
    /// worker running, orphaned, after the test).
    fn drop(&mut self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if !terminated {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// The first of `candidates` that exists.
pub fn binary(candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `port`; fails with `log`'s text after 10 s.
fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An upstream API that echoes the identity headers the proxy forwarded, and whether the
/// credential itself reached it.
async fn upstream() -> SocketAddr {
    let echo = |headers: HeaderMap| async move {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        Json(json!({
            "key_id": get("x-keyward-key-id"),
            "organization": get("x-keyward-organization"),
            "environment": get("x-keyward-environment"),
            "scopes": get("x-keyward-scopes"),
            "owner": get("x-keyward-owner-id"),
            "api_key_seen": get("x-api-key"),
            "authorization_seen": get("authorization"),
        }))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(any(echo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// A client whose requests come from `ip`.
fn client_from(ip: &str) -> reqwest::Client {
    crate::support::http()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// What a proxy test stands in front of: Keyward on a fresh database with `config` as its
/// configuration file, the upstream API, a folder for the proxy's files and a free port
/// for it to listen on.
pub struct Setting {
    pub keyward: Server,
    pub admin: String,
    pub upstream: SocketAddr,
    pub port: u16,
    pub work: tempfile::TempDir,
    _db: TestDatabase,
}

impl Setting {
    /// Starts Keyward (configured by `config`) and the upstream.
    pub async fn start(config: &str) -> Self {
        let db = database().await;
        let admin = init(db.url()).api_key;
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("keyward.toml");
        std::fs::write(&file, config).unwrap();
        let keyward = Server::start(db.url(), &["--config", file.to_str().unwrap()], &[]);
        Self {
            keyward,
            admin,
            upstream: upstream().await,
            port: free_port(),
            work,
            _db: db,
        }
    }

    /// Runs [`scenario`] through the proxy listening on the port, once it accepts
    /// connections (`log`, the proxy's, is shown if it never does).
    pub async fn check_proxy(&self, what: &str, log: &Path) {
        wait_for_port(self.port, what, log);
        let base = format!("http://127.0.0.1:{}", self.port);
        scenario(&base, &self.keyward, &self.admin).await;
        // The proxy's log, for the secret scan after the run.
        let text = std::fs::read_to_string(log).unwrap_or_default();
        keyward_store::testing::keep_log(what, &text);
    }
}

/// What a client of the proxy at `base` must see, with `keyward` (administered by
/// `admin`, its brute-force threshold 5) behind it and `/v1/dns/…` requiring `dns:write`:
/// the identity reaching the upstream, 401 with the RFC 6750 challenge, 403 for scope and
/// address (a forged `X-Forwarded-For` changing nothing), 429 with `Retry-After` for an
/// address that keeps guessing while the key works from elsewhere, and a revoke refusing
/// the very next request.
async fn scenario(base: &str, keyward: &Server, admin: &str) {
    let http = crate::support::client();
    let create = |body: Value| {
        let (http, url, admin) = (http.clone(), keyward.url("/v1/keys"), admin.to_owned());
        async move {
            http.post(url)
                .header("x-api-key", admin)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let good = create(json!({
        "name": "through the proxy",
        "permissions": ["domains:read"],
        "owner_id": "customer-7",
    }))
    .await;
    let writer = create(json!({"name": "dns writer", "permissions": ["dns:write"]})).await;
    let fenced = create(json!({"name": "fenced", "ip_allowlist": ["127.0.0.2"]})).await;
    let key = good["key"].as_str().unwrap();
    let status = |client: &reqwest::Client, path: &str, key: Option<&str>| {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // A good key reaches the upstream with the identity headers, and without the key;
    // identity headers the client made up itself never reach it.
    let forged = [
        ("x-keyward-key-id", "api_key_forged"),
        ("x-keyward-organization", "organization_forged"),
        ("x-keyward-environment", "test"),
        ("x-keyward-scopes", "*"),
        ("x-keyward-owner-id", "victim"),
    ];
    let forging = |request: reqwest::RequestBuilder| {
        forged.iter().fold(request, |request, (name, value)| {
            request.header(*name, *value)
        })
    };
    // What the upstream saw of a request that must reach it.
    let upstream_saw = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };
    let client = client_from("127.0.0.2");
    let seen = upstream_saw(
        forging(client.get(format!("{base}/v1/domains?page=2")))
            .header("authorization", format!("Bearer {key}")),
    )
    .await;
    assert_eq!(seen["key_id"], good["key_id"]);
    assert_eq!(seen["organization"], good["client_id"]);
    assert_eq!(seen["environment"], "live");
    assert_eq!(seen["scopes"], "domains:read");
    assert_eq!(seen["owner"], "customer-7");
    assert_eq!(seen["authorization_seen"], "", "the credential stays out");
    let seen = upstream_saw(
        client
            .get(format!("{base}/v1/domains"))
            .header("x-api-key", key),
    )
    .await;
    assert_eq!(seen["key_id"], good["key_id"]);
    assert_eq!(seen["api_key_seen"], "", "the credential stays out");
    // A credential without an owner: the client's owner is not passed on in its place.
    let writer_key = writer["key"].as_str().unwrap();
    let seen = upstream_saw(
        forging(client.get(format!("{base}/v1/dns/records"))).header("x-api-key", writer_key),
    )
    .await;
    assert_eq!(seen["key_id"], writer["key_id"]);
    assert_ne!(seen["owner"], "victim");

    // 401 with the RFC 6750 challenge for missing and bad credentials.
    for (authorization, challenge) in [
        (None, "Bearer realm=\"keyward\""),
        (
            Some("Bearer kw_live_wrong"),
            "Bearer realm=\"keyward\", error=\"invalid_token\"",
        ),
    ] {
        let mut request = client.get(format!("{base}/v1/domains"));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.headers()["www-authenticate"], challenge);
    }

    // 403 for a scope the path requires, and for an address outside the key's allowlist,
    // whatever the client claims in X-Forwarded-For.
    assert_eq!(status(&client, "/v1/dns/records", Some(key)).await, 403);
    assert_eq!(
        status(&client, "/v1/dns/records", Some(writer_key)).await,
        200
    );
    let fenced_key = fenced["key"].as_str().unwrap();
    assert_eq!(status(&client, "/v1/x", Some(fenced_key)).await, 200);
    let outsider = client_from("127.0.0.4");
    assert_eq!(status(&outsider, "/v1/x", Some(fenced_key)).await, 403);
    let forged = outsider
        .get(format!("{base}/v1/x"))
        .header("x-api-key", fenced_key)
        .header("x-forwarded-for", "127.0.0.2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        403,
        "a client's X-Forwarded-For is not believed"
    );

    // 429 with Retry-After for an address that keeps guessing; the holder elsewhere is fine.
    let guesser = client_from("127.0.0.3");
    for i in 0..5 {
        let guess = format!("kw_live_guess{i}");
        assert_eq!(status(&guesser, "/v1/domains", Some(&guess)).await, 401);
    }
    let throttled = guesser
        .get(format!("{base}/v1/domains"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().get("retry-after").is_some());
    assert_eq!(status(&client, "/v1/domains", Some(key)).await, 200);

    // A revoke refuses the very next request through the proxy.
    let id = good["key_id"].as_str().unwrap();
    let revoked = http
        .post(keyward.url(&format!("/v1/keys/{id}/revoke")))
        .header("x-api-key", admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(status(&client, "/v1/domains", Some(key)).await, 401);
}
