//! Keyward in front of an API: Debian's nginx with `auth_request` to `/v1/authorize`,
//! before a small upstream on loopback. Clients bind to 127.0.0.2, 127.0.0.3, … to be
//! distinct source addresses.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::any;
use keyward_store::testing::skip_or_fail;
use serde_json::{Value, json};

use crate::support::{Server, database, init};

/// The nginx configuration of the test; `docs/proxies.md` shows the same, annotated.
fn nginx_conf(dir: &Path, listen: u16, keyward: &str) -> String {
    let dir = dir.display();
    let keyward = keyward.trim_start_matches("http://");
    format!(
        r#"
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{listen};

    location = /_keyward {{
      internal;
      proxy_pass http://{keyward}/v1/authorize;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Keyward-Required-Scopes $keyward_required_scopes;
      # auth_request passes only 401 and 403 on: carry a 429 through as a 403.
      proxy_intercept_errors on;
      error_page 429 = @keyward_throttled;
    }}
    location @keyward_throttled {{ return 403; }}
    location @keyward_denied {{
      if ($keyward_retry_after) {{ add_header Retry-After $keyward_retry_after always; return 429; }}
      return 403;
    }}

    location /v1/dns/ {{
      set $keyward_required_scopes "dns:write";
      include {dir}/protected.conf;
    }}
    location / {{
      set $keyward_required_scopes "";
      include {dir}/protected.conf;
    }}
  }}
}}
"#
    )
}

fn protected_conf(upstream: SocketAddr) -> String {
    format!(
        r#"
auth_request /_keyward;
auth_request_set $keyward_key_id $upstream_http_x_keyward_key_id;
auth_request_set $keyward_organization $upstream_http_x_keyward_organization;
auth_request_set $keyward_environment $upstream_http_x_keyward_environment;
auth_request_set $keyward_scopes $upstream_http_x_keyward_scopes;
auth_request_set $keyward_retry_after $upstream_http_retry_after;
error_page 403 = @keyward_denied;
proxy_set_header X-Keyward-Key-Id $keyward_key_id;
proxy_set_header X-Keyward-Organization $keyward_organization;
proxy_set_header X-Keyward-Environment $keyward_environment;
proxy_set_header X-Keyward-Scopes $keyward_scopes;
proxy_set_header X-Api-Key "";
proxy_set_header Authorization "";
proxy_pass http://{upstream};
"#
    )
}

struct Nginx(Child);

impl Drop for Nginx {
    /// SIGTERM, so the master stops its worker before it exits; SIGKILL would leave the
    /// worker running, orphaned, after the test.
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

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An upstream API that echoes the identity headers nginx forwarded.
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
            "api_key_seen": get("x-api-key"),
        }))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(any(echo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_auth_request_admits_good_keys_and_refuses_the_rest() {
    let Some(nginx) = nginx_binary() else {
        skip_or_fail("nginx", "no nginx binary (apt-get install nginx)");
        return;
    };
    let db = database().await;
    let admin = init(db.url()).api_key;
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("keyward.toml");
    std::fs::write(
        &config,
        "trusted_proxies = [\"127.0.0.1\"]\n[brute_force]\nthreshold = 5\n",
    )
    .unwrap();
    let keyward = Server::start(db.url(), &["--config", config.to_str().unwrap()], &[]);
    let upstream = upstream().await;
    let port = free_port();
    std::fs::write(work.path().join("protected.conf"), protected_conf(upstream)).unwrap();
    let conf = work.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(work.path(), port, &keyward.base)).unwrap();
    let _nginx = Nginx(
        Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(work.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let http = crate::support::client();
    let create = |body: Value| {
        let (http, url, admin) = (http.clone(), keyward.url("/v1/keys"), admin.clone());
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
    let good = create(json!({"name": "through nginx", "permissions": ["domains:read"]})).await;
    let writer = create(json!({"name": "dns writer", "permissions": ["dns:write"]})).await;
    let fenced = create(json!({"name": "fenced", "ip_allowlist": ["127.0.0.2"]})).await;
    let key = good["key"].as_str().unwrap();

    // A good key reaches the upstream with the identity headers, and without the key.
    let client = client_from("127.0.0.2");
    let response = client
        .get(format!("{base}/v1/domains"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["key_id"], good["key_id"]);
    assert_eq!(seen["organization"], good["client_id"]);
    assert_eq!(seen["environment"], "live");
    assert_eq!(seen["scopes"], "domains:read");
    assert_eq!(
        seen["api_key_seen"], "",
        "the credential is not passed upstream"
    );

    // 401 with the RFC 6750 challenge for missing and bad credentials.
    let missing = client
        .get(format!("{base}/v1/domains"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"keyward\""
    );
    let bad = client
        .get(format!("{base}/v1/domains"))
        .header("authorization", "Bearer kw_live_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.headers()["www-authenticate"],
        "Bearer realm=\"keyward\", error=\"invalid_token\""
    );

    // 403 for a scope the location requires, and for an address outside the key's allowlist.
    assert_eq!(
        client
            .get(format!("{base}/v1/dns/records"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        client
            .get(format!("{base}/v1/dns/records"))
            .header("x-api-key", writer["key"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let fenced_key = fenced["key"].as_str().unwrap();
    assert_eq!(
        client
            .get(format!("{base}/v1/x"))
            .header("x-api-key", fenced_key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client_from("127.0.0.4")
            .get(format!("{base}/v1/x"))
            .header("x-api-key", fenced_key)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // 429 with Retry-After for an address that keeps guessing; the holder elsewhere is fine.
    let guesser = client_from("127.0.0.3");
    for i in 0..5 {
        let status = guesser
            .get(format!("{base}/v1/domains"))
            .header("x-api-key", format!("kw_live_guess{i}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    let throttled = guesser
        .get(format!("{base}/v1/domains"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().get("retry-after").is_some());
    assert_eq!(
        client
            .get(format!("{base}/v1/domains"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A revoke refuses the very next request through nginx.
    let id = good["key_id"].as_str().unwrap();
    let revoked = http
        .post(keyward.url(&format!("/v1/keys/{id}/revoke")))
        .header("x-api-key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        client
            .get(format!("{base}/v1/domains"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}
