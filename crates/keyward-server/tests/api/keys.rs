//! Creating, reading, listing and changing credentials.

use regex::Regex;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn creating_a_key_answers_seed_004s_fields_and_three_values() {
    let app = TestApp::new().await;
    let response = app
        .post("/v1/keys")
        .key(&app.admin_key)
        .json(json!({
            "name": "  Production Monitoring ",
            "description": "reads DNS",
            "environment": "live",
            "permissions": ["dns:read", "domains:read"],
            "ip_allowlist": ["203.0.113.0/24", "2001:db8::1"],
            "rate_limit_override": 25,
            "metadata": {"plan": "pro"},
            "owner_id": "customer-42",
            "expires_at": "2026-12-31T00:00:00Z"
        }))
        .send()
        .await;
    assert_eq!(response.status, 201, "{}", response.text);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    let key = body["key"].as_str().unwrap();
    assert!(
        Regex::new(r"^kw_live_[0-9A-Za-z]{38}$")
            .unwrap()
            .is_match(key),
        "{key}"
    );
    assert!(
        Regex::new(r"^kw_cs_[0-9A-Za-z]{46}$")
            .unwrap()
            .is_match(body["client_secret"].as_str().unwrap())
    );
    assert!(
        Regex::new(r"^api_key_[0-7][0-9a-hjkmnp-tv-z]{25}$")
            .unwrap()
            .is_match(body["key_id"].as_str().unwrap())
    );
    assert_eq!(body["client_id"], app.organization_id);
    assert_eq!(body["name"], "Production Monitoring");
    assert_eq!(body["prefix"], "kw_live_");
    assert_eq!(body["hint"], &key[key.len() - 4..]);
    assert_eq!(body["environment"], "live");
    assert_eq!(body["permissions"], json!(["dns:read", "domains:read"]));
    assert_eq!(
        body["ip_allowlist"],
        json!(["203.0.113.0/24", "2001:db8::1/128"])
    );
    assert_eq!(body["rate_limit_override"], 25);
    assert_eq!(body["metadata"], json!({"plan": "pro"}));
    assert_eq!(body["owner_id"], "customer-42");
    assert_eq!(body["expires_at"], "2026-12-31T00:00:00Z");
    assert_eq!(body["not_before"], json!(null));
    assert_eq!(body["created_at"], "2026-06-01T12:00:00Z");
    assert_eq!(body["status"], "active");
    assert_eq!(body["last_used_at"], json!(null));

    // The new key authenticates from its allowed range (and cannot list keys without keys:read).
    let own = app
        .get("/v1/keys")
        .key(key)
        .peer("203.0.113.5")
        .send()
        .await;
    own.assert_problem(403, "insufficient_scope");
}

#[tokio::test]
async fn defaults_apply_when_only_a_name_is_given() {
    let app = TestApp::new().await;
    let body = app.create_key(json!({"name": "minimal"})).await;
    assert_eq!(body["environment"], "live");
    assert_eq!(body["permissions"], json!([]));
    assert_eq!(body["ip_allowlist"], json!([]));
    assert_eq!(body["metadata"], json!({}));
    assert_eq!(body["expires_at"], json!(null));
    assert_eq!(body["rate_limit_override"], json!(null));
}

#[tokio::test]
async fn test_environment_keys_are_marked_test() {
    let app = TestApp::new().await;
    let body = app
        .create_key(json!({"name": "ci", "environment": "test"}))
        .await;
    assert!(body["key"].as_str().unwrap().starts_with("kw_test_"));
    assert_eq!(body["prefix"], "kw_test_");
    assert_eq!(body["environment"], "test");
}

