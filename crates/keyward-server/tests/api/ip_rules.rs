//! `/v1/ip-rules`: organization IP access rules, their limits and the lockout guard.

use serde_json::{Value, json};

use crate::support::TestApp;

async fn add(app: &TestApp, body: Value, from: &str) -> crate::support::TestResponse {
    app.post("/v1/ip-rules")
        .key(&app.admin_key)
        .peer(from)
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn rules_are_added_listed_changed_and_removed() {
    let app = TestApp::new().await;
    let created = add(
        &app,
        json!({"ip_network": "192.0.2.7", "type": "allow", "description": "office"}),
        "192.0.2.7",
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let rule = created.json();
    assert!(rule["id"].as_str().unwrap().starts_with("ip_rule_"));
    assert_eq!(rule["ip_network"], "192.0.2.7/32");
    assert_eq!(rule["type"], "allow");
    assert_eq!(rule["last_matched_at"], Value::Null);
    let id = rule["id"].as_str().unwrap();

    let list = app
        .get("/v1/ip-rules")
        .key(&app.admin_key)
        .peer("192.0.2.7")
        .send()
        .await
        .json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["max_rules"], 5);
    assert_eq!(list["ipv4_prefixes"], "/25–/32");
    assert_eq!(list["your_ip"], "192.0.2.7");

    let changed = app
        .patch(&format!("/v1/ip-rules/{id}"))
        .key(&app.admin_key)
        .peer("192.0.2.7")
        .json(json!({"ip_network": "192.0.2.0/25"}))
        .send()
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.json()["ip_network"], "192.0.2.0/25");

    let removed = app
        .call(axum::http::Method::DELETE, &format!("/v1/ip-rules/{id}"))
        .key(&app.admin_key)
        .peer("192.0.2.7")
        .send()
        .await;
    assert_eq!(removed.status, 204);
    let log = app
        .get("/v1/audit-log?limit=5")
        .key(&app.admin_key)
        .peer("192.0.2.7")
        .send()
        .await
        .json();
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["ip_rule.removed", "ip_rule.updated", "ip_rule.added"]
    );
}

