//! Requests at the edges of what the OpenAPI document allows, each answered as the
//! document says (found by `.ci/schemathesis`, which holds the server to its document).

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn a_time_past_year_9999_in_utc_is_refused_not_kept_as_1970() {
    let app = TestApp::new().await;
    // Valid RFC 3339, but the first is in year 10000 once in UTC, the second in year -1:
    // neither can be stored or shown, and were taken for the epoch (an expired key).
    for (field, time) in [
        ("expires_at", "9999-12-31T23:59:59-23:59"),
        ("not_before", "0000-01-01T00:00:00+23:59"),
    ] {
        let refused = app
            .post("/v1/keys")
            .key(&app.admin_key)
            .json(json!({"name": "far", field: time}))
            .send()
            .await;
        let problem = refused.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let created = app.create_key(json!({"name": "near"})).await;
    let id = created["key_id"].as_str().unwrap();
    app.patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({"expires_at": "9999-12-31T23:59:59-23:59"}))
        .send()
        .await
        .assert_problem(422, "validation_failed");
    // The last instant that is written in four digits is fine.
    let latest = app
        .post("/v1/keys")
        .key(&app.admin_key)
        .json(json!({"name": "latest", "expires_at": "9999-12-31T23:59:59Z"}))
        .send()
        .await
        .expect(201)
        .json();
    assert_eq!(latest["expires_at"], "9999-12-31T23:59:59Z");
    assert_eq!(latest["status"], "active");
    // A usage window there is refused too, instead of answered as the epoch's.
    for query in [
        "to=9999-12-31T23:59:00-23:59",
        "from=0000-01-01T00:00:00%2B23:59",
    ] {
        app.get(&format!("/v1/keys/{id}/usage?{query}"))
            .key(&app.admin_key)
            .send()
            .await
            .assert_problem(400, "invalid_query");
    }
}

#[tokio::test]
async fn unreadable_required_scopes_or_environment_are_a_400_never_none() {
    let app = TestApp::new().await;
    let created = app
        .create_key(json!({"name": "reader", "environment": "test", "permissions": ["dns:read"]}))
        .await;
    let key = created["key"].as_str().unwrap();
    for (header, code) in [
        ("x-keyward-required-scopes", "invalid_required_scopes"),
        (
            "x-keyward-required-environment",
            "invalid_required_environment",
        ),
    ] {
        // Read as absent, either let the request through without what it requires.
        app.get("/v1/authorize")
            .key(key)
            .header_bytes(header, b"dns:write live \xe9")
            .send()
            .await
            .assert_problem(400, code);
    }
}

#[tokio::test]
async fn an_empty_filter_is_refused_like_any_unusable_parameter() {
    let app = TestApp::new().await;
    app.create_key(json!({"name": "owned", "owner_id": "cust-1"}))
        .await;
    for uri in [
        "/v1/keys?owner_id=",
        "/v1/keys?status=",
        "/v1/keys?cursor=",
        "/v1/audit-log?action=",
        "/v1/audit-log?target_id=",
        "/v1/keys?limit=0",
        "/v1/audit-log?limit=101",
    ] {
        let answer = app.get(uri).key(&app.admin_key).send().await;
        answer.assert_problem(400, "invalid_query");
    }
    // A filter outside the owner id's characters cannot match one either.
    app.get("/v1/keys?owner_id=%C3%A9")
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(400, "invalid_query");
    let found = app
        .get("/v1/keys?owner_id=cust-1&limit=1")
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_whole_number_with_a_fraction_part_or_exponent_is_an_integer() {
    let app = TestApp::new().await;
    let created = app
        .post("/v1/keys")
        .key(&app.admin_key)
        .raw(
            "application/json",
            r#"{"name": "whole", "rate_limit_override": 5.0}"#,
        )
        .send()
        .await
        .expect(201)
        .json();
    assert_eq!(created["rate_limit_override"], 5);
    let id = created["key_id"].as_str().unwrap();
    let changed = app
        .patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .raw("application/json", r#"{"rate_limit_override": 7e0}"#)
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(changed["rate_limit_override"], 7);
    let rotated = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&app.admin_key)
        .raw("application/json", r#"{"grace_period_seconds": 60.0}"#)
        .send()
        .await
        .expect(200)
        .json();
    assert!(
        rotated["previous_secrets_expire_at"].is_string(),
        "{rotated}"
    );
    // A fraction is still no whole number.
    for body in [
        r#"{"name": "half", "rate_limit_override": 2.5}"#,
        r#"{"name": "negative", "rate_limit_override": -1.0}"#,
    ] {
        app.post("/v1/keys")
            .key(&app.admin_key)
            .raw("application/json", body)
            .send()
            .await
            .assert_problem(400, "invalid_json");
    }
}

#[tokio::test]
async fn a_null_rotation_body_asks_for_no_options() {
    let app = TestApp::new().await;
    let created = app.create_key(json!({"name": "rotated"})).await;
    let id = created["key_id"].as_str().unwrap();
    let rotated = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&app.admin_key)
        .raw("application/json", "null")
        .send()
        .await
        .expect(200)
        .json();
    assert!(rotated["previous_secrets_expire_at"].is_null(), "{rotated}");
}

#[tokio::test]
async fn a_body_is_an_object_never_an_array_read_by_position() {
    let app = TestApp::new().await;
    let created = app.create_key(json!({"name": "kept"})).await;
    let id = created["key_id"].as_str().unwrap();
    // serde reads a struct from an array, its fields in order: `[]` was a change of
    // nothing (200), and eleven values a new credential named by the first.
    let by_position = json!([
        "positional",
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null
    ]);
    for (method, uri, body) in [
        ("PATCH", format!("/v1/keys/{id}"), json!([])),
        ("POST", "/v1/keys".to_owned(), by_position),
        ("POST", format!("/v1/keys/{id}/rotate"), json!([])),
        (
            "POST",
            "/v1/roles".to_owned(),
            json!(["reader", null, ["read"]]),
        ),
    ] {
        let call = match method {
            "PATCH" => app.patch(&uri),
            _ => app.post(&uri),
        };
        let answer = call.key(&app.admin_key).json(body).send().await;
        let problem = answer.assert_problem(400, "invalid_json");
        assert!(
            problem["detail"].as_str().unwrap().contains("object"),
            "{method} {uri}: {}",
            answer.text
        );
    }
    let rule = app
        .post("/v1/ip-rules")
        .key(&app.admin_key)
        .json(json!({"ip_network": "192.0.2.0/25", "type": "deny"}))
        .send()
        .await
        .expect(201)
        .json();
    let rule_id = rule["id"].as_str().unwrap();
    app.patch(&format!("/v1/ip-rules/{rule_id}"))
        .key(&app.admin_key)
        .json(json!([]))
        .send()
        .await
        .assert_problem(400, "invalid_json");
    app.post("/v1/keys/verify")
        .key(&app.admin_key)
        .json(json!([created["key"]]))
        .send()
        .await
        .assert_problem(400, "invalid_json");
}
