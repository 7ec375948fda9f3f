//! Organizations never see each other; a caller never grants more than it holds.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn another_organizations_key_answers_404_everywhere() {
    let app = TestApp::new().await;
    let other_admin = app.other_organization().await;
    let theirs = app
        .create_key_as(&other_admin, json!({"name": "theirs"}))
        .await;
    let id = theirs["key_id"].as_str().unwrap();

    app.get(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(404, "not_found");
    app.patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({"name": "mine now"}))
        .send()
        .await
        .assert_problem(404, "not_found");
    for action in ["disable", "enable", "revoke", "rotate"] {
        app.post(&format!("/v1/keys/{id}/{action}"))
            .key(&app.admin_key)
            .send()
            .await
            .assert_problem(404, "not_found");
    }
    let listed = app
        .get("/v1/keys?limit=100")
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["key_id"] != id)
    );
    let audit = app
        .get("/v1/audit-log?limit=100")
        .key(&app.admin_key)
        .send()
        .await
        .text;
    assert!(!audit.contains(id), "another organization's events leaked");

    // Their key is untouched and still works for them.
    let read = app
        .get(&format!("/v1/keys/{id}"))
        .key(&other_admin)
        .send()
        .await
        .json();
    assert_eq!(read["name"], "theirs");
    assert_eq!(read["status"], "active");
}

#[tokio::test]
async fn ids_that_cannot_exist_answer_404() {
    let app = TestApp::new().await;
    for id in [
        "nope",
        "api_key_",
        "organization_01jxe20q5hf9p4bm3kfz7v0w6t",
        "api_key_01jxe20q5hf9p4bm3kfz7v0w6t",
        "api_key_81jxe20q5hf9p4bm3kfz7v0w6t",
    ] {
        app.get(&format!("/v1/keys/{id}"))
            .key(&app.admin_key)
            .send()
            .await
            .assert_problem(404, "not_found");
    }
}

