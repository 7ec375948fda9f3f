//! `/v1/roles` and `/v1/scopes`.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn the_catalogue_lists_resources_presets_and_wildcards() {
    let app = TestApp::new().await;
    let response = app.get("/v1/scopes").key(&app.admin_key).send().await;
    assert_eq!(response.status, 200);
    let body = response.json();
    let dns = body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "dns")
        .unwrap();
    assert_eq!(dns["actions"], json!(["read", "write", "delete"]));
    assert_eq!(body["presets"], json!(["read", "write", "delete"]));
    assert_eq!(body["wildcards"], json!(["*", "resource:*"]));
}

#[tokio::test]
async fn custom_roles_grant_their_scopes_and_never_beyond_the_creator() {
    let app = TestApp::new().await;
    let builtin = app.get("/v1/roles").key(&app.admin_key).send().await.json();
    let names: Vec<&str> = builtin["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "admin",
            "viewer",
            "domain_manager",
            "dns_manager",
            "billing_manager"
        ]
    );

    let created = app
        .post("/v1/roles")
        .key(&app.admin_key)
        .json(json!({"name": "key_auditor", "scopes": ["keys:read", "audit_log:read"]}))
        .send()
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["builtin"], false);
    let auditor = app
        .create_key(json!({"name": "auditor", "role": "key_auditor"}))
        .await;
    let key = auditor["key"].as_str().unwrap();
    assert_eq!(app.get("/v1/audit-log").key(key).send().await.status, 200);
    app.post("/v1/keys")
        .key(key)
        .json(json!({"name": "x"}))
        .send()
        .await
        .assert_problem(403, "insufficient_scope");

    app.post("/v1/roles")
        .key(&app.admin_key)
        .json(json!({"name": "key_auditor", "scopes": []}))
        .send()
        .await
        .assert_problem(409, "role_exists");
    for (body, field) in [
        (json!({"name": "admin", "scopes": []}), "name"),
        (json!({"name": "Bad Name", "scopes": []}), "name"),
        (json!({"name": "x", "scopes": ["dns:fly"]}), "scopes"),
    ] {
        let problem = app
            .post("/v1/roles")
            .key(&app.admin_key)
            .json(body)
            .send()
            .await
            .assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let limited = app
        .create_key(json!({"name": "limited", "permissions": ["roles:*", "dns:read", "keys:*"]}))
        .await;
    let limited = limited["key"].as_str().unwrap();
    app.post("/v1/roles")
        .key(limited)
        .json(json!({"name": "wide", "scopes": ["dns:*"]}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    assert_eq!(
        app.post("/v1/roles")
            .key(limited)
            .json(json!({"name": "narrow", "scopes": ["dns:read"]}))
            .send()
            .await
            .status,
        201
    );
    // A custom role holding more than the caller cannot be handed out by it either.
    app.post("/v1/keys")
        .key(limited)
        .json(json!({"name": "x", "role": "key_auditor"}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    assert_eq!(
        app.post("/v1/keys")
            .key(limited)
            .json(json!({"name": "x", "role": "narrow"}))
            .send()
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn another_organizations_roles_are_unknown_here() {
    let app = TestApp::new().await;
    let other_admin = app.other_organization().await;
    app.post("/v1/roles")
        .key(&other_admin)
        .json(json!({"name": "theirs", "scopes": ["dns:read"]}))
        .send()
        .await
        .expect(201);
    let problem = app
        .post("/v1/keys")
        .key(&app.admin_key)
        .json(json!({"name": "x", "role": "theirs"}))
        .send()
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "role");
    let listed = app.get("/v1/roles").key(&app.admin_key).send().await.text;
    assert!(!listed.contains("theirs"));
}
