//! Webhooks from the real binary to a real receiver on 127.0.0.1 (`webhook_receiver.py`),
//! whose signatures are checked by the `standardwebhooks` package from PyPI, a library no
//! one here wrote: every event type arrives once, deduplicated by `webhook-id`; failures
//! are retried with the same id; a 410 disables the endpoint; and revokes acknowledged
//! just before a SIGKILL are all delivered after the restart. The interpreter is
//! `KEYWARD_TEST_PYTHON`, else `python3`; skipped with a notice when it or the package is
//! missing, failing under `KEYWARD_TEST_REQUIRE_SERVICES=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyward_store::testing::{record_secrets, skip_or_fail};
use serde_json::{Value, json};

use crate::support::{Server, client, database, init};

/// The receiver, stopped (its standard input closed) on drop.
struct Receiver {
    child: Child,
    base: String,
}

impl Receiver {
    fn start() -> Option<Self> {
        let python = std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let probe = Command::new(&python)
            .args(["-c", "import standardwebhooks"])
            .output()
            .ok()?;
        if !probe.status.success() {
            return None;
        }
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/webhook_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .expect(&line)
            .to_owned();
        Some(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn expect(&self, path: &str, secret: &str, answers: &[u16]) {
        let response = client()
            .post(format!("{}/_config", self.base))
            .json(&json!({"path": path, "secret": secret, "answers": answers}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }

    async fn received(&self) -> Vec<Value> {
        client()
            .get(format!("{}/_received", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits (at most `within`) until `done` holds of what arrived; returns it.
    async fn until(&self, within: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received().await;
            if done(&received) || Instant::now() > deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A configuration file for a test server: webhooks may target the receiver (plain HTTP on
/// loopback), retries are a second apart, scans run every second, and the loopback proxy
/// is trusted so a test can send from another address.
fn config_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("keyward.toml");
    std::fs::write(
        &path,
        r#"
trusted_proxies = ["127.0.0.1"]

[webhooks]
allow_private_targets = true
allow_http = true
retry_schedule_seconds = [1, 1, 1]
timeout_seconds = 1
scan_interval_seconds = 1
poll_interval_ms = 100
"#,
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

struct Api<'a> {
    server: &'a Server,
    key: String,
}

impl Api<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = client()
            .request(method.parse().unwrap(), self.server.url(path))
            .header("x-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body}"
        );
        body
    }

    async fn webhook(
        &self,
        receiver: &Receiver,
        path: &str,
        events: Value,
        answers: &[u16],
    ) -> Value {
        let made = self
            .ok(
                "POST",
                "/v1/webhooks",
                Some(json!({"url": format!("{}{path}", receiver.base), "events": events})),
            )
            .await;
        let secret = made["secret"].as_str().unwrap();
        record_secrets([secret]);
        receiver.expect(path, secret, answers).await;
        made
    }
}

fn rfc3339_in(seconds: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_type_arrives_signed_once_and_failures_are_retried() {
    let Some(receiver) = Receiver::start() else {
        skip_or_fail(
            "standard webhooks receiver",
            "python3 with the standardwebhooks package (see .ci/run)",
        );
        return;
    };
    let db = database().await;
    let bootstrap = init(db.url());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(db.url(), &["--config", &config_file(&dir)], &[]);
    let api = Api {
        server: &server,
        key: bootstrap.api_key.clone(),
    };

    // A 410 first: the endpoint is disabled and hears nothing more.
    let gone = api
        .webhook(&receiver, "/gone", json!(["key.created"]), &[410])
        .await;
    let gone_id = gone["id"].as_str().unwrap();
    let first = api
        .ok("POST", "/v1/keys", Some(json!({"name": "First"})))
        .await;
    let received = receiver
        .until(Duration::from_secs(20), |r| {
            r.iter().any(|m| m["path"] == "/gone")
        })
        .await;
    assert_eq!(received.len(), 1, "{received:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let endpoint = api
            .ok("GET", &format!("/v1/webhooks/{gone_id}"), None)
            .await;
        if endpoint["enabled"] == false {
            assert_eq!(endpoint["disabled_reason"], "gone");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a 410 did not disable the endpoint"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let all = api.webhook(&receiver, "/all", json!(["*"]), &[]).await;
    let all_id = all["id"].as_str().unwrap();
    let flaky = api
        .webhook(&receiver, "/flaky", json!(["key.rotated"]), &[500, 500])
        .await;

    // Every event type, each caused once (key.revoked twice: a revoke and a leak report).
    let key = api
        .ok(
            "POST",
            "/v1/keys",
            Some(json!({"name": "Lifecycle", "permissions": ["dns:read"]})),
        )
        .await;
    record_secrets([
        key["key"].as_str().unwrap(),
        key["client_secret"].as_str().unwrap(),
    ]);
    let id = key["key_id"].as_str().unwrap();
    api.ok(
        "PATCH",
        &format!("/v1/keys/{id}"),
        Some(json!({"name": "Renamed"})),
    )
    .await;
    api.ok("POST", &format!("/v1/keys/{id}/disable"), None)
        .await;
    api.ok("POST", &format!("/v1/keys/{id}/enable"), None).await;
    let rotated = api
        .ok("POST", &format!("/v1/keys/{id}/rotate"), Some(json!({})))
        .await;
    record_secrets([
        rotated["key"].as_str().unwrap(),
        rotated["client_secret"].as_str().unwrap(),
    ]);
    let leaked = api
        .ok("POST", "/v1/keys", Some(json!({"name": "Leaked"})))
        .await;
    record_secrets([
        leaked["key"].as_str().unwrap(),
        leaked["client_secret"].as_str().unwrap(),
    ]);
    let (status, _) = api
        .call(
            "POST",
            "/v1/leaks",
            Some(json!({"keys": [leaked["key"]], "source": "https://paste.example/1"})),
        )
        .await;
    assert_eq!(status, 202);
    let expiring = api
        .ok(
            "POST",
            "/v1/keys",
            Some(json!({"name": "Short-lived", "expires_at": rfc3339_in(3)})),
        )
        .await;
    record_secrets([
        expiring["key"].as_str().unwrap(),
        expiring["client_secret"].as_str().unwrap(),
    ]);
    let rule = api
        .ok(
            "POST",
            "/v1/ip-rules",
            Some(json!({"ip_network": "203.0.113.9", "type": "deny"})),
        )
        .await;
    let refused = client()
        .get(server.url("/v1/authorize"))
        .header("x-api-key", rotated["key"].as_str().unwrap())
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    // The refusal is written within a second and announced by the next scan.
    receiver
        .until(Duration::from_secs(15), |r| {
            r.iter().any(|m| m["type"] == "ip_rule.blocked")
        })
        .await;
    api.ok(
        "DELETE",
        &format!("/v1/ip-rules/{}", rule["id"].as_str().unwrap()),
        None,
    )
    .await;
    api.ok("POST", &format!("/v1/keys/{id}/revoke"), None).await;
    let test = api
        .ok("POST", &format!("/v1/webhooks/{all_id}/test"), None)
        .await;

    let mut expected: BTreeMap<String, usize> = keyward_core::webhook::EVENT_TYPES
        .iter()
        .map(|t| ((*t).to_owned(), 1))
        .collect();
    expected.insert("webhook.test".into(), 1);
    expected.insert("key.created".into(), 3);
    expected.insert("key.revoked".into(), 2);
    let unique_per_type = |received: &[Value]| {
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for message in received.iter().filter(|m| m["path"] == "/all") {
            seen.entry(message["type"].as_str().unwrap_or("?").to_owned())
                .or_default()
                .insert(message["id"].as_str().unwrap().to_owned());
        }
        seen.into_iter()
            .map(|(t, ids)| (t, ids.len()))
            .collect::<BTreeMap<_, _>>()
    };
    let received = receiver
        .until(Duration::from_secs(30), |r| {
            unique_per_type(r) == expected
                && r.iter().filter(|m| m["path"] == "/flaky").count() >= 3
        })
        .await;
    let context = server.output.lock().unwrap().clone();
    assert_eq!(
        unique_per_type(&received),
        expected,
        "{received:#?}\n{context}"
    );
    assert!(
        received.iter().all(|m| m["verified"] == true),
        "a signature did not verify: {received:#?}"
    );
    assert!(
        received
            .iter()
            .all(|m| m["path"] != "/gone" || m["type"] == "key.created")
    );
    assert_eq!(received.iter().filter(|m| m["path"] == "/gone").count(), 1);
    let test_message = received
        .iter()
        .find(|m| m["type"] == "webhook.test")
        .unwrap();
    assert_eq!(test_message["id"], test["message_id"]);
    // The records carry no secret.
    let text = serde_json::to_string(&received).unwrap();
    for secret in [
        &key["key"],
        &rotated["key"],
        &leaked["key"],
        &key["client_secret"],
    ] {
        assert!(!text.contains(secret.as_str().unwrap()));
    }
    let exposed = received
        .iter()
        .find(|m| m["type"] == "key.exposed")
        .unwrap();
    assert_eq!(exposed["payload"]["data"]["key_id"], leaked["key_id"]);
    assert_eq!(
        exposed["payload"]["data"]["exposure"]["source"],
        "https://paste.example/1"
    );

    // The flaky endpoint: 500, 500, then 200, all with one webhook-id.
    let flaky_messages: Vec<&Value> = received.iter().filter(|m| m["path"] == "/flaky").collect();
    assert_eq!(flaky_messages.len(), 3);
    assert!(
        flaky_messages
            .iter()
            .all(|m| m["id"] == flaky_messages[0]["id"])
    );
    let statuses: Vec<&Value> = flaky_messages.iter().map(|m| &m["status"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(500), &json!(200)]);
    let flaky_id = flaky["id"].as_str().unwrap();
    let deliveries = api
        .ok("GET", &format!("/v1/webhooks/{flaky_id}/deliveries"), None)
        .await;
    let delivery = &deliveries["data"][0];
    assert_eq!(delivery["status"], "delivered");
    let attempts: Vec<&Value> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["response_status"])
        .collect();
    assert_eq!(attempts, [&json!(500), &json!(500), &json!(200)]);
    drop(first);
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_revokes_are_all_delivered_after_sigkill() {
    const ROUNDS: usize = 12;
    let Some(receiver) = Receiver::start() else {
        skip_or_fail(
            "standard webhooks receiver",
            "python3 with the standardwebhooks package (see .ci/run)",
        );
        return;
    };
    let db = database().await;
    let bootstrap = init(db.url());
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&dir);
    let server = Server::start(db.url(), &["--config", &config], &[]);
    let api = Api {
        server: &server,
        key: bootstrap.api_key.clone(),
    };
    api.webhook(&receiver, "/revoked", json!(["key.revoked"]), &[])
        .await;
    let mut ids = BTreeSet::new();
    for round in 0..ROUNDS {
        let made = api
            .ok(
                "POST",
                "/v1/keys",
                Some(json!({"name": format!("Round {round}")})),
            )
            .await;
        record_secrets([
            made["key"].as_str().unwrap(),
            made["client_secret"].as_str().unwrap(),
        ]);
        ids.insert(made["key_id"].as_str().unwrap().to_owned());
    }
    server.kill();

    // Each revoke is acknowledged, and the node killed at once, before it can send.
    for id in &ids {
        let server = Server::start(db.url(), &["--config", &config], &[]);
        let response = client()
            .post(server.url(&format!("/v1/keys/{id}/revoke")))
            .header("x-api-key", &bootstrap.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        server.kill();
    }

    let server = Server::start(db.url(), &["--config", &config], &[]);
    let revoked = |received: &[Value]| -> BTreeSet<String> {
        received
            .iter()
            .filter(|m| m["type"] == "key.revoked")
            .map(|m| m["payload"]["data"]["key_id"].as_str().unwrap().to_owned())
            .collect()
    };
    // A claim the killed node held runs out after its lease (ten timeouts of a second).
    let received = receiver
        .until(Duration::from_secs(45), |r| revoked(r) == ids)
        .await;
    assert_eq!(revoked(&received), ids, "{}", server.output.lock().unwrap());
    assert!(received.iter().all(|m| m["verified"] == true));
}
