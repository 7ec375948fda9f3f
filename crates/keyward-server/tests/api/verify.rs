//! `POST /v1/keys/verify`: always 200 with `valid` and a stable `code`.

use keyward_core::credential::Environment;
use keyward_core::secret::{KeyPrefix, PlainSecret, SecretKind};
use serde_json::{Value, json};

use crate::support::TestApp;

async fn verifier_key(app: &TestApp) -> String {
    app.create_key(json!({"name": "api server", "permissions": ["keys:verify"]}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn verify(app: &TestApp, caller: &str, body: Value) -> Value {
    let response = app
        .post("/v1/keys/verify")
        .key(caller)
        .json(body)
        .send()
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    response.json()
}

#[tokio::test]
async fn a_valid_key_answers_its_identity() {
    let app = TestApp::new().await;
    let caller = verifier_key(&app).await;
    let created = app
        .create_key(json!({"name": "customer", "permissions": ["dns:*"], "role": "viewer", "metadata": {"plan": "pro"}, "owner_id": "cust-1", "expires_at": "2027-01-01T00:00:00Z"}))
        .await;
    let body = verify(&app, &caller, json!({"key": created["key"], "required_scopes": ["dns:write", "domains:read"], "environment": "live", "client_ip": "192.0.2.1"})).await;
    assert_eq!(body["valid"], true);
    assert_eq!(body["code"], "VALID");
    assert_eq!(body["key_id"], created["key_id"]);
    assert_eq!(body["organization_id"], app.organization_id);
    assert_eq!(body["environment"], "live");
    assert_eq!(
        body["scopes"],
        json!(["read", "dns:*"]),
        "wildcards first, then by resource"
    );
    assert_eq!(body["metadata"], json!({"plan": "pro"}));
    assert_eq!(body["owner_id"], "cust-1");
    assert_eq!(body["expires_at"], "2027-01-01T00:00:00Z");
    assert_eq!(body["name"], "customer");
}

#[tokio::test]
async fn every_outcome_code_is_answered_with_200() {
    let app = TestApp::new().await;
    let caller = verifier_key(&app).await;
    let key = |body: Value| async { app.create_key(body).await };
    let plain = key(json!({"name": "plain", "permissions": ["dns:read"]})).await;
    let disabled = key(json!({"name": "off"})).await;
    app.act_on_key(&disabled, "disable").await;
    let revoked = key(json!({"name": "gone"})).await;
    app.act_on_key(&revoked, "revoke").await;
    let expiring = key(json!({"name": "soon", "expires_at": "2026-06-01T12:30:00Z"})).await;
    let future = key(json!({"name": "later", "not_before": "2026-06-02T00:00:00Z"})).await;
    let fenced = key(json!({"name": "fenced", "ip_allowlist": ["192.0.2.0/24"]})).await;
    let test_env = key(json!({"name": "test", "environment": "test"})).await;
    app.clock.advance(time::Duration::hours(1));
    let unknown =
        PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(Environment::Live));

    for (body, code) in [
        (json!({"key": plain["key"]}), "VALID"),
        (json!({"key": "kw_live_typo"}), "MALFORMED"),
        (json!({"key": plain["client_secret"]}), "MALFORMED"),
        (json!({"key": unknown.expose()}), "NOT_FOUND"),
        (json!({"key": disabled["key"]}), "DISABLED"),
        (json!({"key": revoked["key"]}), "REVOKED"),
        (json!({"key": expiring["key"]}), "EXPIRED"),
        (json!({"key": future["key"]}), "NOT_YET_VALID"),
        (
            json!({"key": fenced["key"], "client_ip": "198.51.100.1"}),
            "IP_DENIED",
        ),
        (json!({"key": fenced["key"]}), "IP_DENIED"),
        (
            json!({"key": fenced["key"], "client_ip": "192.0.2.7"}),
            "VALID",
        ),
        (
            json!({"key": plain["key"], "required_scopes": ["dns:write"]}),
            "INSUFFICIENT_SCOPE",
        ),
        (
            json!({"key": test_env["key"], "environment": "live"}),
            "ENVIRONMENT_MISMATCH",
        ),
        (
            json!({"key": test_env["key"], "environment": "test"}),
            "VALID",
        ),
    ] {
        let answer = verify(&app, &caller, body.clone()).await;
        assert_eq!(answer["code"], code, "{body}");
        assert_eq!(answer["valid"], code == "VALID", "{body}");
        if code != "VALID" {
            assert!(
                answer.get("key_id").is_none(),
                "a refusal names no credential: {answer}"
            );
        }
    }
}

#[tokio::test]
async fn another_organizations_key_is_not_found() {
    let app = TestApp::new().await;
    let caller = verifier_key(&app).await;
    let other_admin = app.other_organization().await;
    let theirs = app
        .create_key_as(&other_admin, json!({"name": "theirs"}))
        .await;
    let answer = verify(&app, &caller, json!({"key": theirs["key"]})).await;
    assert_eq!(answer["code"], "NOT_FOUND");
}

#[tokio::test]
async fn the_caller_needs_keys_verify_and_bad_requests_are_named() {
    let app = TestApp::new().await;
    let reader = app
        .create_key(json!({"name": "reader", "permissions": ["keys:read"]}))
        .await;
    app.post("/v1/keys/verify")
        .key(reader["key"].as_str().unwrap())
        .json(json!({"key": "x"}))
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
    app.post("/v1/keys/verify")
        .json(json!({"key": "x"}))
        .send()
        .await
        .assert_problem(401, "unauthenticated");
    let caller = verifier_key(&app).await;
    for (body, field) in [
        (
            json!({"key": "x", "required_scopes": ["dns:fly"]}),
            "required_scopes",
        ),
        (json!({"key": "x", "client_ip": "nope"}), "client_ip"),
    ] {
        let problem = app
            .post("/v1/keys/verify")
            .key(&caller)
            .json(body)
            .send()
            .await
            .assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    app.post("/v1/keys/verify")
        .key(&caller)
        .json(json!({"required_scopes": []}))
        .send()
        .await
        .assert_problem(400, "invalid_json");
}

#[tokio::test]
async fn a_revoke_is_refused_on_the_very_next_verification() {
    let app = TestApp::new().await;
    let caller = verifier_key(&app).await;
    let created = app.create_key(json!({"name": "cached"})).await;
    assert_eq!(
        verify(&app, &caller, json!({"key": created["key"]})).await["code"],
        "VALID"
    );
    app.act_on_key(&created, "revoke").await;
    assert_eq!(
        verify(&app, &caller, json!({"key": created["key"]})).await["code"],
        "REVOKED"
    );
    let other = app
        .create_key(json!({"name": "patched", "permissions": ["dns:read"]}))
        .await;
    assert_eq!(
        verify(
            &app,
            &caller,
            json!({"key": other["key"], "required_scopes": ["dns:read"]})
        )
        .await["code"],
        "VALID"
    );
    app.patch(&format!("/v1/keys/{}", other["key_id"].as_str().unwrap()))
        .key(&app.admin_key)
        .json(json!({"permissions": []}))
        .send()
        .await
        .expect(200);
    assert_eq!(
        verify(
            &app,
            &caller,
            json!({"key": other["key"], "required_scopes": ["dns:read"]})
        )
        .await["code"],
        "INSUFFICIENT_SCOPE"
    );
}

#[tokio::test]
async fn guessing_from_one_client_address_is_throttled_without_touching_others() {
    let app = TestApp::new().await;
    let caller = verifier_key(&app).await;
    let good = app.create_key(json!({"name": "good"})).await;
    for _ in 0..20 {
        let unknown =
            PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(Environment::Live));
        let answer = verify(
            &app,
            &caller,
            json!({"key": unknown.expose(), "client_ip": "203.0.113.50"}),
        )
        .await;
        assert_eq!(answer["code"], "NOT_FOUND");
    }
    let blocked = verify(
        &app,
        &caller,
        json!({"key": good["key"], "client_ip": "203.0.113.50"}),
    )
    .await;
    assert_eq!(blocked["code"], "RATE_LIMITED");
    assert_eq!(blocked["retry_after"], 10);
    assert_eq!(
        verify(
            &app,
            &caller,
            json!({"key": good["key"], "client_ip": "198.51.100.2"})
        )
        .await["code"],
        "VALID"
    );
    assert_eq!(
        verify(&app, &caller, json!({"key": good["key"]})).await["code"],
        "VALID",
        "no address: the caller itself is never throttled"
    );
    app.clock.advance(time::Duration::seconds(10));
    assert_eq!(
        verify(
            &app,
            &caller,
            json!({"key": good["key"], "client_ip": "203.0.113.50"})
        )
        .await["code"],
        "VALID"
    );
}

#[tokio::test]
async fn last_used_is_written_in_batches_not_per_request() {
    let app = TestApp::new().await;
    let caller = verifier_key(&app).await;
    let created = app.create_key(json!({"name": "used"})).await;
    let id = created["key_id"].as_str().unwrap();
    app.clock.advance(time::Duration::minutes(5));
    verify(
        &app,
        &caller,
        json!({"key": created["key"], "client_ip": "192.0.2.33"}),
    )
    .await;
    let before = app
        .get(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(
        before["last_used_at"],
        Value::Null,
        "nothing written on the request path"
    );
    app.state.engine.flush_usage().await.unwrap();
    let after = app
        .get(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(after["last_used_at"], "2026-06-01T12:05:00Z");
    assert_eq!(after["last_used_ip"], "192.0.2.33");
}
