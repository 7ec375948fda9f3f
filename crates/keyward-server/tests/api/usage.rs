//! Usage counts through HTTP: requests by outcome per minute, hour and day after a flush,
//! the query-string transport marked, pruning after the retention period.

use axum::http::StatusCode;
use keyward_gate::GateConfig;
use keyward_server::ServerConfig;
use serde_json::{Value, json};
use time::Duration;

use crate::support::TestApp;

async fn report(app: &TestApp, id: &str, query: &str) -> Value {
    let response = app
        .get(&format!("/v1/keys/{id}/usage?{query}"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.json()
}

#[tokio::test]
async fn buckets_add_up_to_the_requests_made_by_outcome() {
    let app = TestApp::with_config(ServerConfig {
        gate: GateConfig {
            allow_query_api_key: true,
            ..GateConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let created = app
        .create_key(json!({
            "name": "counted",
            "permissions": ["dns:read"],
            "ip_allowlist": ["127.0.0.0/8"],
            "rate_limit_override": 3,
        }))
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["key_id"].as_str().unwrap().to_owned();

    // Minute 1: 4 accepted (one by the query string), 2 insufficient scope, 1 IP denied.
    for _ in 0..3 {
        let r = app.get("/v1/authorize").key(&key).send().await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = app
        .get(&format!("/v1/authorize?api_key={key}"))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for _ in 0..2 {
        let r = app
            .get("/v1/authorize")
            .key(&key)
            .header("x-keyward-required-scopes", "dns:write")
            .send()
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let r = app
        .get("/v1/authorize")
        .key(&key)
        .peer("192.0.2.9")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Minute 2: 60 s at 3 a second have refilled the burst of 6; 7 requests, the last
    // one rate limited.
    app.clock.advance(Duration::seconds(60));
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for _ in 0..5 {
            s.push(
                app.get("/v1/authorize")
                    .key(&key)
                    .send()
                    .await
                    .status
                    .as_u16(),
            );
        }
        s
    };
    assert_eq!(statuses, [200, 200, 200, 200, 200]);
    assert_eq!(
        app.get("/v1/authorize").key(&key).send().await.status,
        StatusCode::OK
    );
    let limited = app.get("/v1/authorize").key(&key).send().await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    app.state.engine.flush_usage().await.unwrap();

    let minutes = report(&app, &id, "granularity=minute").await;
    let buckets = minutes["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "{minutes}");
    assert_eq!(
        buckets[0]["outcomes"],
        json!({"VALID": 4, "INSUFFICIENT_SCOPE": 2, "IP_DENIED": 1})
    );
    assert_eq!(buckets[0]["total"], 7);
    assert_eq!(buckets[0]["via_query"], 1);
    assert_eq!(
        buckets[1]["outcomes"],
        json!({"VALID": 6, "RATE_LIMITED": 1})
    );
    assert_eq!(buckets[0]["start"], "2026-06-01T12:00:00Z");
    assert_eq!(buckets[1]["start"], "2026-06-01T12:01:00Z");

    let hours = report(&app, &id, "granularity=hour").await;
    assert_eq!(hours["buckets"].as_array().unwrap().len(), 1);
    assert_eq!(hours["buckets"][0]["total"], 14);
    assert_eq!(hours["buckets"][0]["outcomes"]["VALID"], 10);
    let days = report(
        &app,
        &id,
        "granularity=day&from=2026-05-30T00:00:00Z&to=2026-06-02T00:00:00Z",
    )
    .await;
    assert_eq!(days["buckets"][0]["start"], "2026-06-01T00:00:00Z");
    assert_eq!(days["buckets"][0]["total"], 14);
    assert!(hours["last_used_at"].is_string(), "{hours}");

    // A window without requests has no buckets.
    let before = report(
        &app,
        &id,
        "from=2026-05-01T00:00:00Z&to=2026-05-02T00:00:00Z",
    )
    .await;
    assert_eq!(before["buckets"], json!([]));
}

#[tokio::test]
async fn counts_older_than_the_retention_are_pruned() {
    let app = TestApp::new().await;
    let created = app.create_key(json!({"name": "old"})).await;
    let key = created["key"].as_str().unwrap();
    let id = created["key_id"].as_str().unwrap();
    app.get("/v1/authorize").key(key).send().await.expect(200);
    app.state.engine.flush_usage().await.unwrap();
    let window = "granularity=day&from=2026-05-01T00:00:00Z&to=2026-08-01T00:00:00Z";
    assert_eq!(report(&app, id, window).await["buckets"][0]["total"], 1);

    app.clock.advance(Duration::days(29));
    app.state.engine.prune_usage().await.unwrap();
    assert_eq!(
        report(&app, id, window).await["buckets"][0]["total"],
        1,
        "kept 30 days"
    );
    app.clock.advance(Duration::days(2));
    app.state.engine.prune_usage().await.unwrap();
    assert_eq!(report(&app, id, window).await["buckets"], json!([]));
}

#[tokio::test]
async fn bad_windows_are_400_and_other_organizations_keys_404() {
    let app = TestApp::new().await;
    let id = app.create_key(json!({"name": "k"})).await["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for query in [
        "granularity=week",
        "from=yesterday",
        "from=2026-06-02T00:00:00Z&to=2026-06-01T00:00:00Z",
        "granularity=minute&from=2026-01-01T00:00:00Z",
    ] {
        app.get(&format!("/v1/keys/{id}/usage?{query}"))
            .key(&app.admin_key)
            .send()
            .await
            .assert_problem(400, "invalid_query");
    }
    let other = app.other_organization().await;
    app.get(&format!("/v1/keys/{id}/usage"))
        .key(&other)
        .send()
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn management_requests_refused_for_a_scope_count_as_such() {
    let app = TestApp::new().await;
    let created = app
        .create_key(json!({ "name": "reader", "permissions": ["keys:read"] }))
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["key_id"].as_str().unwrap().to_owned();

    // Two reads it may make; three writes and a rule it may not, refused by the operation
    // after the credential itself was admitted.
    for _ in 0..2 {
        app.get("/v1/keys").key(&key).send().await.expect(200);
    }
    for _ in 0..3 {
        app.post("/v1/keys")
            .key(&key)
            .json(json!({ "name": "more", "permissions": ["keys:read"] }))
            .send()
            .await
            .assert_problem(403, "insufficient_scope");
    }
    app.get("/v1/ip-rules")
        .key(&key)
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
    // A refusal for another reason stays counted as admitted: the credential was fine.
    app.get("/v1/keys/api_key_01m91ew689ejgbbe2j6gm9g2w8")
        .key(&key)
        .send()
        .await
        .assert_problem(404, "not_found");
    app.state.engine.flush_usage().await.unwrap();

    let minutes = report(&app, &id, "granularity=minute").await;
    assert_eq!(
        minutes["buckets"][0]["outcomes"],
        json!({"VALID": 3, "INSUFFICIENT_SCOPE": 4}),
        "{minutes}"
    );

    // A refusal counted after an earlier flush moves the count already written.
    app.get("/v1/keys").key(&key).send().await.expect(200);
    app.state.engine.flush_usage().await.unwrap();
    app.get("/v1/audit-log")
        .key(&key)
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
    app.state.engine.flush_usage().await.unwrap();
    let minutes = report(&app, &id, "granularity=minute").await;
    assert_eq!(
        minutes["buckets"][0]["outcomes"],
        json!({"VALID": 4, "INSUFFICIENT_SCOPE": 5}),
        "{minutes}"
    );
}
