//! Leak reports (`POST /v1/leaks`): anyone reports keys found in public; a live one is
//! revoked, disabled or flagged as configured, audited as `key.exposed`, and the answer
//! never says what was found.

use axum::http::StatusCode;
use keyward_server::ServerConfig;
use keyward_service::leaks::{LeakAction, LeakConfig};
use serde_json::{Value, json};

use crate::support::{TestApp, TestResponse};

const SOURCE: &str = "https://paste.example/abc";

async fn app_with(action: LeakAction, reports_per_minute: u32) -> TestApp {
    let mut config = ServerConfig::default();
    config.service.leaks = LeakConfig {
        action,
        reports: keyward_engine::throttle::ThrottleConfig {
            threshold: reports_per_minute,
            ..LeakConfig::default().reports
        },
    };
    TestApp::with_config(config).await
}

async fn report(app: &TestApp, keys: &[&str], from: &str) -> TestResponse {
    app.post("/v1/leaks")
        .peer(from)
        .json(json!({"keys": keys, "source": SOURCE}))
        .send()
        .await
}

async fn audit_of(app: &TestApp, id: &str) -> Vec<Value> {
    app.get(&format!("/v1/audit-log?target_id={id}"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json()["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn status_of(app: &TestApp, key: &str) -> StatusCode {
    app.get("/v1/authorize").key(key).send().await.status
}

#[tokio::test]
async fn a_reported_live_key_is_revoked_and_the_answer_says_nothing() {
    let app = app_with(LeakAction::Revoke, 100).await;
    let leaked = app.create_key(json!({"name": "Leaked"})).await;
    let (key, id) = (
        leaked["key"].as_str().unwrap(),
        leaked["key_id"].as_str().unwrap(),
    );
    // Another deployment's key: well formed, checksum right, unknown here.
    let foreign = {
        let other = TestApp::new().await;
        other.admin_key.clone()
    };
    let found = report(&app, &[key, "not a key"], "203.0.113.7").await;
    let unknown = report(&app, &[&foreign, "not a key"], "203.0.113.7").await;
    for answer in [&found, &unknown] {
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
        assert_eq!(answer.json(), json!({"received": 2}));
    }
    assert_eq!(status_of(&app, key).await, StatusCode::UNAUTHORIZED);
    let events = audit_of(&app, id).await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.revoked", "key.exposed", "key.created"]);
    assert_eq!(events[1]["actor"], "leak_report");
    assert_eq!(events[1]["source_ip"], "203.0.113.7");
    assert_eq!(events[1]["details"]["source"], SOURCE);
    assert_eq!(events[1]["details"]["action"], "revoke");
    // Reported again: already revoked, nothing more happens.
    report(&app, &[key], "203.0.113.7").await.expect(202);
    assert_eq!(audit_of(&app, id).await.len(), 3);
    // The reporting addresses' own keys are untouched.
    assert_eq!(status_of(&app, &app.admin_key).await, StatusCode::OK);
}

#[tokio::test]
async fn the_deployment_may_disable_or_only_flag() {
    for (action, after, word) in [
        (LeakAction::Disable, StatusCode::UNAUTHORIZED, "disable"),
        (LeakAction::Flag, StatusCode::OK, "flag"),
    ] {
        let app = app_with(action, 100).await;
        let leaked = app.create_key(json!({"name": "Leaked"})).await;
        let (key, id) = (
            leaked["key"].as_str().unwrap(),
            leaked["key_id"].as_str().unwrap(),
        );
        report(&app, &[key], "203.0.113.7").await.expect(202);
        assert_eq!(status_of(&app, key).await, after, "{word}");
        let events = audit_of(&app, id).await;
        let exposed = events
            .iter()
            .find(|e| e["action"] == "key.exposed")
            .unwrap();
        assert_eq!(exposed["details"]["action"], word);
    }
}

#[tokio::test]
async fn reports_are_throttled_per_address_and_bounded() {
    let app = app_with(LeakAction::Revoke, 2).await;
    for _ in 0..2 {
        report(&app, &["x"], "198.51.100.1").await.expect(202);
    }
    let refused = report(&app, &["x"], "198.51.100.1").await;
    refused.assert_problem(429, "too_many_failures");
    assert!(refused.header("retry-after").is_some());
    report(&app, &["x"], "198.51.100.2").await.expect(202);

    let many: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let too_many = report(&app, &many, "198.51.100.3").await;
    assert_eq!(
        too_many.assert_problem(422, "validation_failed")["errors"][0]["field"],
        "keys"
    );
    let no_source = app
        .post("/v1/leaks")
        .peer("198.51.100.3")
        .json(json!({"keys": ["x"], "source": ""}))
        .send()
        .await;
    assert_eq!(
        no_source.assert_problem(422, "validation_failed")["errors"][0]["field"],
        "source"
    );
}
