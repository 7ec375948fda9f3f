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
        github_keys: None,
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

mod github {
    use std::sync::Arc;

    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use keyward_service::leaks::SigningKeys;

    use super::*;

    /// A key pair and the document publishing its public half as `k1`, as GitHub does.
    fn partner() -> (EcdsaKeyPair, SigningKeys) {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let der = pair.public_key().as_der().unwrap();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der.as_ref())
        );
        let document = json!({"public_keys": [
            {"key_identifier": "k1", "key": pem, "is_current": true}
        ]});
        (pair, SigningKeys::from_json(&document.to_string()).unwrap())
    }

    async fn send(app: &TestApp, body: &str, id: &str, signature: &str) -> TestResponse {
        app.post("/v1/leaks/github")
            .header("github-public-key-identifier", id)
            .header("github-public-key-signature", signature)
            .raw("application/json", body.to_owned())
            .send()
            .await
    }

    fn sign(pair: &EcdsaKeyPair, body: &str) -> String {
        let signature = pair.sign(&SystemRandom::new(), body.as_bytes()).unwrap();
        STANDARD.encode(signature.as_ref())
    }

    #[tokio::test]
    async fn a_signed_report_revokes_and_labels_and_a_bad_signature_changes_nothing() {
        let (pair, keys) = partner();
        let mut config = ServerConfig::default();
        config.service.leaks.github_keys = Some(Arc::new(keys));
        let app = TestApp::with_config(config).await;
        let leaked = app.create_key(json!({"name": "Pushed to GitHub"})).await;
        let (key, id) = (
            leaked["key"].as_str().unwrap(),
            leaked["key_id"].as_str().unwrap(),
        );
        let unknown = TestApp::new().await.admin_key.clone();
        // An endpoint of the organization hears of it.
        let webhook = app
            .post("/v1/webhooks")
            .key(&app.admin_key)
            .json(json!({"url": "https://hooks.example.com/k", "events": ["key.exposed", "key.revoked"]}))
            .send()
            .await
            .expect(201)
            .json();
        keyward_store::testing::record_secrets([webhook["secret"].as_str().unwrap()]);
        let queued = || async {
            app.get(&format!(
                "/v1/webhooks/{}/deliveries",
                webhook["id"].as_str().unwrap()
            ))
            .key(&app.admin_key)
            .send()
            .await
            .expect(200)
            .json()["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["event_type"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let body = json!([
            {"token": key, "type": "keyward_api_key",
             "url": "https://github.com/o/r/blob/abc/config.py", "source": "content"},
            {"token": unknown, "type": "keyward_api_key",
             "url": "https://github.com/o/r/commit/def", "source": "commit"},
        ])
        .to_string();
        let good = sign(&pair, &body);

        // Tampered, signed by an unknown key, or not signed: refused, nothing done.
        let tampered = body.replace("config.py", "other.py");
        let (other_pair, _) = partner();
        for (text, key_id, signature) in [
            (tampered.as_str(), "k1", good.as_str()),
            (body.as_str(), "k2", good.as_str()),
            (body.as_str(), "k1", &sign(&other_pair, &body)),
            (body.as_str(), "k1", "not base64!"),
            (body.as_str(), "", ""),
        ] {
            send(&app, text, key_id, signature)
                .await
                .assert_problem(403, "signature_invalid");
        }
        assert_eq!(status_of(&app, key).await, StatusCode::OK);
        assert!(queued().await.is_empty());

        let answer = send(&app, &body, "k1", &good).await.expect(200).json();
        assert_eq!(queued().await, ["key.revoked", "key.exposed"]);
        let hash = |token: &str| {
            keyward_core::digest::to_hex(keyward_core::digest::LookupDigest::of(token).as_bytes())
        };
        assert_eq!(
            answer,
            json!([
                {"token_hash": hash(key), "token_type": "keyward_api_key", "label": "true_positive"},
                {"token_hash": hash(&unknown), "token_type": "keyward_api_key", "label": "false_positive"},
            ])
        );
        assert!(
            !answer.to_string().contains(key),
            "the token is not sent back"
        );
        assert_eq!(status_of(&app, key).await, StatusCode::UNAUTHORIZED);
        let events = audit_of(&app, id).await;
        let exposed = events
            .iter()
            .find(|e| e["action"] == "key.exposed")
            .unwrap();
        assert_eq!(exposed["actor"], "secret_scanning");
        assert_eq!(
            exposed["details"]["source"],
            "content https://github.com/o/r/blob/abc/config.py"
        );
    }

    #[tokio::test]
    async fn a_signed_body_of_the_wrong_shape_is_refused_without_repeating_it() {
        let (pair, keys) = partner();
        let mut config = ServerConfig::default();
        config.service.leaks.github_keys = Some(Arc::new(keys));
        let app = TestApp::with_config(config).await;
        // A list of bare tokens: serde would say which string it met.
        let body = json!([app.admin_key]).to_string();
        let refused = send(&app, &body, "k1", &sign(&pair, &body)).await;
        assert_eq!(
            refused.assert_problem(422, "validation_failed")["errors"][0]["field"],
            "body"
        );
        assert!(!refused.text.contains(&app.admin_key), "{}", refused.text);
    }

    #[tokio::test]
    async fn without_trusted_keys_every_report_is_refused() {
        let (pair, _) = partner();
        let app = TestApp::new().await;
        let body = "[]";
        send(&app, body, "k1", &sign(&pair, body))
            .await
            .assert_problem(403, "signature_invalid");
    }
}

