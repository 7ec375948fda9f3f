//! Webhooks: endpoints managed through `/v1/webhooks`, messages queued with the changes
//! that cause them, delivered (driven here step by step, with the manual clock) to a
//! receiver on 127.0.0.1, retried on the schedule, signed per Standard Webhooks; expiry
//! and blocked-request notices found by the scheduled scan, once each.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_core::clock::{Clock, rfc3339};
use keyward_core::webhook::TargetPolicy;
use keyward_delivery::{Deliverer, signature};
use keyward_server::ServerConfig;
use keyward_service::webhooks::WebhookConfig;
use serde_json::{Value, json};

use crate::support::TestApp;

/// A receiver on 127.0.0.1 that records every request and answers the statuses it is
/// given, one per request, then 200.
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = Self {
            url,
            received: Arc::default(),
            answers: Arc::default(),
        };
        let inner = receiver.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
            let inner = inner.clone();
            async move {
                inner.received.lock().unwrap().push((headers, body));
                let status = inner.answers.lock().unwrap().pop_front().unwrap_or(200);
                (
                    StatusCode::from_u16(status).unwrap(),
                    "answer from the receiver",
                )
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    fn answer(&self, statuses: &[u16]) {
        self.answers.lock().unwrap().extend(statuses);
    }

    fn messages(&self) -> Vec<(HeaderMap, Value)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b)| (h.clone(), serde_json::from_str(b).unwrap()))
            .collect()
    }

    fn types(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|(_, body)| body["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.service.webhooks = WebhookConfig {
        targets: TargetPolicy {
            allow_private: true,
            allow_http: true,
        },
        retry_schedule: vec![Duration::from_secs(10), Duration::from_secs(100)],
        timeout: Duration::from_secs(5),
        ..WebhookConfig::default()
    };
    config
}

async fn create_webhook(app: &TestApp, url: &str, events: Value) -> Value {
    let response = app
        .post("/v1/webhooks")
        .key(&app.admin_key)
        .json(json!({"url": url, "events": events, "description": "Ops"}))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    let body = response.json();
    keyward_store::testing::record_secrets([body["secret"].as_str().unwrap()]);
    body
}

fn deliverer(app: &TestApp) -> Deliverer {
    Deliverer::new(app.state.service.clone()).unwrap()
}

/// The signing secret's bytes.
fn secret_bytes(secret: &str) -> Vec<u8> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap()
}

/// Asserts the message is signed by `secret` per Standard Webhooks.
fn assert_signed(headers: &HeaderMap, body: &str, secret: &str) {
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp: i64 = headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = signature(&[secret_bytes(secret)], id, timestamp, body.as_bytes());
    let sent = headers["webhook-signature"].to_str().unwrap();
    assert!(
        sent.split(' ').any(|s| s == expected),
        "{sent} lacks {expected}"
    );
}

