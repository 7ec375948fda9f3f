//! Bad input gets a clear 4xx problem+json answer naming what is wrong; never a 500.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn invalid_fields_are_named() {
    let app = TestApp::new().await;
    let long = "x".repeat(101);
    let big = "x".repeat(17 * 1024);
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": long}), "name"),
        (
            json!({"name": "n", "description": "d".repeat(1001)}),
            "description",
        ),
        (
            json!({"name": "n", "permissions": ["dns:fly"]}),
            "permissions",
        ),
        (
            json!({"name": "n", "permissions": ["spaceships:read"]}),
            "permissions",
        ),
        (json!({"name": "n", "role": "root"}), "role"),
        (
            json!({"name": "n", "ip_allowlist": ["300.0.0.1"]}),
            "ip_allowlist",
        ),
        (
            json!({"name": "n", "ip_allowlist": ["10.0.0.0/33"]}),
            "ip_allowlist",
        ),
        (
            json!({"name": "n", "rate_limit_override": 0}),
            "rate_limit_override",
        ),
        (json!({"name": "n", "metadata": [1, 2]}), "metadata"),
        (json!({"name": "n", "metadata": {"big": big}}), "metadata"),
        (
            json!({"name": "n", "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "n", "not_before": "2026-07-01T00:00:00Z", "expires_at": "2026-06-15T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"name": "n", "owner_id": ""}), "owner_id"),
        (json!({"name": "n", "owner_id": "kunde-ü"}), "owner_id"),
    ] {
        let response = app
            .post("/v1/keys")
            .key(&app.admin_key)
            .json(body.clone())
            .send()
            .await;
        let problem = response.assert_problem(422, "validation_failed");
        assert_eq!(
            problem["errors"][0]["field"], field,
            "{body}: {}",
            response.text
        );
    }
}

/// Text that shows something other than what it holds, and what each is refused with.
pub const DECEPTIVE_TEXT: [(&str, &str); 5] = [
    ("\u{200B}\u{200D}", "must contain a visible character"),
    (
        "pay\u{202E}fdp.exe",
        "must not contain bidirectional override characters",
    ),
    (
        "a\u{2066}b",
        "must not contain bidirectional override characters",
    ),
    ("a\u{1b}[31mb", "must not contain control characters"),
    ("caf\u{FFFD}", "must be valid UTF-8"),
];