#[tokio::test]
async fn a_key_sent_in_the_wrong_shape_is_not_repeated_in_the_answer() {
    let app = app_with(LeakAction::Revoke, 100).await;
    let key = app.admin_key.clone();
    let refused = app
        .post("/v1/leaks")
        .peer("203.0.113.9")
        .json(json!({"keys": key, "source": SOURCE}))
        .send()
        .await;
    refused.assert_problem(400, "invalid_json");
    assert!(
        refused
            .text
            .contains("keys: invalid type: a string, expected a sequence"),
        "{}",
        refused.text
    );
    assert!(!refused.text.contains(&key), "{}", refused.text);
    assert_eq!(status_of(&app, &key).await, StatusCode::OK);
}

#[tokio::test]
async fn a_lookup_says_what_each_secret_of_the_organization_is_and_nothing_of_others() {
    let app = TestApp::new().await;
    let active = app.create_key(json!({"name": "Active"})).await;
    let revoked = app.create_key(json!({"name": "Revoked"})).await;
    app.act_on_key(&revoked, "revoke").await;
    let other = app.other_organization().await;
    let reader = app
        .create_key(json!({"name": "Reader", "permissions": ["keys:read"]}))
        .await;
    let secrets = json!([
        active["key"],
        active["client_secret"],
        revoked["key"],
        other,
        "kw_live_notakeyatall",
    ]);
    let answer = app
        .post("/v1/keys/lookup")
        .key(reader["key"].as_str().unwrap())
        .json(json!({"secrets": secrets}))
        .send()
        .await
        .expect(200)
        .json();
    let results: Vec<(&str, &Value)> = answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["state"].as_str().unwrap(), &r["key_id"]))
        .collect();
    assert_eq!(
        results,
        [
            ("active", &active["key_id"]),
            ("active", &active["key_id"]),
            ("revoked", &revoked["key_id"]),
            // Another organization's live key reads as one no credential has.
            ("unknown", &Value::Null),
            ("unknown", &Value::Null),
        ]
    );
    assert_eq!(answer["data"][1]["kind"], "client_secret");
    // Never the secrets themselves.
    assert!(!answer.to_string().contains(active["key"].as_str().unwrap()));

    let writer = app
        .create_key(json!({"name": "Writer", "permissions": ["keys:write"]}))
        .await;
    app.post("/v1/keys/lookup")
        .key(writer["key"].as_str().unwrap())
        .json(json!({"secrets": []}))
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
    let too_many: Vec<String> = (0..101).map(|n| format!("kw_live_{n}")).collect();
    app.post("/v1/keys/lookup")
        .key(&app.admin_key)
        .json(json!({"secrets": too_many}))
        .send()
        .await
        .assert_problem(422, "validation_failed");
}
