//! Rotation: new secrets shown once; the old ones stop at once or after a bounded grace.

use serde_json::json;

use crate::support::TestApp;

async fn reader(app: &TestApp, extra: serde_json::Value) -> serde_json::Value {
    let mut body = json!({"name": "rotating", "permissions": ["keys:read"]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.create_key(body).await
}

#[tokio::test]
async fn rotation_without_grace_stops_the_old_key_at_once() {
    let app = TestApp::new().await;
    let created = reader(&app, json!({})).await;
    let id = created["key_id"].as_str().unwrap();
    let rotated = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(rotated.header("cache-control"), Some("no-store"));
    let body = rotated.json();
    let new_key = body["key"].as_str().unwrap();
    assert_ne!(new_key, created["key"].as_str().unwrap());
    assert_ne!(body["client_secret"], created["client_secret"]);
    assert_eq!(
        body["key_id"], created["key_id"],
        "the credential keeps its id"
    );
    assert_eq!(body["hint"], &new_key[new_key.len() - 4..]);
    assert!(body.get("previous_secrets_expire_at").is_none());

    let old = app
        .get("/v1/keys")
        .key(created["key"].as_str().unwrap())
        .send()
        .await;
    // A replaced secret, not an unknown one: ended at the rotation.
    assert_eq!(
        old.assert_problem(401, "unauthenticated")["outcome"],
        "EXPIRED"
    );
    assert_eq!(app.get("/v1/keys").key(new_key).send().await.status, 200);
}

#[tokio::test]
async fn a_client_still_sending_a_rotated_out_key_is_not_taken_for_a_guesser() {
    let app = TestApp::new().await;
    let created = reader(&app, json!({})).await;
    let (id, old_key) = (
        created["key_id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    app.post(&format!("/v1/keys/{id}/rotate"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    // More refusals from one address than a guesser gets before its block.
    for _ in 0..25 {
        let refused = app
            .get("/v1/authorize")
            .key(old_key)
            .peer("203.0.113.7")
            .send()
            .await;
        assert_eq!(
            refused.assert_problem(401, "unauthenticated")["outcome"],
            "EXPIRED"
        );
    }
    // The same address's valid keys still work.
    let admin = app
        .get("/v1/authorize")
        .key(&app.admin_key)
        .peer("203.0.113.7")
        .send()
        .await;
    assert_eq!(admin.status, 200, "{}", admin.text);
    // The refusals are the credential's, in its usage.
    app.state.engine.flush_usage().await.unwrap();
    let usage = app
        .get(&format!("/v1/keys/{id}/usage"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    let expired: u64 = usage["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["outcomes"]["EXPIRED"].as_u64())
        .sum();
    assert_eq!(expired, 25, "{usage}");
    // And a lookup says what the old secret is.
    let looked_up = app
        .post("/v1/keys/lookup")
        .key(&app.admin_key)
        .json(json!({"secrets": [old_key]}))
        .send()
        .await
        .json();
    assert_eq!(looked_up["data"][0]["state"], "replaced", "{looked_up}");
    // A made-up key from another address is still a guess: blocked after the threshold.
    for _ in 0..20 {
        app.get("/v1/authorize")
            .key("kw_live_guessing")
            .peer("203.0.113.8")
            .send()
            .await;
    }
    app.get("/v1/authorize")
        .key(&app.admin_key)
        .peer("203.0.113.8")
        .send()
        .await
        .assert_problem(429, "too_many_failures");
}

#[tokio::test]
async fn a_grace_period_keeps_the_old_key_until_it_ends() {
    let app = TestApp::new().await;
    let created = reader(&app, json!({})).await;
    let (id, old_key) = (
        created["key_id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let rotated = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&app.admin_key)
        .json(json!({"grace_period_seconds": 3600}))
        .send()
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let body = rotated.json();
    assert_eq!(body["previous_secrets_expire_at"], "2026-06-01T13:00:00Z");
    let new_key = body["key"].as_str().unwrap();

    app.clock.advance(time::Duration::minutes(59));
    assert_eq!(
        app.get("/v1/keys").key(old_key).send().await.status,
        200,
        "old key within grace"
    );
    assert_eq!(app.get("/v1/keys").key(new_key).send().await.status, 200);
    app.clock.advance(time::Duration::MINUTE);
    let expired = app
        .get("/v1/keys")
        .key(old_key)
        .send()
        .await
        .assert_problem(401, "unauthenticated");
    assert_eq!(expired["outcome"], "EXPIRED");
    assert_eq!(app.get("/v1/keys").key(new_key).send().await.status, 200);
}

#[tokio::test]
async fn grace_never_outlives_the_keys_own_expiry() {
    let app = TestApp::new().await;
    let created = reader(&app, json!({"expires_at": "2026-06-01T12:30:00Z"})).await;
    let id = created["key_id"].as_str().unwrap();
    let rotated = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&app.admin_key)
        .json(json!({"grace_period_seconds": 86400}))
        .send()
        .await;
    assert_eq!(
        rotated.json()["previous_secrets_expire_at"],
        "2026-06-01T12:30:00Z"
    );
}

#[tokio::test]
async fn grace_is_bounded_to_seven_days() {
    let app = TestApp::new().await;
    let created = reader(&app, json!({})).await;
    let id = created["key_id"].as_str().unwrap();
    let ok = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&app.admin_key)
        .json(json!({"grace_period_seconds": 604800}))
        .send()
        .await;
    assert_eq!(
        ok.json()["previous_secrets_expire_at"],
        "2026-06-08T12:00:00Z"
    );
    for bad in [604801, -1] {
        let refused = app
            .post(&format!("/v1/keys/{id}/rotate"))
            .key(&app.admin_key)
            .json(json!({"grace_period_seconds": bad}))
            .send()
            .await;
        let body = refused.assert_problem(422, "validation_failed");
        assert_eq!(body["errors"][0]["field"], "grace_period_seconds");
    }
}

#[tokio::test]
async fn a_second_rotation_does_not_extend_the_first_grace() {
    let app = TestApp::new().await;
    let created = reader(&app, json!({})).await;
    let (id, first_key) = (
        created["key_id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let uri = format!("/v1/keys/{id}/rotate");
    app.post(&uri)
        .key(&app.admin_key)
        .json(json!({"grace_period_seconds": 600}))
        .send()
        .await
        .expect(200);
    app.post(&uri)
        .key(&app.admin_key)
        .json(json!({"grace_period_seconds": 86400}))
        .send()
        .await
        .expect(200);
    app.clock.advance(time::Duration::minutes(10));
    assert_eq!(app.get("/v1/keys").key(first_key).send().await.status, 401);
}