#[tokio::test]
async fn endpoints_are_created_read_changed_and_removed_with_the_secret_shown_once() {
    let app = TestApp::with_config(config()).await;
    let made = create_webhook(&app, "https://hooks.example.com/k?token=abc", json!(["*"])).await;
    let id = made["id"].as_str().unwrap();
    assert!(id.starts_with("webhook_"));
    let secret = made["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret_bytes(secret).len() == 32);
    assert_eq!(made["events"], json!(["*"]));
    assert_eq!(made["enabled"], true);

    let listed = app
        .get("/v1/webhooks")
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    assert_eq!(listed.json()["data"][0]["id"], id);
    let one = app
        .get(&format!("/v1/webhooks/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    for text in [&listed.text, &one.text] {
        assert!(!text.contains(secret) && !text.contains("\"secret\""));
    }

    let changed = app
        .patch(&format!("/v1/webhooks/{id}"))
        .key(&app.admin_key)
        .json(json!({"events": ["key.revoked", "key.created"], "description": null, "enabled": false}))
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(changed["events"], json!(["key.created", "key.revoked"]));
    assert_eq!(changed["description"], Value::Null);
    assert_eq!(changed["enabled"], false);
    app.patch(&format!("/v1/webhooks/{id}"))
        .key(&app.admin_key)
        .json(json!({"url": null}))
        .send()
        .await
        .assert_problem(422, "validation_failed");

    let rotated = app
        .post(&format!("/v1/webhooks/{id}/rotate-secret"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    let new_secret = rotated["secret"].as_str().unwrap();
    keyward_store::testing::record_secrets([new_secret]);
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_expires_at"].is_string());

    app.call(axum::http::Method::DELETE, &format!("/v1/webhooks/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(204);
    app.get(&format!("/v1/webhooks/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(404, "not_found");

    // Every change is audited, and the audit keeps the target's origin, not its path or
    // query (which may hold a token of the receiver's).
    let audit = app
        .get(&format!("/v1/audit-log?target_id={id}"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    let actions: Vec<String> = audit.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "webhook.deleted",
            "webhook.secret_rotated",
            "webhook.updated",
            "webhook.created"
        ]
    );
    assert!(audit.text.contains("https://hooks.example.com") && !audit.text.contains("token=abc"));
}

#[tokio::test]
async fn bad_endpoints_are_refused_with_the_field_named() {
    let app = TestApp::new().await; // the default policy: https only, public targets only
    for (body, why) in [
        (
            json!({"url": "http://hooks.example.com/", "events": ["*"]}),
            "must use https",
        ),
        (
            json!({"url": "https://127.0.0.1/", "events": ["*"]}),
            "inside",
        ),
        (
            json!({"url": "https://10.0.0.8:8443/", "events": ["*"]}),
            "inside",
        ),
        (
            json!({"url": "https://169.254.169.254/latest/meta-data", "events": ["*"]}),
            "inside",
        ),
        (json!({"url": "https://[::1]/", "events": ["*"]}), "inside"),
        (
            json!({"url": "https://localhost:9000/", "events": ["*"]}),
            "inside",
        ),
        (
            json!({"url": "https://user:pw@hooks.example.com/", "events": ["*"]}),
            "password",
        ),
        (
            json!({"url": "hooks.example.com", "events": ["*"]}),
            "absolute",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": []}),
            "at least one",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["key.made"]}),
            "unknown",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["*", "key.created"]}),
            "alone",
        ),
    ] {
        let response = app
            .post("/v1/webhooks")
            .key(&app.admin_key)
            .json(body.clone())
            .send()
            .await;
        let problem = response.assert_problem(422, "validation_failed");
        assert!(problem.to_string().contains(why), "{body}: {problem}");
    }
    app.post("/v1/webhooks")
        .key(&app.admin_key)
        .json(json!({"url": "https://hooks.example.com/", "events": ["*"], "secret": "mine"}))
        .send()
        .await
        .assert_problem(400, "invalid_json");
    // Nothing was made.
    let listed = app
        .get("/v1/webhooks")
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    assert_eq!(listed.json()["data"], json!([]));
}

#[tokio::test]
async fn webhooks_need_their_scopes_and_stay_in_their_organization() {
    let app = TestApp::with_config(config()).await;
    let made = create_webhook(&app, "https://hooks.example.com/", json!(["*"])).await;
    let id = made["id"].as_str().unwrap();
    let reader = app
        .create_key(json!({"name": "Reader", "permissions": ["webhooks:read"]}))
        .await;
    let reader = reader["key"].as_str().unwrap();
    app.get("/v1/webhooks").key(reader).send().await.expect(200);
    app.get(&format!("/v1/webhooks/{id}/deliveries"))
        .key(reader)
        .send()
        .await
        .expect(200);
    app.post("/v1/webhooks")
        .key(reader)
        .json(json!({"url": "https://hooks.example.com/", "events": ["*"]}))
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
    app.post(&format!("/v1/webhooks/{id}/test"))
        .key(reader)
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
    let keys_only = app
        .create_key(json!({"name": "Keys", "permissions": ["keys:read"]}))
        .await;
    app.get("/v1/webhooks")
        .key(keys_only["key"].as_str().unwrap())
        .send()
        .await
        .assert_problem(403, "insufficient_scope");

    let other = app.other_organization().await;
    let listed = app.get("/v1/webhooks").key(&other).send().await.expect(200);
    assert_eq!(listed.json()["data"], json!([]));
    for (method, path) in [
        ("GET", format!("/v1/webhooks/{id}")),
        ("PATCH", format!("/v1/webhooks/{id}")),
        ("DELETE", format!("/v1/webhooks/{id}")),
        ("POST", format!("/v1/webhooks/{id}/rotate-secret")),
        ("POST", format!("/v1/webhooks/{id}/test")),
        ("GET", format!("/v1/webhooks/{id}/deliveries")),
    ] {
        let call = app.call(method.parse().unwrap(), &path).key(&other);
        let call = if method == "PATCH" {
            call.json(json!({"enabled": false}))
        } else {
            call
        };
        call.send().await.assert_problem(404, "not_found");
    }
    // Untouched.
    let one = app
        .get(&format!("/v1/webhooks/{id}"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(one.expect(200).json()["enabled"], true);
}

#[tokio::test]
async fn changes_are_delivered_signed_with_the_record_and_no_secret() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    let made = create_webhook(&app, &receiver.url, json!(["*"])).await;
    let secret = made["secret"].as_str().unwrap();
    let key = app.create_key(json!({"name": "Billing"})).await;
    app.act_on_key(&key, "disable").await;
    app.act_on_key(&key, "enable").await;
    app.act_on_key(&key, "revoke").await;
    let sender = deliverer(&app);
    assert_eq!(sender.run_once().await.unwrap(), 4);
    let mut types = receiver.types();
    types.sort();
    assert_eq!(
        types,
        ["key.created", "key.disabled", "key.enabled", "key.revoked"]
    );
    for ((headers, body), (_, raw)) in receiver
        .messages()
        .iter()
        .zip(receiver.received.lock().unwrap().iter())
    {
        assert_signed(headers, raw, secret);
        assert!(headers["webhook-id"].to_str().unwrap().starts_with("msg_"));
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["data"]["key_id"], key["key_id"]);
        assert!(body["timestamp"].is_string());
        // The record, never a secret.
        assert!(!raw.contains(key["key"].as_str().unwrap()));
        assert!(!raw.contains(key["client_secret"].as_str().unwrap()));
    }
    // Nothing more is due, and the deliveries say so.
    assert_eq!(sender.run_once().await.unwrap(), 0);
    let id = made["id"].as_str().unwrap();
    let deliveries = app
        .get(&format!("/v1/webhooks/{id}/deliveries"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    let data = deliveries["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    assert_eq!(data[0]["event_type"], "key.revoked");
    for delivery in data {
        assert_eq!(delivery["status"], "delivered");
        assert_eq!(delivery["attempts"][0]["response_status"], 200);
        assert_eq!(
            delivery["attempts"][0]["response_excerpt"],
            "answer from the receiver"
        );
    }
    // Paged.
    let page = app
        .get(&format!("/v1/webhooks/{id}/deliveries?limit=3"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!(
            "/v1/webhooks/{id}/deliveries?limit=3&cursor={cursor}"
        ))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
}

#[tokio::test]
async fn an_endpoint_hears_only_its_event_types_and_a_test_whatever_they_are() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    let made = create_webhook(&app, &receiver.url, json!(["key.revoked"])).await;
    let key = app.create_key(json!({"name": "Quiet"})).await;
    app.act_on_key(&key, "revoke").await;
    let queued = app
        .post(&format!(
            "/v1/webhooks/{}/test",
            made["id"].as_str().unwrap()
        ))
        .key(&app.admin_key)
        .send()
        .await
        .expect(202)
        .json();
    deliverer(&app).run_once().await.unwrap();
    let mut types = receiver.types();
    types.sort();
    assert_eq!(types, ["key.revoked", "webhook.test"]);
    let test = receiver
        .messages()
        .into_iter()
        .find(|(_, b)| b["type"] == "webhook.test")
        .unwrap();
    assert_eq!(test.0["webhook-id"].to_str().unwrap(), queued["message_id"]);
}

#[tokio::test]
async fn failures_are_retried_on_the_schedule_with_the_same_id() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    let made = create_webhook(&app, &receiver.url, json!(["key.created"])).await;
    receiver.answer(&[500, 503]);
    app.create_key(json!({"name": "Retried"})).await;
    let sender = deliverer(&app);
    assert_eq!(sender.run_once().await.unwrap(), 1);
    // Not due again before its wait (10 s, a fifth either way).
    app.clock.advance(time::Duration::seconds(7));
    assert_eq!(sender.run_once().await.unwrap(), 0);
    app.clock.advance(time::Duration::seconds(6));
    assert_eq!(sender.run_once().await.unwrap(), 1);
    app.clock.advance(time::Duration::seconds(121));
    assert_eq!(sender.run_once().await.unwrap(), 1);
    let messages = receiver.messages();
    assert_eq!(messages.len(), 3);
    let ids: Vec<&str> = messages
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");

    let id = made["id"].as_str().unwrap();
    let deliveries = app
        .get(&format!("/v1/webhooks/{id}/deliveries"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    let delivery = &deliveries["data"][0];
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["message_id"], ids[0]);
    let statuses: Vec<&Value> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["response_status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(503), &json!(200)]);
    // The endpoint answers again: no failing streak.
    let one = app
        .get(&format!("/v1/webhooks/{id}"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(one.expect(200).json()["failing_since"], Value::Null);
}

#[tokio::test]
async fn a_spent_schedule_fails_the_message_and_shows_the_next_retry_meanwhile() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    let made = create_webhook(&app, &receiver.url, json!(["*"])).await;
    receiver.answer(&[500, 500, 500]);
    app.create_key(json!({"name": "Doomed"})).await;
    let sender = deliverer(&app);
    sender.run_once().await.unwrap();
    let id = made["id"].as_str().unwrap();
    let read = || async {
        app.get(&format!("/v1/webhooks/{id}/deliveries"))
            .key(&app.admin_key)
            .send()
            .await
            .expect(200)
            .json()["data"][0]
            .clone()
    };
    let pending = read().await;
    assert_eq!(pending["status"], "pending");
    assert!(pending["next_attempt_at"].is_string());
    let webhook = app
        .get(&format!("/v1/webhooks/{id}"))
        .key(&app.admin_key)
        .send()
        .await;
    assert!(webhook.expect(200).json()["failing_since"].is_string());
    app.clock.advance(time::Duration::seconds(13));
    sender.run_once().await.unwrap();
    app.clock.advance(time::Duration::seconds(121));
    sender.run_once().await.unwrap();
    let failed = read().await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["next_attempt_at"], Value::Null);
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 3);
    app.clock.advance(time::Duration::days(1));
    assert_eq!(sender.run_once().await.unwrap(), 0);
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_later_events_are_not_queued() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    let made = create_webhook(&app, &receiver.url, json!(["*"])).await;
    let id = made["id"].as_str().unwrap();
    receiver.answer(&[410]);
    app.create_key(json!({"name": "Gone"})).await;
    let sender = deliverer(&app);
    sender.run_once().await.unwrap();
    let webhook = app
        .get(&format!("/v1/webhooks/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(webhook["enabled"], false);
    assert_eq!(webhook["disabled_reason"], "gone");
    let audit = app
        .get(&format!(
            "/v1/audit-log?target_id={id}&action=webhook.disabled"
        ))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(audit["data"][0]["actor"], "keyward");
    assert_eq!(audit["data"][0]["details"]["reason"], "gone");
    app.create_key(json!({"name": "Unheard"})).await;
    app.clock.advance(time::Duration::hours(1));
    assert_eq!(sender.run_once().await.unwrap(), 0);
    assert_eq!(receiver.messages().len(), 1);
    // Enabled again, it hears new events.
    app.patch(&format!("/v1/webhooks/{id}"))
        .key(&app.admin_key)
        .json(json!({"enabled": true}))
        .send()
        .await
        .expect(200);
    app.create_key(json!({"name": "Heard"})).await;
    assert_eq!(sender.run_once().await.unwrap(), 1);
}

#[tokio::test]
async fn an_endpoint_failing_for_days_is_disabled() {
    let mut config = config();
    config.service.webhooks.retry_schedule = vec![Duration::from_secs(2 * 86_400); 5];
    config.service.webhooks.disable_after = Duration::from_secs(3 * 86_400);
    let app = TestApp::with_config(config).await;
    let receiver = Receiver::start().await;
    let made = create_webhook(&app, &receiver.url, json!(["*"])).await;
    receiver.answer(&[500; 10]);
    app.create_key(json!({"name": "Failing"})).await;
    let sender = deliverer(&app);
    sender.run_once().await.unwrap();
    app.clock.advance(time::Duration::days(3));
    sender.run_once().await.unwrap();
    let webhook = app
        .get(&format!("/v1/webhooks/{}", made["id"].as_str().unwrap()))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(webhook["enabled"], false);
    assert_eq!(webhook["disabled_reason"], "failing");
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign_until_the_overlap_ends() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    let made = create_webhook(&app, &receiver.url, json!(["key.created"])).await;
    let old = made["secret"].as_str().unwrap();
    let id = made["id"].as_str().unwrap();
    let rotated = app
        .post(&format!("/v1/webhooks/{id}/rotate-secret"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    let new = rotated["secret"].as_str().unwrap();
    keyward_store::testing::record_secrets([new]);
    app.create_key(json!({"name": "During"})).await;
    let sender = deliverer(&app);
    sender.run_once().await.unwrap();
    let (headers, raw) = receiver.received.lock().unwrap()[0].clone();
    assert_eq!(
        headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    assert_signed(&headers, &raw, old);
    assert_signed(&headers, &raw, new);

    app.clock.advance(time::Duration::hours(25));
    app.create_key(json!({"name": "After"})).await;
    sender.run_once().await.unwrap();
    let (headers, raw) = receiver.received.lock().unwrap()[1].clone();
    assert_eq!(
        headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    assert_signed(&headers, &raw, new);
}

#[tokio::test]
async fn two_deliverers_on_one_database_attempt_each_message_once() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    create_webhook(&app, &receiver.url, json!(["key.created"])).await;
    for n in 0..40 {
        app.create_key(json!({"name": format!("Key {n}")})).await;
    }
    // A second node over the same database.
    let store = Arc::new(
        keyward_store::SqlStore::open(app.database.url())
            .await
            .unwrap(),
    );
    // The same settings, the master key among them.
    let settings = (*app.state.config).clone();
    let other = keyward_server::AppState::new(store, Arc::new(app.clock.clone()), settings);
    let (one, two) = (
        deliverer(&app),
        Deliverer::new(other.service.clone()).unwrap(),
    );
    let (mut first, mut second) = (0, 0);
    loop {
        let (a, b) = tokio::join!(one.run_once(), two.run_once());
        let (a, b) = (a.unwrap(), b.unwrap());
        if a + b == 0 {
            break;
        }
        (first, second) = (first + a, second + b);
    }
    assert_eq!(first + second, 40);
    let mut ids: Vec<String> = receiver
        .messages()
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 40);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "a message was sent twice");
}

#[tokio::test]
async fn expiry_notices_are_sent_once_per_threshold_across_restarts_and_nodes() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    create_webhook(&app, &receiver.url, json!(["key.expiring", "key.expired"])).await;
    let expires = rfc3339(app.clock.now() + time::Duration::days(8));
    let key = app
        .create_key(json!({"name": "Expiring", "expires_at": expires}))
        .await;
    // A second node over the same database, and later a restarted first one.
    let node = |app: &TestApp| {
        let app_url = app.database.url().to_owned();
        let clock = app.clock.clone();
        let settings = (*app.state.config).clone();
        async move {
            let store = Arc::new(keyward_store::SqlStore::open(&app_url).await.unwrap());
            keyward_server::AppState::new(store, Arc::new(clock), settings)
        }
    };
    let other = node(&app).await;
    let scan_both = || async {
        let (a, b) = tokio::join!(
            app.state.service.scan_notices(),
            other.service.scan_notices()
        );
        a.unwrap().expiries + b.unwrap().expiries
    };
    assert_eq!(scan_both().await, 0, "eight days ahead: nothing yet");
    app.clock.advance(time::Duration::hours(36)); // 6.5 days left
    assert_eq!(scan_both().await, 1);
    assert_eq!(scan_both().await, 0);
    let restarted = node(&app).await;
    assert_eq!(restarted.service.scan_notices().await.unwrap().expiries, 0);
    app.clock.advance(time::Duration::days(6)); // half a day left
    assert_eq!(scan_both().await, 1);
    assert_eq!(restarted.service.scan_notices().await.unwrap().expiries, 0);
    app.clock.advance(time::Duration::days(1)); // past
    assert_eq!(scan_both().await, 1);
    app.clock.advance(time::Duration::days(1));
    assert_eq!(scan_both().await, 0);
    assert_eq!(restarted.service.scan_notices().await.unwrap().expiries, 0);

    deliverer(&app).run_once().await.unwrap();
    let messages = receiver.messages();
    let notices: Vec<(String, Value)> = messages
        .iter()
        .map(|(_, b)| {
            (
                b["type"].as_str().unwrap().to_owned(),
                b["data"]["notice"].clone(),
            )
        })
        .collect();
    assert_eq!(notices.len(), 3, "{notices:?}");
    assert!(notices.contains(&("key.expiring".into(), json!("7d"))));
    assert!(notices.contains(&("key.expiring".into(), json!("1d"))));
    assert!(notices.iter().any(|(t, _)| t == "key.expired"));
    assert!(
        messages
            .iter()
            .all(|(_, b)| b["data"]["key_id"] == key["key_id"])
    );
    let audit = app
        .get(&format!(
            "/v1/audit-log?target_id={}",
            key["key_id"].as_str().unwrap()
        ))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    let expiring = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "key.expiring" || e["action"] == "key.expired")
        .count();
    assert_eq!(expiring, 3);
}

#[tokio::test]
async fn a_key_made_with_hours_to_live_gets_only_the_one_day_notice() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    create_webhook(&app, &receiver.url, json!(["key.expiring"])).await;
    let expires = rfc3339(app.clock.now() + time::Duration::hours(5));
    app.create_key(json!({"name": "Short", "expires_at": expires}))
        .await;
    let scanned = app.state.service.scan_notices().await.unwrap();
    assert_eq!(scanned.expiries, 1);
    deliverer(&app).run_once().await.unwrap();
    let messages = receiver.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1["data"]["notice"], "1d");
}

#[tokio::test]
async fn a_rule_that_refuses_requests_is_announced_at_most_once_per_interval() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    create_webhook(
        &app,
        &receiver.url,
        json!(["ip_rule.created", "ip_rule.blocked"]),
    )
    .await;
    let rule = app
        .post("/v1/ip-rules")
        .key(&app.admin_key)
        .json(json!({"ip_network": "203.0.113.9", "type": "deny"}))
        .send()
        .await
        .expect(201)
        .json();
    let key = app.create_key(json!({"name": "Used"})).await;
    let key = key["key"].as_str().unwrap();
    let refused = || async {
        let response = app
            .get("/v1/authorize")
            .key(key)
            .peer("203.0.113.9")
            .send()
            .await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{}", response.text);
        app.state.engine.flush_usage().await.unwrap();
    };
    refused().await;
    assert_eq!(app.state.service.scan_notices().await.unwrap().blocks, 1);
    assert_eq!(app.state.service.scan_notices().await.unwrap().blocks, 0);
    app.clock.advance(time::Duration::minutes(10));
    refused().await;
    assert_eq!(
        app.state.service.scan_notices().await.unwrap().blocks,
        0,
        "within the hour"
    );
    app.clock.advance(time::Duration::minutes(51));
    assert_eq!(app.state.service.scan_notices().await.unwrap().blocks, 1);
    // Allowed requests announce nothing.
    app.clock.advance(time::Duration::hours(2));
    app.get("/v1/authorize")
        .key(key)
        .peer("198.51.100.7")
        .send()
        .await
        .expect(200);
    app.state.engine.flush_usage().await.unwrap();
    assert_eq!(app.state.service.scan_notices().await.unwrap().blocks, 0);

    deliverer(&app).run_once().await.unwrap();
    let types = receiver.types();
    assert_eq!(types.iter().filter(|t| *t == "ip_rule.created").count(), 1);
    assert_eq!(types.iter().filter(|t| *t == "ip_rule.blocked").count(), 2);
    let blocked = receiver
        .messages()
        .into_iter()
        .find(|(_, b)| b["type"] == "ip_rule.blocked")
        .unwrap();
    assert_eq!(blocked.1["data"]["id"], rule["id"]);
    assert!(blocked.1["data"]["blocked_at"].is_string());
}

#[tokio::test]
async fn a_target_inside_the_network_is_refused_at_each_attempt_too() {
    // Set where private targets were allowed; sent by a node whose policy no longer does.
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let made = create_webhook(&app, &by_name, json!(["key.created"])).await;
    create_webhook(&app, &receiver.url, json!(["key.created"])).await;
    app.create_key(json!({"name": "Unsent"})).await;
    let mut strict = (*app.state.config).clone();
    strict.service.webhooks.targets = TargetPolicy {
        allow_private: false,
        allow_http: true,
    };
    let store = Arc::new(
        keyward_store::SqlStore::open(app.database.url())
            .await
            .unwrap(),
    );
    let node = keyward_server::AppState::new(store, Arc::new(app.clock.clone()), strict);
    assert_eq!(
        Deliverer::new(node.service.clone())
            .unwrap()
            .run_once()
            .await
            .unwrap(),
        2
    );
    assert!(
        receiver.messages().is_empty(),
        "a message reached an inward target"
    );
    let deliveries = app
        .get(&format!(
            "/v1/webhooks/{}/deliveries",
            made["id"].as_str().unwrap()
        ))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    let attempt = &deliveries["data"][0]["attempts"][0];
    assert_eq!(attempt["response_status"], Value::Null);
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .contains("inside this deployment's network"),
        "{attempt}"
    );
    assert_eq!(deliveries["data"][0]["status"], "pending");
}

#[tokio::test]
async fn a_host_name_that_resolves_inward_is_refused_when_sent() {
    // This machine's own name, where it resolves to loopback only: no rule on the name
    // refuses it, only the addresses it resolves to.
    let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") else {
        eprintln!("NOTICE: no host name to resolve; the resolver's refusal is not checked");
        return;
    };
    let name = name.trim().to_owned();
    let loopback_only = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .map(|found| found.collect::<Vec<_>>())
        .is_ok_and(|found| !found.is_empty() && found.iter().all(|a| a.ip().is_loopback()));
    if !loopback_only || name == "localhost" {
        eprintln!("NOTICE: {name} does not resolve to loopback only; not checked here");
        return;
    }
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    let made = create_webhook(
        &app,
        &receiver.url.replace("127.0.0.1", &name),
        json!(["*"]),
    )
    .await;
    app.create_key(json!({"name": "Unsent"})).await;
    let mut strict = (*app.state.config).clone();
    strict.service.webhooks.targets.allow_private = false;
    let store = Arc::new(
        keyward_store::SqlStore::open(app.database.url())
            .await
            .unwrap(),
    );
    let node = keyward_server::AppState::new(store, Arc::new(app.clock.clone()), strict);
    Deliverer::new(node.service.clone())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    assert!(receiver.messages().is_empty());
    let deliveries = app
        .get(&format!(
            "/v1/webhooks/{}/deliveries",
            made["id"].as_str().unwrap()
        ))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    let error = deliveries["data"][0]["attempts"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("resolves only to addresses inside"),
        "{error}"
    );
    // The same node's policy, allowing them, reaches it.
    deliverer(&app).run_once().await.unwrap();
    app.clock.advance(time::Duration::seconds(13));
    deliverer(&app).run_once().await.unwrap();
    assert_eq!(receiver.messages().len(), 1);
}

#[tokio::test]
async fn hearing_records_needs_the_scope_to_read_them() {
    let app = TestApp::with_config(config()).await;
    let only_webhooks = app
        .create_key(json!({"name": "Hooks", "permissions": ["webhooks:write"]}))
        .await;
    let with_keys = app
        .create_key(
            json!({"name": "Hooks and keys", "permissions": ["webhooks:write", "keys:read"]}),
        )
        .await;
    let create = |key: &Value, events: Value| {
        let key = key["key"].as_str().unwrap().to_owned();
        let app = &app;
        async move {
            app.post("/v1/webhooks")
                .key(&key)
                .json(json!({"url": "https://hooks.example.com/", "events": events}))
                .send()
                .await
        }
    };
    for events in [
        json!(["*"]),
        json!(["key.revoked"]),
        json!(["ip_rule.blocked"]),
    ] {
        let refused = create(&only_webhooks, events.clone()).await;
        refused.assert_problem(403, "insufficient_scope");
    }
    let made = create(&with_keys, json!(["key.revoked"]))
        .await
        .expect(201)
        .json();
    keyward_store::testing::record_secrets([made["secret"].as_str().unwrap()]);
    create(&with_keys, json!(["*"]))
        .await
        .assert_problem(403, "insufficient_scope");
    // Nor by changing what an endpoint hears.
    app.patch(&format!("/v1/webhooks/{}", made["id"].as_str().unwrap()))
        .key(with_keys["key"].as_str().unwrap())
        .json(json!({"events": ["ip_rule.created"]}))
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
}

#[tokio::test]
async fn an_organization_has_at_most_twenty_endpoints() {
    let app = TestApp::with_config(config()).await;
    for n in 0..20 {
        create_webhook(
            &app,
            &format!("https://hooks.example.com/{n}"),
            json!(["*"]),
        )
        .await;
    }
    app.post("/v1/webhooks")
        .key(&app.admin_key)
        .json(json!({"url": "https://hooks.example.com/21", "events": ["*"]}))
        .send()
        .await
        .assert_problem(409, "webhook_limit");
    // Another organization has its own twenty.
    let other = app.other_organization().await;
    let made = app
        .post("/v1/webhooks")
        .key(&other)
        .json(json!({"url": "https://hooks.example.com/other", "events": ["*"]}))
        .send()
        .await
        .expect(201)
        .json();
    keyward_store::testing::record_secrets([made["secret"].as_str().unwrap()]);
}

#[tokio::test]
async fn a_key_with_days_to_live_gets_the_seven_day_notice_then_the_one_day_notice() {
    let app = TestApp::with_config(config()).await;
    let receiver = Receiver::start().await;
    create_webhook(&app, &receiver.url, json!(["key.expiring"])).await;
    let expires = rfc3339(app.clock.now() + time::Duration::days(3));
    app.create_key(json!({"name": "Days", "expires_at": expires}))
        .await;
    assert_eq!(app.state.service.scan_notices().await.unwrap().expiries, 1);
    app.clock.advance(time::Duration::days(1));
    assert_eq!(app.state.service.scan_notices().await.unwrap().expiries, 0);
    app.clock.advance(time::Duration::hours(25));
    assert_eq!(app.state.service.scan_notices().await.unwrap().expiries, 1);
    deliverer(&app).run_once().await.unwrap();
    let notices: Vec<Value> = receiver
        .messages()
        .iter()
        .map(|(_, b)| b["data"]["notice"].clone())
        .collect();
    assert_eq!(notices.len(), 2);
    assert!(notices.contains(&json!("7d")) && notices.contains(&json!("1d")));
}

#[tokio::test]
async fn expired_keys_already_told_do_not_hold_back_the_others() {
    // A scan reads only keys whose due notice is missing, so the ones already told take no
    // place in its batch, whatever their number.
    let app = TestApp::with_config(config()).await;
    let past = rfc3339(app.clock.now() + time::Duration::minutes(1));
    for n in 0..3 {
        app.create_key(json!({"name": format!("Old {n}"), "expires_at": past}))
            .await;
    }
    app.clock.advance(time::Duration::minutes(2));
    assert_eq!(app.state.service.scan_notices().await.unwrap().expiries, 3);
    let later = rfc3339(app.clock.now() + time::Duration::hours(2));
    app.create_key(json!({"name": "New", "expires_at": later}))
        .await;
    assert_eq!(app.state.service.scan_notices().await.unwrap().expiries, 1);
    // Delivered and failed messages are pruned; the notices are not, so nothing repeats.
    app.clock.advance(time::Duration::days(60));
    app.state.service.webhooks().prune().await.unwrap();
    assert_eq!(
        app.state.service.scan_notices().await.unwrap().expiries,
        1,
        "the new key's expiry"
    );
    assert_eq!(app.state.service.scan_notices().await.unwrap().expiries, 0);
}

#[tokio::test]
async fn a_cursor_that_is_not_one_is_a_bad_query() {
    let app = TestApp::with_config(config()).await;
    let made = create_webhook(&app, "https://hooks.example.com/", json!(["*"])).await;
    let id = made["id"].as_str().unwrap();
    for cursor in ["", "api_key_01m91ew689ejgbbe2j6gm9g2w8", "msg_"] {
        app.get(&format!("/v1/webhooks/{id}/deliveries?cursor={cursor}"))
            .key(&app.admin_key)
            .send()
            .await
            .assert_problem(400, "invalid_query");
    }
    for events in [json!(["*", "*"]), json!(["key.created", "key.created"])] {
        app.post("/v1/webhooks")
            .key(&app.admin_key)
            .json(json!({"url": "https://hooks.example.com/", "events": events}))
            .send()
            .await
            .assert_problem(422, "validation_failed");
    }
}
