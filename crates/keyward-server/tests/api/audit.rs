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

/// The actions of a page of the audit log, newest first.
fn actions(page: &serde_json::Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_audit_log_filters_by_actor_type_object_and_time_and_pages_both_ways() {
    let app = TestApp::new().await;
    let names: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    let mut ids = Vec::new();
    for name in &names {
        ids.push(
            app.create_key(json!({ "name": name })).await["key_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        app.clock.advance(time::Duration::minutes(10));
    }
    app.act_on_key(&json!({ "key_id": ids[1] }), "disable")
        .await;
    let get = |query: String| {
        let app = &app;
        async move {
            app.get(&format!("/v1/audit-log?{query}"))
                .key(&app.admin_key)
                .send()
                .await
                .expect(200)
                .json()
        }
    };

    // By object, and by a family of actions.
    let about = get(format!("target_id={}", ids[1])).await;
    assert_eq!(actions(&about), ["key.disabled", "key.created"]);
    let keys = get("action=key.&limit=100".to_owned()).await;
    // Five creations, the bootstrap credential's, and a disabling.
    assert_eq!(keys["data"].as_array().unwrap().len(), 7, "{keys}");
    let none = get("action=key_.&limit=100".to_owned()).await;
    assert_eq!(none["data"], json!([]), "`_` is not a wildcard");

    // By actor, with the actor's name.
    let admin_id = about["data"][0]["actor"].as_str().unwrap().to_owned();
    assert_eq!(
        about["data"][0]["actor_name"], "Bootstrap credential",
        "{about}"
    );
    let by_admin = get(format!("actor={admin_id}&limit=100")).await;
    assert_eq!(by_admin["data"].as_array().unwrap().len(), 6);
    let by_cli = get("actor=cli&limit=100".to_owned()).await;
    assert!(
        actions(&by_cli).iter().all(|a| a != "key.disabled"),
        "{by_cli}"
    );

    // By time: the creations between 12:10 (included) and 12:30 (excluded).
    let window =
        get("action=key.created&from=2026-06-01T12:10:00Z&to=2026-06-01T12:30:00Z".to_owned())
            .await;
    let created: Vec<&str> = window["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target_id"].as_str().unwrap())
        .collect();
    assert_eq!(created, [ids[2].as_str(), ids[1].as_str()]);

    // Pages of two creations: forward to the oldest, then back to the newest.
    let first = get("action=key.created&limit=2".to_owned()).await;
    assert_eq!(
        first["prev_cursor"],
        json!(null),
        "the newest page has no newer one"
    );
    let second = get(format!(
        "action=key.created&limit=2&cursor={}",
        first["next_cursor"].as_str().unwrap()
    ))
    .await;
    let third = get(format!(
        "action=key.created&limit=2&cursor={}",
        second["next_cursor"].as_str().unwrap()
    ))
    .await;
    assert_eq!(third["next_cursor"], json!(null));
    let back = get(format!(
        "action=key.created&limit=2&before_cursor={}",
        third["prev_cursor"].as_str().unwrap()
    ))
    .await;
    assert_eq!(back["data"], second["data"]);
    let front = get(format!(
        "action=key.created&limit=2&before_cursor={}",
        back["prev_cursor"].as_str().unwrap()
    ))
    .await;
    assert_eq!(front["data"], first["data"]);
    assert_eq!(front["prev_cursor"], json!(null));

    // A window ending before it starts matches nothing; unusable filters are 400.
    let empty = get("from=2026-06-02T00:00:00Z&to=2026-06-01T00:00:00Z".to_owned()).await;
    assert_eq!(empty["data"], json!([]));
    for query in ["from=yesterday", "actor=", "cursor=nonsense"] {
        app.get(&format!("/v1/audit-log?{query}"))
            .key(&app.admin_key)
            .send()
            .await
            .assert_problem(400, "invalid_query");
    }
}

#[tokio::test]
async fn the_audit_log_exports_as_csv_and_json_with_the_same_filters() {
    let app = TestApp::new().await;
    // A credential whose name a spreadsheet would run as a formula acts: its name is the
    // actor's name in the export.
    let hostile = app
        .create_key(json!({
            "name": "=HYPERLINK(\"https://evil.example\")",
            "permissions": ["keys:write", "keys:read"],
        }))
        .await;
    let created = app
        .create_key_as(
            hostile["key"].as_str().unwrap(),
            json!({ "name": "made by it", "permissions": ["keys:read"] }),
        )
        .await;
    let id = created["key_id"].as_str().unwrap();
    app.act_on_key(&created, "revoke").await;

    let csv = app
        .get(&format!("/v1/audit-log/export?target_id={id}"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"audit-log.csv\"")
    );
    let lines: Vec<&str> = csv.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "id,occurred_at,action,actor,actor_name,source_ip,target_id,details"
    );
    assert_eq!(lines.len(), 3, "{}", csv.text);
    assert!(lines[1].contains(",key.revoked,"), "{}", lines[1]);
    assert!(lines[2].contains(",key.created,"), "{}", lines[2]);
    assert!(
        lines[2].contains(",\"'=HYPERLINK(\"\"https://evil.example\"\")\","),
        "a name that is a formula is defused: {}",
        lines[2]
    );

    let json = app
        .get(&format!("/v1/audit-log/export?format=json&target_id={id}"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let events = json.json();
    assert_eq!(events.as_array().unwrap().len(), 2);
    assert_eq!(events[0]["action"], "key.revoked");
    assert_eq!(
        events[1]["actor_name"],
        "=HYPERLINK(\"https://evil.example\")"
    );
    assert_eq!(events[1]["details"]["name"], "made by it");

    app.get("/v1/audit-log/export?format=xml")
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(400, "invalid_query");
    let reader = app
        .create_key(json!({ "name": "reader", "permissions": ["keys:read"] }))
        .await;
    app.get("/v1/audit-log/export")
        .key(reader["key"].as_str().unwrap())
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
}