#[tokio::test]
async fn names_and_descriptions_follow_one_text_rule_everywhere() {
    let app = TestApp::new().await;
    let created = app.create_key(json!({"name": "plain"})).await;
    let id = created["key_id"].as_str().unwrap();
    let rule = app
        .post("/v1/ip-rules")
        .key(&app.admin_key)
        .json(json!({"ip_network": "198.51.100.7", "type": "deny"}))
        .send()
        .await
        .expect(201);
    let rule_id = rule.json()["id"].as_str().unwrap().to_owned();
    for (text, says) in DECEPTIVE_TEXT {
        let calls = [
            (
                app.post("/v1/keys").json(json!({"name": text})),
                "name",
            ),
            (
                app.post("/v1/keys").json(json!({"name": "n", "description": format!("x {text}")})),
                "description",
            ),
            (
                app.patch(&format!("/v1/keys/{id}")).json(json!({"name": text})),
                "name",
            ),
            (
                app.post("/v1/ip-rules").json(json!({"ip_network": "198.51.100.8", "type": "deny", "description": format!("x {text}")})),
                "description",
            ),
            (
                app.patch(&format!("/v1/ip-rules/{rule_id}")).json(json!({"description": format!("x {text}")})),
                "description",
            ),
            (
                app.post("/v1/roles").json(json!({"name": "auditor", "scopes": ["keys:read"], "description": format!("x {text}")})),
                "description",
            ),
        ];
        for (call, field) in calls {
            let response = call.key(&app.admin_key).send().await;
            // "x {text}" for a description: invisible text beside visible text is allowed.
            if field == "description" && says.contains("visible") {
                assert!(response.status.is_success(), "{text:?}: {}", response.text);
                continue;
            }
            let problem = response.assert_problem(422, "validation_failed");
            assert_eq!(problem["errors"][0]["field"], field, "{text:?}");
            assert!(
                problem["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains(says),
                "{text:?}: {}",
                response.text
            );
        }
    }
}

#[tokio::test]
async fn a_patch_leaves_out_keeps_null_clears_or_is_refused() {
    let app = TestApp::new().await;
    let created = app
        .create_key(json!({
            "name": "full",
            "description": "d",
            "permissions": ["dns:read"],
            "ip_allowlist": ["192.0.2.0/24"],
            "metadata": {"plan": "pro"},
            "owner_id": "o",
            "rate_limit_override": 5,
            "expires_at": "2027-01-01T00:00:00Z",
        }))
        .await;
    let uri = format!("/v1/keys/{}", created["key_id"].as_str().unwrap());
    let patch = |body: serde_json::Value| app.patch(&uri).key(&app.admin_key).json(body).send();

    // Left out: unchanged.
    let same = patch(json!({})).await.expect(200).json();
    for field in [
        "name",
        "description",
        "permissions",
        "ip_allowlist",
        "metadata",
        "owner_id",
    ] {
        assert_eq!(same[field], created[field], "{field}");
    }
    // `null` where the field may not be empty: refused, naming it.
    patch(json!({"name": null}))
        .await
        .assert_problem(422, "validation_failed");
    // `null` where it may: cleared, each to its empty value.
    let cleared = patch(json!({
        "description": null,
        "permissions": null,
        "ip_allowlist": null,
        "metadata": null,
        "owner_id": null,
        "rate_limit_override": null,
        "expires_at": null,
    }))
    .await
    .expect(200)
    .json();
    assert_eq!(cleared["name"], "full");
    assert_eq!(cleared["description"], serde_json::Value::Null);
    assert_eq!(cleared["permissions"], json!([]));
    assert_eq!(cleared["ip_allowlist"], json!([]));
    assert_eq!(cleared["metadata"], json!({}));
    assert_eq!(cleared["owner_id"], serde_json::Value::Null);
    assert_eq!(cleared["rate_limit_override"], serde_json::Value::Null);
    assert_eq!(cleared["expires_at"], serde_json::Value::Null);

    // IP rules: the range and the type cannot be cleared; the note can.
    let rule = app
        .post("/v1/ip-rules")
        .key(&app.admin_key)
        .json(json!({"ip_network": "198.51.100.7", "type": "deny", "description": "n"}))
        .send()
        .await
        .expect(201)
        .json();
    let rule_uri = format!("/v1/ip-rules/{}", rule["id"].as_str().unwrap());
    for (body, field) in [
        (json!({"ip_network": null}), "ip_network"),
        (json!({"type": null}), "type"),
    ] {
        let problem = app
            .patch(&rule_uri)
            .key(&app.admin_key)
            .json(body)
            .send()
            .await
            .assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let noted = app
        .patch(&rule_uri)
        .key(&app.admin_key)
        .json(json!({"description": null}))
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(noted["description"], serde_json::Value::Null, "{noted}");
    assert_eq!(noted["ip_network"], "198.51.100.7/32");
}

#[tokio::test]
async fn unreadable_json_is_a_400_that_says_where() {
    let app = TestApp::new().await;
    for (body, mention) in [
        (r#"{"name": "n", "environment": "prod"}"#, "environment"),
        (r#"{"name": "n", "colour": "blue"}"#, "colour"),
        (r#"{"name": 5}"#, "name"),
        (r#"{"name": "n", "expires_at": "tomorrow"}"#, "expires_at"),
        (
            r#"{"name": "n", "rate_limit_override": -3}"#,
            "rate_limit_override",
        ),
        (r#"{"name": "n", "permissions": "dns:read"}"#, "permissions"),
        (r#"{"name": "n""#, ""),
        (r#"{"name": "n"} trailing"#, ""),
        ("[]", ""),
        ("", ""),
    ] {
        let response = app
            .post("/v1/keys")
            .key(&app.admin_key)
            .raw("application/json", body)
            .send()
            .await;
        let problem = response.assert_problem(400, "invalid_json");
        assert!(
            problem["detail"].as_str().unwrap().contains(mention),
            "{body}: {}",
            response.text
        );
    }
}

#[tokio::test]
async fn the_environment_cannot_be_patched() {
    let app = TestApp::new().await;
    let created = app.create_key(json!({"name": "live one"})).await;
    let id = created["key_id"].as_str().unwrap();
    let response = app
        .patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({"environment": "test"}))
        .send()
        .await;
    response.assert_problem(400, "invalid_json");
}

#[tokio::test]
async fn wrong_media_types_and_large_bodies_are_refused() {
    let app = TestApp::new().await;
    app.post("/v1/keys")
        .key(&app.admin_key)
        .raw("text/plain", r#"{"name":"n"}"#)
        .send()
        .await
        .assert_problem(415, "unsupported_media_type");
    app.post("/v1/keys")
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(415, "unsupported_media_type");
    let huge = format!(r#"{{"name":"n","description":"{}"}}"#, "x".repeat(200_000));
    app.post("/v1/keys")
        .key(&app.admin_key)
        .raw("application/json", huge)
        .send()
        .await
        .assert_problem(413, "payload_too_large");
    let ok = app
        .post("/v1/keys")
        .key(&app.admin_key)
        .raw("application/merge-patch+json", r#"{"name":"n"}"#)
        .send()
        .await;
    assert_eq!(ok.status, 201, "a +json media type is JSON");
}

#[tokio::test]
async fn bad_query_parameters_are_named() {
    let app = TestApp::new().await;
    for (query, mention) in [
        ("status=gone", "status"),
        ("environment=prod", "environment"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=many", "limit"),
        ("cursor=bogus", "cursor"),
    ] {
        let response = app
            .get(&format!("/v1/keys?{query}"))
            .key(&app.admin_key)
            .send()
            .await;
        let problem = response.assert_problem(400, "invalid_query");
        assert!(
            problem["detail"].as_str().unwrap().contains(mention),
            "{query}: {}",
            response.text
        );
    }
    app.get("/v1/audit-log?limit=0")
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(400, "invalid_query");
    app.get("/v1/audit-log?cursor=x")
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(400, "invalid_query");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_problems() {
    let app = TestApp::new().await;
    app.get("/v1/nothing")
        .send()
        .await
        .assert_problem(404, "not_found");
    app.call(axum::http::Method::DELETE, "/v1/keys")
        .key(&app.admin_key)
        .send()
        .await
        .assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn arbitrary_bodies_never_cause_a_server_error() {
    let app = TestApp::new().await;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let fragments = [
        "{",
        "}",
        "[",
        "]",
        "\"name\"",
        ":",
        ",",
        "\"x\"",
        "null",
        "1e999",
        "-1",
        "\"\\u0000\"",
        "true",
        "\"permissions\"",
        "\"expires_at\"",
        "\"2026-13-45T99:99:99Z\"",
        "\"metadata\"",
        "{}",
        "\"ip_allowlist\"",
        "\"::ffff:1.2.3.4/200\"",
        "\u{feff}",
        "\"\u{1F600}\"",
        "18446744073709551616",
    ];
    for _ in 0..400 {
        let mut body = String::new();
        for _ in 0..(seed % 12) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            body.push_str(fragments[(seed % fragments.len() as u64) as usize]);
        }
        seed = seed.wrapping_add(1);
        for uri in ["/v1/keys".to_owned()] {
            let response = app
                .post(&uri)
                .key(&app.admin_key)
                .raw("application/json", body.clone())
                .send()
                .await;
            assert!(
                response.status.is_client_error() || response.status.as_u16() == 201,
                "{body} → {} {}",
                response.status,
                response.text
            );
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_times_out() {
    use futures_util::StreamExt;
    let config = keyward_server::ServerConfig {
        request_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let app = TestApp::with_config(config).await;
    let first = futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from(
        r#"{"name": "#,
    ))]);
    let stalled = axum::body::Body::from_stream(first.chain(futures_util::stream::pending()));
    let response = app
        .post("/v1/keys")
        .key(&app.admin_key)
        .raw("application/json", stalled)
        .send()
        .await;
    response.assert_problem(408, "request_timeout");
}