#[tokio::test]
async fn a_deployment_prefix_is_used_in_every_secret() {
    let config = keyward_server::ServerConfig {
        service: keyward_service::ServiceConfig {
            key_prefix: keyward_core::secret::KeyPrefix::new("edns").unwrap(),
            ..Default::default()
        },
        ..Default::default()
    };
    let app = TestApp::with_config(config).await;
    assert!(app.admin_key.starts_with("edns_live_"));
    let body = app.create_key(json!({"name": "p"})).await;
    assert!(body["key"].as_str().unwrap().starts_with("edns_live_"));
    assert!(
        body["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("edns_cs_")
    );
}

#[tokio::test]
async fn a_key_reads_back_as_created_without_secrets() {
    let app = TestApp::new().await;
    let created = app
        .create_key(json!({"name": "read me", "permissions": ["read"], "role": "dns_manager"}))
        .await;
    let id = created["key_id"].as_str().unwrap();
    let read = app
        .get(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .send()
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("key");
    expected.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(read.json(), expected);
}

#[tokio::test]
async fn listing_pages_newest_first_and_filters() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let env = if i % 2 == 0 { "live" } else { "test" };
        let body = app.create_key(json!({"name": format!("k{i}"), "environment": env, "owner_id": format!("o{}", i % 2)})).await;
        ids.push(body["key_id"].as_str().unwrap().to_owned());
        app.clock.advance(time::Duration::SECOND);
    }
    let bootstrap = app
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
    ids.insert(0, bootstrap.as_str().unwrap().to_owned());
    ids.reverse();

    let mut seen = Vec::new();
    let mut uri = "/v1/keys?limit=2".to_owned();
    loop {
        let page = app.get(&uri).key(&app.admin_key).send().await;
        assert_eq!(page.status, 200, "{}", page.text);
        let body = page.json();
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(
            data.iter()
                .map(|k| k["key_id"].as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1/keys?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let test_keys = app
        .get("/v1/keys?environment=test")
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(test_keys["data"].as_array().unwrap().len(), 2);
    let owned = app
        .get("/v1/keys?owner_id=o0")
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(owned["data"].as_array().unwrap().len(), 3);
    assert!(
        owned["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["owner_id"] == "o0")
    );
}

#[tokio::test]
async fn status_filters_include_derived_expiry() {
    let app = TestApp::new().await;
    let expiring = app
        .create_key(json!({"name": "soon", "expires_at": "2026-06-01T13:00:00Z"}))
        .await;
    let disabled = app.create_key(json!({"name": "off"})).await;
    let id = disabled["key_id"].as_str().unwrap();
    app.post(&format!("/v1/keys/{id}/disable"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);
    app.clock.advance(time::Duration::hours(2));

    let names = |body: serde_json::Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let expired = app
        .get("/v1/keys?status=expired")
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(names(expired.clone()), ["soon"]);
    assert_eq!(expired["data"][0]["status"], "expired");
    assert_eq!(expired["data"][0]["key_id"], expiring["key_id"]);
    assert_eq!(
        names(
            app.get("/v1/keys?status=disabled")
                .key(&app.admin_key)
                .send()
                .await
                .json()
        ),
        ["off"]
    );
    assert_eq!(
        names(
            app.get("/v1/keys?status=active")
                .key(&app.admin_key)
                .send()
                .await
                .json()
        ),
        ["Bootstrap credential"]
    );
}

#[tokio::test]
async fn a_patch_changes_only_the_fields_given_and_null_clears() {
    let app = TestApp::new().await;
    let created = app
        .create_key(json!({"name": "before", "description": "d", "owner_id": "o", "rate_limit_override": 5, "metadata": {"a": 1}}))
        .await;
    let id = created["key_id"].as_str().unwrap();
    app.clock.advance(time::Duration::MINUTE);
    let response = app
        .patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({"name": "after", "description": null, "rate_limit_override": null, "permissions": ["dns:*"], "expires_at": "2027-01-01T00:00:00Z"}))
        .send()
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    let body = response.json();
    assert_eq!(body["name"], "after");
    assert_eq!(body["description"], json!(null));
    assert_eq!(body["rate_limit_override"], json!(null));
    assert_eq!(body["permissions"], json!(["dns:*"]));
    assert_eq!(body["expires_at"], "2027-01-01T00:00:00Z");
    assert_eq!(body["owner_id"], "o", "absent fields stay");
    assert_eq!(body["metadata"], json!({"a": 1}));
    assert_eq!(body["updated_at"], "2026-06-01T12:01:00Z");
    assert_eq!(body["created_at"], "2026-06-01T12:00:00Z");
    let read = app
        .get(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(read, body);
}

#[tokio::test]
async fn a_patch_is_effective_at_once() {
    let app = TestApp::new().await;
    let created = app
        .create_key(json!({"name": "reader", "permissions": ["keys:read"]}))
        .await;
    let (id, key) = (
        created["key_id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    assert_eq!(app.get("/v1/keys").key(key).send().await.status, 200);
    let patched = app
        .patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({"permissions": ["dns:read"]}))
        .send()
        .await;
    assert_eq!(patched.status, 200);
    app.get("/v1/keys")
        .key(key)
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
    let restricted = app
        .patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({"permissions": ["keys:read"], "ip_allowlist": ["192.0.2.0/24"]}))
        .send()
        .await;
    assert_eq!(restricted.status, 200);
    let denied = app
        .get("/v1/keys")
        .key(key)
        .send()
        .await
        .assert_problem(403, "ip_denied");
    assert_eq!(denied["outcome"], "IP_DENIED");
    assert_eq!(
        app.get("/v1/keys")
            .key(key)
            .peer("192.0.2.77")
            .send()
            .await
            .status,
        200
    );
    assert_eq!(
        app.get("/v1/keys")
            .key(key)
            .peer("::ffff:192.0.2.77")
            .send()
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn concurrent_patches_lose_no_write() {
    let app = TestApp::new().await;
    let created = app.create_key(json!({"name": "contended"})).await;
    let id = created["key_id"].as_str().unwrap().to_owned();
    let a = app
        .patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({"description": "from a"}))
        .send();
    let b = app
        .patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({"owner_id": "from-b"}))
        .send();
    let (a, b) = tokio::join!(a, b);
    assert_eq!(
        (a.status.as_u16(), b.status.as_u16()),
        (200, 200),
        "{} {}",
        a.text,
        b.text
    );
    let read = app
        .get(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .send()
        .await
        .json();
    assert_eq!(read["description"], "from a");
    assert_eq!(read["owner_id"], "from-b");
}

#[tokio::test]
async fn keys_are_found_by_name_id_or_owner_and_never_by_secret() {
    let app = TestApp::new().await;
    let billing = app
        .create_key(json!({"name": "Billing sync", "owner_id": "cust-1"}))
        .await;
    app.create_key(json!({"name": "Mobile app", "owner_id": "cust-2"}))
        .await;
    let names = |body: serde_json::Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for (search, expected) in [
        ("billing", vec!["Billing sync"]),
        ("cust-2", vec!["Mobile app"]),
        (billing["key_id"].as_str().unwrap(), vec!["Billing sync"]),
        ("nothing like it", vec![]),
    ] {
        let found = app
            .get(&format!("/v1/keys?search={}", urlencoding(search)))
            .key(&app.admin_key)
            .send()
            .await
            .expect(200)
            .json();
        assert_eq!(names(found), expected, "{search}");
    }
    // A pasted secret is refused, and pointed to the lookup that hashes it.
    let secret = billing["key"].as_str().unwrap();
    let refused = app
        .get(&format!("/v1/keys?search={secret}"))
        .key(&app.admin_key)
        .send()
        .await;
    let problem = refused.assert_problem(400, "invalid_query");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("/v1/keys/lookup"),
        "{problem}"
    );
    assert!(
        !refused.text.contains(secret),
        "the answer repeats no secret"
    );
    let looked_up = app
        .post("/v1/keys/lookup")
        .key(&app.admin_key)
        .json(json!({"secrets": [secret]}))
        .send()
        .await
        .json();
    assert_eq!(looked_up["data"][0]["key_id"], billing["key_id"]);
    app.get("/v1/keys?search=")
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(400, "invalid_query");
}

/// `text` percent-encoded for a query string.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
