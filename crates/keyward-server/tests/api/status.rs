//! Disable, enable and revoke: effective at once, idempotent, revocation final.

use serde_json::json;

use crate::support::TestApp;

async fn reader(app: &TestApp) -> (String, String) {
    let body = app
        .create_key(json!({"name": "reader", "permissions": ["keys:read"]}))
        .await;
    (
        body["key_id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn disable_refuses_the_key_until_enabled_again() {
    let app = TestApp::new().await;
    let (id, key) = reader(&app).await;
    let disabled = app
        .post(&format!("/v1/keys/{id}/disable"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert_eq!(disabled.json()["status"], "disabled");
    let refused = app
        .get("/v1/keys")
        .key(&key)
        .send()
        .await
        .assert_problem(401, "unauthenticated");
    assert_eq!(refused["outcome"], "DISABLED");

    let again = app
        .post(&format!("/v1/keys/{id}/disable"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(again.status, 200, "disabling twice is idempotent");

    let enabled = app
        .post(&format!("/v1/keys/{id}/enable"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(enabled.json()["status"], "active");
    assert_eq!(app.get("/v1/keys").key(&key).send().await.status, 200);
}

#[tokio::test]
async fn revoke_is_immediate_idempotent_and_irreversible() {
    let app = TestApp::new().await;
    let (id, key) = reader(&app).await;
    let revoked = app
        .post(&format!("/v1/keys/{id}/revoke"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let body = revoked.json();
    assert_eq!(body["status"], "revoked");
    assert_eq!(body["revoked_at"], "2026-06-01T12:00:00Z");

    let refused = app
        .get("/v1/keys")
        .key(&key)
        .send()
        .await
        .assert_problem(401, "unauthenticated");
    assert_eq!(refused["outcome"], "REVOKED");

    app.clock.advance(time::Duration::HOUR);
    let again = app
        .post(&format!("/v1/keys/{id}/revoke"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.json()["revoked_at"],
        "2026-06-01T12:00:00Z",
        "a second revoke changes nothing"
    );

    for action in ["enable", "disable", "rotate"] {
        app.post(&format!("/v1/keys/{id}/{action}"))
            .key(&app.admin_key)
            .send()
            .await
            .assert_problem(409, "credential_revoked");
    }
    app.patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({"name": "zombie"}))
        .send()
        .await
        .assert_problem(409, "credential_revoked");
    assert_eq!(app.get("/v1/keys").key(&key).send().await.status, 401);
}

#[tokio::test]
async fn a_key_may_revoke_itself() {
    let app = TestApp::new().await;
    let body = app
        .create_key(json!({"name": "self", "permissions": ["keys:*"]}))
        .await;
    let (id, key) = (
        body["key_id"].as_str().unwrap(),
        body["key"].as_str().unwrap(),
    );
    assert_eq!(
        app.post(&format!("/v1/keys/{id}/revoke"))
            .key(key)
            .send()
            .await
            .status,
        200
    );
    assert_eq!(app.get("/v1/keys").key(key).send().await.status, 401);
}

#[tokio::test]
async fn expiry_and_not_before_follow_the_clock() {
    let app = TestApp::new().await;
    let body = app
        .create_key(json!({
            "name": "window",
            "permissions": ["keys:read"],
            "not_before": "2026-06-01T13:00:00Z",
            "expires_at": "2026-06-01T14:00:00Z"
        }))
        .await;
    let key = body["key"].as_str().unwrap();
    let early = app
        .get("/v1/keys")
        .key(key)
        .send()
        .await
        .assert_problem(401, "unauthenticated");
    assert_eq!(early["outcome"], "NOT_YET_VALID");
    app.clock.advance(time::Duration::minutes(60));
    assert_eq!(
        app.get("/v1/keys").key(key).send().await.status,
        200,
        "valid from not_before on"
    );
    app.clock
        .advance(time::Duration::minutes(59) + time::Duration::seconds(59));
    assert_eq!(
        app.get("/v1/keys").key(key).send().await.status,
        200,
        "valid until just before expires_at"
    );
    app.clock.advance(time::Duration::SECOND);
    let late = app
        .get("/v1/keys")
        .key(key)
        .send()
        .await
        .assert_problem(401, "unauthenticated");
    assert_eq!(late["outcome"], "EXPIRED");
    let read = app
        .get(&format!("/v1/keys/{}", body["key_id"].as_str().unwrap()))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(read.json()["status"], "expired");
}