async fn manager(app: &TestApp) -> String {
    let created = app
        .create_key(json!({"name": "manager", "permissions": ["keys:*", "dns:read", "domains:*"]}))
        .await;
    created["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_caller_creates_keys_only_within_its_own_scopes() {
    let app = TestApp::new().await;
    let key = manager(&app).await;
    for allowed in [
        json!(["dns:read"]),
        json!(["domains:write", "domains:*"]),
        json!(["keys:read"]),
        json!([]),
    ] {
        let response = app
            .post("/v1/keys")
            .key(&key)
            .json(json!({"name": "ok", "permissions": allowed}))
            .send()
            .await;
        assert_eq!(response.status, 201, "{allowed}: {}", response.text);
    }
    for refused in [
        json!({"permissions": ["dns:write"]}),
        json!({"permissions": ["*"]}),
        json!({"permissions": ["read"]}),
        json!({"permissions": ["dns:*"]}),
        json!({"role": "admin"}),
        json!({"role": "dns_manager"}),
    ] {
        let mut body = json!({"name": "too wide"});
        body.as_object_mut()
            .unwrap()
            .extend(refused.as_object().unwrap().clone());
        app.post("/v1/keys")
            .key(&key)
            .json(body)
            .send()
            .await
            .assert_problem(403, "privilege_escalation");
    }
}

#[tokio::test]
async fn a_caller_cannot_widen_rotate_or_enable_a_key_beyond_its_scopes() {
    let app = TestApp::new().await;
    let key = manager(&app).await;
    let mine = app
        .create_key_as(&key, json!({"name": "mine", "permissions": ["dns:read"]}))
        .await;
    let mine_id = mine["key_id"].as_str().unwrap();
    app.patch(&format!("/v1/keys/{mine_id}"))
        .key(&key)
        .json(json!({"permissions": ["dns:write"]}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    app.patch(&format!("/v1/keys/{mine_id}"))
        .key(&key)
        .json(json!({"role": "billing_manager"}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    assert_eq!(
        app.patch(&format!("/v1/keys/{mine_id}"))
            .key(&key)
            .json(json!({"permissions": ["domains:read"]}))
            .send()
            .await
            .status,
        200
    );
    assert_eq!(
        app.post(&format!("/v1/keys/{mine_id}/rotate"))
            .key(&key)
            .send()
            .await
            .status,
        200
    );

    let admin_made = app
        .create_key(json!({"name": "powerful", "permissions": ["billing:*"]}))
        .await;
    let powerful = admin_made["key_id"].as_str().unwrap();
    // Not even a change that changes nothing shows the caller a key beyond it.
    app.patch(&format!("/v1/keys/{powerful}"))
        .key(&key)
        .json(json!({}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    app.post(&format!("/v1/keys/{powerful}/rotate"))
        .key(&key)
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    app.patch(&format!("/v1/keys/{powerful}"))
        .key(&key)
        .json(json!({"name": "mine now"}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    app.post(&format!("/v1/keys/{powerful}/disable"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    app.post(&format!("/v1/keys/{powerful}/enable"))
        .key(&key)
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    // Narrowing is always allowed: revoking a more powerful key is not an escalation.
    assert_eq!(
        app.post(&format!("/v1/keys/{powerful}/revoke"))
            .key(&key)
            .send()
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_caller_cannot_raise_a_rate_limit_above_its_own() {
    let app = TestApp::new().await;
    // 20 a second; live keys default to 50.
    let limited = app
        .create_key(
            json!({"name": "limited", "permissions": ["keys:*"], "rate_limit_override": 20}),
        )
        .await;
    let (limited_id, limited) = (
        limited["key_id"].as_str().unwrap().to_owned(),
        limited["key"].as_str().unwrap(),
    );
    let create = |body: serde_json::Value| app.post("/v1/keys").key(limited).json(body).send();
    create(json!({"name": "faster", "rate_limit_override": 21}))
        .await
        .assert_problem(403, "privilege_escalation");
    // No override means the environment's default, 50 a second: more than 20.
    create(json!({"name": "default"}))
        .await
        .assert_problem(403, "privilege_escalation");
    let child = create(json!({"name": "slower", "rate_limit_override": 20}))
        .await
        .expect(201)
        .json();
    let child_id = child["key_id"].as_str().unwrap();
    for (id, body) in [
        (limited_id.as_str(), json!({"rate_limit_override": 1000})),
        (limited_id.as_str(), json!({"rate_limit_override": null})),
        (child_id, json!({"rate_limit_override": 21})),
    ] {
        app.patch(&format!("/v1/keys/{id}"))
            .key(limited)
            .json(body)
            .send()
            .await
            .assert_problem(403, "privilege_escalation");
    }
    let lowered = app
        .patch(&format!("/v1/keys/{child_id}"))
        .key(limited)
        .json(json!({"rate_limit_override": 5}))
        .send()
        .await
        .expect(200);
    assert_eq!(lowered.json()["rate_limit_override"], 5);
    let own = app
        .get(&format!("/v1/keys/{limited_id}"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    assert_eq!(own.json()["rate_limit_override"], 20);
    // A test key (10 a second by default) may not make a test key of 11.
    let test_key = app
        .create_key(json!({"name": "ci", "environment": "test", "permissions": ["keys:*"]}))
        .await;
    app.post("/v1/keys")
        .key(test_key["key"].as_str().unwrap())
        .json(json!({"name": "x", "environment": "test", "rate_limit_override": 11}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
}

#[tokio::test]
async fn a_caller_cannot_hand_out_more_environment_lifetime_or_reach_than_it_has() {
    let app = TestApp::new().await;
    let test_key = app
        .create_key(json!({"name": "ci", "environment": "test", "permissions": ["keys:*"]}))
        .await;
    let test_key = test_key["key"].as_str().unwrap();
    app.post("/v1/keys")
        .key(test_key)
        .json(json!({"name": "x"}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    assert_eq!(
        app.post("/v1/keys")
            .key(test_key)
            .json(json!({"name": "x", "environment": "test"}))
            .send()
            .await
            .status,
        201
    );

    let expiring = app.create_key(json!({"name": "contractor", "permissions": ["keys:*"], "expires_at": "2026-07-01T00:00:00Z"})).await;
    let (expiring_id, expiring) = (
        expiring["key_id"].as_str().unwrap().to_owned(),
        expiring["key"].as_str().unwrap(),
    );
    app.post("/v1/keys")
        .key(expiring)
        .json(json!({"name": "forever"}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    app.post("/v1/keys")
        .key(expiring)
        .json(json!({"name": "later", "expires_at": "2026-08-01T00:00:00Z"}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    assert_eq!(
        app.post("/v1/keys")
            .key(expiring)
            .json(json!({"name": "sooner", "expires_at": "2026-06-15T00:00:00Z"}))
            .send()
            .await
            .status,
        201
    );
    let own = app
        .patch(&format!("/v1/keys/{expiring_id}"))
        .key(expiring)
        .json(json!({"expires_at": null}))
        .send()
        .await;
    own.assert_problem(403, "privilege_escalation");

    let fenced = app
        .create_key(
            json!({"name": "fenced", "permissions": ["keys:*"], "ip_allowlist": ["192.0.2.0/24"]}),
        )
        .await;
    let (fenced_id, fenced) = (
        fenced["key_id"].as_str().unwrap().to_owned(),
        fenced["key"].as_str().unwrap(),
    );
    let from = "192.0.2.5";
    app.post("/v1/keys")
        .key(fenced)
        .peer(from)
        .json(json!({"name": "open"}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    app.post("/v1/keys")
        .key(fenced)
        .peer(from)
        .json(json!({"name": "wider", "ip_allowlist": ["192.0.0.0/16"]}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    let narrower = app
        .post("/v1/keys")
        .key(fenced)
        .peer(from)
        .json(json!({"name": "narrower", "ip_allowlist": ["192.0.2.128/25"]}))
        .send()
        .await;
    assert_eq!(narrower.status, 201, "{}", narrower.text);
    app.patch(&format!("/v1/keys/{fenced_id}"))
        .key(fenced)
        .peer(from)
        .json(json!({"ip_allowlist": []}))
        .send()
        .await
        .assert_problem(403, "privilege_escalation");
    assert_eq!(
        app.patch(&format!("/v1/keys/{fenced_id}"))
            .key(fenced)
            .peer(from)
            .json(json!({"name": "renamed"}))
            .send()
            .await
            .status,
        200
    );
}
