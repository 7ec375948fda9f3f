//! Every lifecycle event reaches the audit log with actor, source address and time.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn each_lifecycle_event_is_recorded_with_actor_address_and_time() {
    let app = TestApp::new().await;
    let created = app
        .post("/v1/keys")
        .key(&app.admin_key)
        .peer("198.51.100.7")
        .json(json!({"name": "audited"}))
        .send()
        .await
        .json();
    let id = created["key_id"].as_str().unwrap();
    for (i, (method, suffix, body)) in [
        ("PATCH", "", Some(json!({"name": "renamed"}))),
        ("POST", "/disable", None),
        ("POST", "/enable", None),
        ("POST", "/rotate", Some(json!({"grace_period_seconds": 60}))),
        ("POST", "/revoke", None),
    ]
    .into_iter()
    .enumerate()
    {
        app.clock.advance(time::Duration::minutes(1));
        let mut call = app
            .call(method.parse().unwrap(), &format!("/v1/keys/{id}{suffix}"))
            .key(&app.admin_key)
            .peer(&format!("198.51.100.{}", 10 + i));
        if let Some(body) = body {
            call = call.json(body);
        }
        assert_eq!(call.send().await.status, 200);
    }
    let log = app
        .get(&format!("/v1/audit-log?target_id={id}"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    let events = log.json()["data"].as_array().unwrap().clone();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "key.revoked",
            "key.rotated",
            "key.enabled",
            "key.disabled",
            "key.updated",
            "key.created"
        ]
    );
    let admin_id = app
        .get("/v1/keys?limit=100")
        .key(&app.admin_key)
        .send()
        .await
        .json()["data"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["key_id"]
        .clone();
    for (i, event) in events.iter().rev().enumerate() {
        assert_eq!(event["actor"], admin_id);
        assert_eq!(event["target_id"], id);
        assert_eq!(
            event["source_ip"],
            if i == 0 {
                "198.51.100.7".to_owned()
            } else {
                format!("198.51.100.{}", 9 + i)
            }
        );
        assert_eq!(event["occurred_at"], format!("2026-06-01T12:{i:02}:00Z"));
    }
    assert_eq!(events[4]["details"]["changed"], json!(["name"]));
    assert_eq!(events[1]["details"]["grace_period_seconds"], 60);

    let only = app
        .get("/v1/audit-log?action=key.rotated")
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(only["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn idempotent_repeats_record_nothing_new() {
    let app = TestApp::new().await;
    let created = app.create_key(json!({"name": "twice"})).await;
    let id = created["key_id"].as_str().unwrap();
    for _ in 0..3 {
        app.post(&format!("/v1/keys/{id}/revoke"))
            .key(&app.admin_key)
            .send()
            .await
            .expect(200);
    }
    // A change to a revoked key is refused, and records nothing either.
    app.patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({}))
        .send()
        .await
        .assert_problem(409, "credential_revoked");
    let log = app
        .get(&format!("/v1/audit-log?target_id={id}"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(
        log["data"].as_array().unwrap().len(),
        2,
        "created and revoked once"
    );
}

#[tokio::test]
async fn the_audit_log_needs_its_scope_and_pages() {
    let app = TestApp::new().await;
    let keys_only = app
        .create_key(json!({"name": "keys only", "permissions": ["keys:*"]}))
        .await;
    app.get("/v1/audit-log")
        .key(keys_only["key"].as_str().unwrap())
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
    for i in 0..4 {
        app.create_key(json!({"name": format!("k{i}")})).await;
    }
    let first = app
        .get("/v1/audit-log?limit=3")
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(first["data"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!("/v1/audit-log?limit=100&cursor={cursor}"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    // 2 bootstrap events + 1 + 4 creations = 7 in all.
    assert_eq!(second["data"].as_array().unwrap().len(), 4);
    assert_eq!(second["next_cursor"], json!(null));
}