#[tokio::test]
async fn rules_apply_to_every_key_of_the_organization_at_once() {
    let app = TestApp::new().await;
    let reader = app
        .create_key(json!({"name": "reader", "permissions": ["keys:read"]}))
        .await;
    let key = reader["key"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/keys")
            .key(key)
            .peer("198.51.100.5")
            .send()
            .await
            .status,
        200
    );
    add(
        &app,
        json!({"ip_network": "198.51.100.0/26", "type": "deny"}),
        "192.0.2.1",
    )
    .await;
    let denied = app
        .get("/v1/keys")
        .key(key)
        .peer("198.51.100.5")
        .send()
        .await;
    assert_eq!(
        denied.assert_problem(403, "ip_denied")["outcome"],
        "IP_DENIED"
    );
    assert_eq!(
        app.get("/v1/keys")
            .key(key)
            .peer("198.51.100.100")
            .send()
            .await
            .status,
        200
    );
    // An allow rule shuts out every address no rule matches; the most specific rule wins.
    add(
        &app,
        json!({"ip_network": "203.0.113.0/25", "type": "allow"}),
        "203.0.113.1",
    )
    .await;
    assert_eq!(
        app.get("/v1/keys")
            .key(key)
            .peer("198.51.100.100")
            .send()
            .await
            .status,
        403
    );
    assert_eq!(
        app.get("/v1/keys")
            .key(key)
            .peer("203.0.113.9")
            .send()
            .await
            .status,
        200
    );
    add(
        &app,
        json!({"ip_network": "203.0.113.9", "type": "deny"}),
        "203.0.113.1",
    )
    .await;
    assert_eq!(
        app.get("/v1/keys")
            .key(key)
            .peer("203.0.113.9")
            .send()
            .await
            .status,
        403
    );
    assert_eq!(
        app.get("/v1/keys")
            .key(key)
            .peer("::ffff:203.0.113.10")
            .send()
            .await
            .status,
        200
    );
    // Both the key's allowlist and the rules must pass.
    let fenced = app
        .create_key_as_from(
            json!({"name": "fenced", "ip_allowlist": ["203.0.113.0/28"]}),
            "203.0.113.1",
        )
        .await;
    let fenced_key = fenced["key"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/authorize")
            .key(fenced_key)
            .peer("203.0.113.10")
            .send()
            .await
            .status,
        200
    );
    assert_eq!(
        app.get("/v1/authorize")
            .key(fenced_key)
            .peer("203.0.113.20")
            .send()
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn the_last_match_of_a_rule_is_recorded() {
    let app = TestApp::new().await;
    let rule = add(
        &app,
        json!({"ip_network": "192.0.2.0/25", "type": "allow"}),
        "192.0.2.1",
    )
    .await
    .json();
    app.clock.advance(time::Duration::minutes(3));
    assert_eq!(
        app.get("/v1/authorize")
            .key(&app.admin_key)
            .peer("192.0.2.9")
            .send()
            .await
            .status,
        200
    );
    app.state.engine.flush_usage().await.unwrap();
    let list = app
        .get("/v1/ip-rules")
        .key(&app.admin_key)
        .peer("192.0.2.1")
        .send()
        .await
        .json();
    assert_eq!(list["data"][0]["id"], rule["id"]);
    assert_eq!(list["data"][0]["last_matched_at"], "2026-06-01T12:03:00Z");
}

#[tokio::test]
async fn limits_and_prefix_bounds_are_enforced() {
    let app = TestApp::new().await;
    for (body, field) in [
        (
            json!({"ip_network": "192.0.2.0/24", "type": "deny"}),
            "ip_network",
        ),
        (
            json!({"ip_network": "2001:db8::/32", "type": "deny"}),
            "ip_network",
        ),
        (
            json!({"ip_network": "banana", "type": "deny"}),
            "ip_network",
        ),
    ] {
        let problem = add(&app, body, "192.0.2.1")
            .await
            .assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    add(
        &app,
        json!({"ip_network": "10.0.0.0/25", "type": "block"}),
        "192.0.2.1",
    )
    .await
    .assert_problem(400, "invalid_json");
    for i in 0..5 {
        assert_eq!(
            add(
                &app,
                json!({"ip_network": format!("198.51.100.{i}"), "type": "deny"}),
                "192.0.2.1"
            )
            .await
            .status,
            201
        );
    }
    let sixth = add(
        &app,
        json!({"ip_network": "198.51.100.9", "type": "deny"}),
        "192.0.2.1",
    )
    .await;
    sixth.assert_problem(409, "ip_rule_limit");
}

#[tokio::test]
async fn a_second_rule_of_the_same_range_and_kind_is_refused() {
    let app = TestApp::new().await;
    let from = "192.0.2.1";
    let first = add(
        &app,
        json!({"ip_network": "198.51.100.7", "type": "deny"}),
        from,
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    // The same range written another way is the same range.
    let again = add(
        &app,
        json!({"ip_network": "198.51.100.7/32", "type": "deny", "description": "again"}),
        from,
    )
    .await;
    again.assert_problem(409, "ip_rule_exists");
    assert!(again.text.contains("198.51.100.7/32"), "{}", again.text);
    // The other kind for the same range is a different rule (deny wins the tie); the
    // caller's own range is allowed first, so that no allow rule shuts it out.
    let own = add(
        &app,
        json!({"ip_network": "192.0.2.0/25", "type": "allow"}),
        from,
    )
    .await;
    assert_eq!(own.status, 201, "{}", own.text);
    let allow = add(
        &app,
        json!({"ip_network": "198.51.100.7", "type": "allow"}),
        from,
    )
    .await;
    assert_eq!(allow.status, 201, "{}", allow.text);
    // Changing a rule into a copy of another is refused too; changing it into itself is not.
    let allow_id = allow.json()["id"].as_str().unwrap().to_owned();
    let into_copy = app
        .patch(&format!("/v1/ip-rules/{allow_id}"))
        .key(&app.admin_key)
        .peer(from)
        .json(json!({"type": "deny"}))
        .send()
        .await;
    into_copy.assert_problem(409, "ip_rule_exists");
    let unchanged = app
        .patch(&format!("/v1/ip-rules/{allow_id}"))
        .key(&app.admin_key)
        .peer(from)
        .json(json!({"description": "kept"}))
        .send()
        .await;
    assert_eq!(unchanged.status, 200, "{}", unchanged.text);
    let list = app
        .get("/v1/ip-rules")
        .key(&app.admin_key)
        .peer(from)
        .send()
        .await
        .json();
    assert_eq!(list["data"].as_array().unwrap().len(), 3, "{list}");
}

#[tokio::test]
async fn a_change_that_shuts_out_the_caller_needs_confirmation() {
    let app = TestApp::new().await;
    let me = "192.0.2.50";
    let refused = add(
        &app,
        json!({"ip_network": "198.51.100.0/25", "type": "allow"}),
        me,
    )
    .await;
    let problem = refused.assert_problem(409, "lockout");
    assert!(problem["detail"].as_str().unwrap().contains(me));
    add(
        &app,
        json!({"ip_network": "192.0.2.50", "type": "deny"}),
        me,
    )
    .await
    .assert_problem(409, "lockout");
    let allow_me = add(
        &app,
        json!({"ip_network": "192.0.2.0/25", "type": "allow"}),
        me,
    )
    .await
    .json();
    let id = allow_me["id"].as_str().unwrap();
    let other = add(
        &app,
        json!({"ip_network": "198.51.100.0/25", "type": "allow"}),
        me,
    )
    .await;
    assert_eq!(
        other.status, 201,
        "the caller still matches its own allow rule"
    );
    let delete = |confirm: &'static str| {
        app.call(
            axum::http::Method::DELETE,
            &format!("/v1/ip-rules/{id}{confirm}"),
        )
        .key(&app.admin_key)
        .peer(me)
        .send()
    };
    delete("").await.assert_problem(409, "lockout");
    let still = app
        .get("/v1/ip-rules")
        .key(&app.admin_key)
        .peer(me)
        .send()
        .await
        .json();
    assert_eq!(
        still["data"].as_array().unwrap().len(),
        2,
        "the unconfirmed delete changed nothing"
    );
    app.patch(&format!("/v1/ip-rules/{id}"))
        .key(&app.admin_key)
        .peer(me)
        .json(json!({"type": "deny"}))
        .send()
        .await
        .assert_problem(409, "lockout");
    assert_eq!(delete("?confirm_lockout=true").await.status, 204);
    app.get("/v1/ip-rules")
        .key(&app.admin_key)
        .peer(me)
        .send()
        .await
        .assert_problem(403, "ip_denied");
}

/// Two removals, each harmless alone (the caller still matches the other allow rule), sent
/// at once: the lockout guard must judge the second against the rules the first left, so
/// one is applied and the other refused, never both. Repeated, since the two reads must
/// both come before either write for the race to show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_cannot_together_shut_out_the_caller() {
    let me = "192.0.2.7";
    for _ in 0..10 {
        let app = TestApp::new().await;
        let mut mine = Vec::new();
        for network in ["192.0.2.0/25", "192.0.2.7", "198.51.100.0/25"] {
            let created = add(&app, json!({"ip_network": network, "type": "allow"}), me).await;
            assert_eq!(created.status, 201, "{}", created.text);
            mine.push(created.json()["id"].as_str().unwrap().to_owned());
        }
        let delete = |id: &str| {
            app.call(axum::http::Method::DELETE, &format!("/v1/ip-rules/{id}"))
                .key(&app.admin_key)
                .peer(me)
                .send()
        };
        let (first, second) = tokio::join!(delete(&mine[0]), delete(&mine[1]));
        let mut statuses = [first.status, second.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [204, 409], "{} / {}", first.text, second.text);
        let refused = if first.status == 409 { &first } else { &second };
        refused.assert_problem(409, "lockout");
        let rules = app
            .get("/v1/ip-rules")
            .key(&app.admin_key)
            .peer(me)
            .send()
            .await;
        assert_eq!(rules.status, 200, "the caller is not shut out");
        assert_eq!(rules.json()["data"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn rule_endpoints_need_their_scopes_and_stay_within_the_organization() {
    let app = TestApp::new().await;
    let reader = app
        .create_key(json!({"name": "reader", "permissions": ["ip_rules:read"]}))
        .await;
    let key = reader["key"].as_str().unwrap();
    assert_eq!(app.get("/v1/ip-rules").key(key).send().await.status, 200);
    app.post("/v1/ip-rules")
        .key(key)
        .json(json!({"ip_network": "192.0.2.1", "type": "deny"}))
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
    let other_admin = app.other_organization().await;
    let theirs = app
        .post("/v1/ip-rules")
        .key(&other_admin)
        .json(json!({"ip_network": "192.0.2.1", "type": "deny"}))
        .send()
        .await
        .json();
    let id = theirs["id"].as_str().unwrap();
    app.patch(&format!("/v1/ip-rules/{id}"))
        .key(&app.admin_key)
        .json(json!({"type": "allow"}))
        .send()
        .await
        .assert_problem(404, "not_found");
    app.call(axum::http::Method::DELETE, &format!("/v1/ip-rules/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        app.get("/v1/ip-rules")
            .key(&app.admin_key)
            .send()
            .await
            .json()["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}
