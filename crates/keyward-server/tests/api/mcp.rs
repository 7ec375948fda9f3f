//! `/mcp` spoken as JSON-RPC over HTTP, as an MCP client sends it: admitted by the bearer
//! credential, tools listed and run within its scopes, errors as tool errors.

use serde_json::{Value, json};

use crate::support::{TestApp, TestResponse};

/// One JSON-RPC request to `/mcp` with `key` as the bearer credential.
async fn rpc(app: &TestApp, key: Option<&str>, method: &str, params: Value) -> TestResponse {
    let call = app
        .post("/mcp")
        .header("host", "127.0.0.1")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    let call = match key {
        Some(key) => call.header("authorization", &format!("Bearer {key}")),
        None => call,
    };
    call.json(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
}

/// The result of a JSON-RPC call, asserting it answered one.
async fn result(app: &TestApp, key: &str, method: &str, params: Value) -> Value {
    let response = rpc(app, Some(key), method, params).await;
    assert_eq!(response.status, 200, "{}", response.text);
    let body = response.json();
    assert!(body.get("error").is_none(), "{body}");
    body["result"].clone()
}

/// Calls a tool; returns (is_error, the JSON of its text).
async fn call(app: &TestApp, key: &str, tool: &str, arguments: Value) -> (bool, Value) {
    let result = result(
        app,
        key,
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    )
    .await;
    let text = result["content"][0]["text"].as_str().unwrap_or("null");
    (
        result["isError"].as_bool().unwrap_or(false),
        serde_json::from_str(text).unwrap_or(Value::Null),
    )
}

async fn tool_names(app: &TestApp, key: &str) -> Vec<String> {
    let listed = result(app, key, "tools/list", json!({})).await;
    let mut names: Vec<String> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_request_without_a_credential_is_pointed_to_the_metadata() {
    let app = TestApp::new().await;
    let refused = rpc(&app, None, "tools/list", json!({})).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    let challenge = refused.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("resource_metadata=\"")
            && challenge.contains("/.well-known/oauth-protected-resource"),
        "{challenge}"
    );
    assert!(!challenge.contains("error="), "{challenge}");
    // A credential presented and refused is an invalid token (RFC 6750).
    let wrong = rpc(&app, Some("kw_live_not_a_key"), "tools/list", json!({})).await;
    assert_eq!(wrong.status, 401);
    let challenge = wrong.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("resource_metadata=") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    let metadata = app
        .get("/.well-known/oauth-protected-resource")
        .send()
        .await
        .expect(200)
        .json();
    assert!(metadata["resource"].as_str().unwrap().ends_with("/mcp"));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    assert_eq!(
        metadata["authorization_servers"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn the_tools_create_use_rotate_and_revoke_a_key_with_its_secrets_once() {
    let app = TestApp::new().await;
    let initialized = result(
        &app,
        &app.admin_key,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "test", "version": "1"}}),
    )
    .await;
    assert!(
        initialized["capabilities"]["tools"].is_object(),
        "{initialized}"
    );
    let names = tool_names(&app, &app.admin_key).await;
    for tool in [
        "create_key",
        "list_keys",
        "revoke_key",
        "rotate_key",
        "query_audit_log",
    ] {
        assert!(names.contains(&tool.to_owned()), "{names:?}");
    }
    let listed = result(&app, &app.admin_key, "tools/list", json!({})).await;
    let revoke = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "revoke_key")
        .unwrap();
    assert_eq!(revoke["annotations"]["destructiveHint"], true);
    assert_eq!(
        revoke["inputSchema"]["properties"]["key_id"]["type"],
        "string"
    );

    let (error, made) = call(
        &app,
        &app.admin_key,
        "create_key",
        json!({"name": "From an assistant", "permissions": ["dns:read"]}),
    )
    .await;
    assert!(!error, "{made}");
    assert_eq!(made["secrets_shown_once"], true);
    let (key, id) = (
        made["key"].as_str().unwrap(),
        made["key_id"].as_str().unwrap(),
    );
    keyward_store::testing::record_secrets([key, made["client_secret"].as_str().unwrap()]);
    assert_eq!(app.get("/v1/authorize").key(key).send().await.status, 200);
    app.state.engine.flush_usage().await.unwrap();
    let (error, usage) = call(&app, &app.admin_key, "key_usage", json!({"key_id": id})).await;
    assert!(!error, "{usage}");
    assert_eq!(usage["buckets"][0]["outcomes"]["VALID"], 1, "{usage}");
    // Read back, the key shows no secret.
    let (_, read) = call(&app, &app.admin_key, "get_key", json!({"key_id": id})).await;
    assert_eq!(read["key_id"], id);
    assert!(!read.to_string().contains(key));

    let (_, rotated) = call(&app, &app.admin_key, "rotate_key", json!({"key_id": id})).await;
    let new_key = rotated["key"].as_str().unwrap();
    keyward_store::testing::record_secrets([new_key, rotated["client_secret"].as_str().unwrap()]);
    assert_eq!(app.get("/v1/authorize").key(key).send().await.status, 401);
    assert_eq!(
        app.get("/v1/authorize").key(new_key).send().await.status,
        200
    );
    let (_, revoked) = call(&app, &app.admin_key, "revoke_key", json!({"key_id": id})).await;
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(
        app.get("/v1/authorize").key(new_key).send().await.status,
        401
    );

    let (_, audit) = call(
        &app,
        &app.admin_key,
        "query_audit_log",
        json!({"target_id": id}),
    )
    .await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.revoked", "key.rotated", "key.created"]);
    for event in audit["data"].as_array().unwrap() {
        assert_eq!(event["details"]["via"], "mcp", "{event}");
        assert!(
            event["actor"].as_str().unwrap().starts_with("api_key_"),
            "{event}"
        );
    }
}

#[tokio::test]
async fn a_credential_sees_and_runs_only_the_tools_its_scopes_allow() {
    let app = TestApp::new().await;
    let reader = app
        .create_key(json!({"name": "Reader", "permissions": ["keys:read"]}))
        .await;
    let reader = reader["key"].as_str().unwrap();
    assert_eq!(
        tool_names(&app, reader).await,
        ["get_key", "key_usage", "list_keys", "list_scopes"]
    );
    let (_, scopes) = call(&app, reader, "list_scopes", json!({})).await;
    assert!(
        scopes["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resource"] == "keys")
    );
    let (error, refused) = call(&app, reader, "create_key", json!({"name": "Nope"})).await;
    assert!(error);
    assert_eq!(refused["code"], "insufficient_scope");
    assert!(
        refused["message"].as_str().unwrap().contains("keys:write"),
        "{refused}"
    );

    // No escalation: a key cannot make a wider one.
    let narrow = app
        .create_key(json!({"name": "Narrow", "permissions": ["dns:read", "keys:write"]}))
        .await;
    let (error, refused) = call(
        &app,
        narrow["key"].as_str().unwrap(),
        "create_key",
        json!({"name": "Wider", "permissions": ["dns:write"]}),
    )
    .await;
    assert!(error);
    assert_eq!(refused["code"], "privilege_escalation");

    // Another organization's key is not found.
    let other = app.other_organization().await;
    let (_, theirs) = call(&app, &other, "list_keys", json!({})).await;
    let their_id = theirs["data"][0]["key_id"].as_str().unwrap().to_owned();
    let (error, missing) = call(&app, &app.admin_key, "get_key", json!({"key_id": their_id})).await;
    assert!(error);
    assert_eq!(missing["code"], "not_found");
    let (error, _) = call(
        &app,
        &app.admin_key,
        "revoke_key",
        json!({"key_id": their_id}),
    )
    .await;
    assert!(error);
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_endpoint_stays_usable() {
    let app = TestApp::new().await;
    // Not JSON-RPC.
    let garbage = app
        .post("/mcp")
        .header("host", "127.0.0.1")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", &format!("Bearer {}", app.admin_key))
        .raw("application/json", "{not json")
        .send()
        .await;
    assert!(garbage.status.is_client_error(), "{}", garbage.status);
    // An unknown tool is a protocol error; wrong argument types are errors too.
    let unknown = rpc(
        &app,
        Some(&app.admin_key),
        "tools/call",
        json!({"name": "drop_database", "arguments": {}}),
    )
    .await
    .json();
    assert!(unknown["error"].is_object(), "{unknown}");
    let wrong = rpc(
        &app,
        Some(&app.admin_key),
        "tools/call",
        json!({"name": "create_key", "arguments": {"name": 42}}),
    )
    .await
    .json();
    assert_eq!(wrong["result"]["isError"], true, "{wrong}");
    let refused: Value =
        serde_json::from_str(wrong["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(refused["code"], "validation_failed", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("invalid type"),
        "{refused}"
    );
    let (error, missing) = call(&app, &app.admin_key, "get_key", json!({})).await;
    assert!(error);
    assert_eq!(missing["code"], "validation_failed");
    assert!(
        missing["message"].as_str().unwrap().contains("key_id"),
        "{missing}"
    );
    let (error, bad) = call(
        &app,
        &app.admin_key,
        "list_keys",
        json!({"status": "sleeping"}),
    )
    .await;
    assert!(error);
    assert_eq!(bad["code"], "invalid_query");
    // Still answering.
    let (error, _) = call(&app, &app.admin_key, "list_keys", json!({})).await;
    assert!(!error);
}

#[tokio::test]
async fn keys_are_updated_and_ip_rules_managed_with_the_apis_rules() {
    let app = TestApp::new().await;
    let key = app
        .create_key(json!({"name": "Before", "permissions": ["dns:read"]}))
        .await;
    let id = key["key_id"].as_str().unwrap();
    let (error, updated) = call(
        &app,
        &app.admin_key,
        "update_key",
        json!({"key_id": id, "name": "After", "owner_id": "customer-7", "expires_at": null}),
    )
    .await;
    assert!(!error, "{updated}");
    assert_eq!(updated["name"], "After");
    assert_eq!(updated["owner_id"], "customer-7");
    let (error, bad) = call(
        &app,
        &app.admin_key,
        "update_key",
        json!({"key_id": id, "expires_at": "tomorrow"}),
    )
    .await;
    assert!(error);
    assert_eq!(bad["code"], "validation_failed");

    // The lockout guard holds the caller's own address (127.0.0.1 here).
    let (error, locked) = call(
        &app,
        &app.admin_key,
        "add_ip_rule",
        json!({"ip_network": "127.0.0.1", "type": "deny"}),
    )
    .await;
    assert!(error);
    assert_eq!(locked["code"], "lockout");
    let (error, rule) = call(
        &app,
        &app.admin_key,
        "add_ip_rule",
        json!({"ip_network": "203.0.113.9", "type": "deny", "description": "scraper"}),
    )
    .await;
    assert!(!error, "{rule}");
    let (_, listed) = call(&app, &app.admin_key, "list_ip_rules", json!({})).await;
    assert_eq!(listed["data"][0]["ip_network"], "203.0.113.9/32");
    assert_eq!(listed["your_ip"], "127.0.0.1");
    let (error, _) = call(
        &app,
        &app.admin_key,
        "remove_ip_rule",
        json!({"rule_id": rule["id"]}),
    )
    .await;
    assert!(!error);
    let (_, listed) = call(&app, &app.admin_key, "list_ip_rules", json!({})).await;
    assert_eq!(listed["data"], json!([]));

    // A key that may only read rules sees no tool that changes them.
    let reader = app
        .create_key(json!({"name": "Rules reader", "permissions": ["ip_rules:read"]}))
        .await;
    assert_eq!(
        tool_names(&app, reader["key"].as_str().unwrap()).await,
        ["list_ip_rules", "list_scopes"]
    );
    let (_, roles) = call(&app, &app.admin_key, "list_roles", json!({})).await;
    assert!(
        roles["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["builtin"] == true)
    );
}

#[tokio::test]
async fn webhooks_and_their_deliveries_are_read_without_their_secrets() {
    let app = TestApp::new().await;
    let made = app
        .post("/v1/webhooks")
        .key(&app.admin_key)
        .json(json!({"url": "https://hooks.example.com/k", "events": ["key.created"]}))
        .send()
        .await
        .expect(201)
        .json();
    let secret = made["secret"].as_str().unwrap();
    keyward_store::testing::record_secrets([secret]);
    app.create_key(json!({"name": "Announced"})).await;
    let (error, listed) = call(&app, &app.admin_key, "list_webhooks", json!({})).await;
    assert!(!error, "{listed}");
    assert_eq!(listed["data"][0]["id"], made["id"]);
    assert!(!listed.to_string().contains(secret));
    let (error, deliveries) = call(
        &app,
        &app.admin_key,
        "list_webhook_deliveries",
        json!({"webhook_id": made["id"]}),
    )
    .await;
    assert!(!error, "{deliveries}");
    assert_eq!(deliveries["data"][0]["event_type"], "key.created");
    assert_eq!(deliveries["data"][0]["status"], "pending");
    let (error, bad) = call(
        &app,
        &app.admin_key,
        "list_webhook_deliveries",
        json!({"webhook_id": made["id"], "cursor": "nope"}),
    )
    .await;
    assert!(error);
    assert_eq!(bad["code"], "invalid_query");
    // Without webhooks:read, neither is listed.
    let keys_only = app
        .create_key(json!({"name": "Keys", "permissions": ["keys:read"]}))
        .await;
    let names = tool_names(&app, keys_only["key"].as_str().unwrap()).await;
    assert!(!names.iter().any(|n| n.contains("webhook")), "{names:?}");
}

#[tokio::test]
async fn verify_key_answers_what_the_verify_endpoint_answers() {
    let app = TestApp::new().await;
    let made = app
        .create_key(json!({"name": "Presented", "permissions": ["dns:read"]}))
        .await;
    let key = made["key"].as_str().unwrap();
    let (error, valid) = call(
        &app,
        &app.admin_key,
        "verify_key",
        json!({"key": key, "required_scopes": ["dns:read"], "environment": "live"}),
    )
    .await;
    assert!(!error, "{valid}");
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["code"], "VALID");
    assert_eq!(valid["key_id"], made["key_id"]);
    assert_eq!(valid["scopes"], json!(["dns:read"]));
    assert!(valid["rate_limit"]["remaining"].is_u64(), "{valid}");
    // The endpoint's answer has the same members.
    let endpoint = app
        .post("/v1/keys/verify")
        .header("x-api-key", &app.admin_key)
        .json(json!({"key": key, "required_scopes": ["dns:read"], "environment": "live"}))
        .send()
        .await
        .json();
    let members = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(members(&endpoint), members(&valid));

    for (arguments, code) in [
        (
            json!({"key": key, "required_scopes": ["dns:write"]}),
            "INSUFFICIENT_SCOPE",
        ),
        (
            json!({"key": key, "environment": "test"}),
            "ENVIRONMENT_MISMATCH",
        ),
        (json!({"key": "not a key"}), "MALFORMED"),
    ] {
        let (error, answer) = call(&app, &app.admin_key, "verify_key", arguments).await;
        assert!(!error, "{answer}");
        assert_eq!(
            (answer["valid"].clone(), answer["code"].clone()),
            (json!(false), json!(code))
        );
        assert!(answer.get("key_id").is_none(), "{answer}");
    }
    // Another organization's key is not found.
    let other = app.other_organization().await;
    let (_, theirs) = call(&app, &app.admin_key, "verify_key", json!({"key": other})).await;
    assert_eq!(theirs["code"], "NOT_FOUND");
    // Bad arguments are tool errors naming the field.
    for (arguments, field) in [
        (json!({"key": key, "environment": "staging"}), "environment"),
        (json!({"key": key, "client_ip": "here"}), "client_ip"),
        (
            json!({"key": key, "required_scopes": ["no such:scope"]}),
            "required_scopes",
        ),
    ] {
        let (error, refused) = call(&app, &app.admin_key, "verify_key", arguments).await;
        assert!(error);
        assert_eq!(refused["code"], "validation_failed", "{refused}");
        assert!(
            refused["message"].as_str().unwrap().contains(field),
            "{refused}"
        );
    }
    // A key put in the wrong field is not repeated in the error.
    let (error, refused) = call(
        &app,
        &app.admin_key,
        "verify_key",
        json!({"key": key, "required_scopes": key}),
    )
    .await;
    assert!(error);
    assert_eq!(refused["code"], "validation_failed", "{refused}");
    assert!(!refused.to_string().contains(key), "{refused}");
    // A credential without keys:verify sees no such tool, and is refused it.
    let reader = app
        .create_key(json!({"name": "Reader", "permissions": ["keys:read"]}))
        .await;
    let reader = reader["key"].as_str().unwrap();
    assert!(
        !tool_names(&app, reader)
            .await
            .contains(&"verify_key".to_owned())
    );
    let (error, refused) = call(&app, reader, "verify_key", json!({"key": key})).await;
    assert!(error);
    assert_eq!(refused["code"], "insufficient_scope");
    assert!(
        refused["message"].as_str().unwrap().contains("keys:verify"),
        "{refused}"
    );
}

#[tokio::test]
async fn each_request_is_admitted_under_the_credentials_rate_limit_and_ip_rules() {
    let app = TestApp::new().await;
    let limited = app
        .create_key(json!({"name": "Slow", "permissions": ["keys:read"], "rate_limit_override": 1}))
        .await;
    let limited = limited["key"].as_str().unwrap();
    // A limit of one a second with a burst of two: the third request is refused before
    // any tool runs, as the API refuses it.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(rpc(&app, Some(limited), "tools/list", json!({})).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(codes, [200, 200, 429]);
    assert!(statuses[2].headers.contains_key("retry-after"));

    // An organization rule that denies the caller's address shuts MCP out with the API.
    let denied = app
        .post("/v1/ip-rules")
        .key(&app.admin_key)
        .json(json!({"ip_network": "127.0.0.1", "type": "deny", "confirm_lockout": true}))
        .send()
        .await;
    assert_eq!(denied.status, 201, "{}", denied.text);
    let refused = rpc(&app, Some(&app.admin_key), "tools/list", json!({})).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
}

#[tokio::test]
async fn a_key_may_start_later_and_be_moved_by_update() {
    let app = TestApp::new().await;
    let (error, made) = call(
        &app,
        &app.admin_key,
        "create_key",
        json!({"name": "Tomorrow", "not_before": "2026-06-02T00:00:00Z"}),
    )
    .await;
    assert!(!error, "{made}");
    assert_eq!(made["not_before"], "2026-06-02T00:00:00Z");
    let key = made["key"].as_str().unwrap();
    let (_, early) = call(&app, &app.admin_key, "verify_key", json!({"key": key})).await;
    assert_eq!(early["code"], "NOT_YET_VALID");
    let (error, moved) = call(
        &app,
        &app.admin_key,
        "update_key",
        json!({"key_id": made["key_id"], "not_before": null}),
    )
    .await;
    assert!(!error, "{moved}");
    assert!(moved["not_before"].is_null(), "{moved}");
    let (_, now) = call(&app, &app.admin_key, "verify_key", json!({"key": key})).await;
    assert_eq!(now["code"], "VALID");
    let (error, bad) = call(
        &app,
        &app.admin_key,
        "create_key",
        json!({"name": "Bad", "not_before": "soon"}),
    )
    .await;
    assert!(error);
    assert_eq!(bad["code"], "validation_failed");
    assert!(
        bad["message"].as_str().unwrap().contains("not_before"),
        "{bad}"
    );
}

#[tokio::test]
async fn every_tool_says_whether_it_reads_or_takes_something_away() {
    let app = TestApp::new().await;
    let listed = result(&app, &app.admin_key, "tools/list", json!({})).await;
    let read_only = [
        "get_key",
        "key_usage",
        "list_ip_rules",
        "list_keys",
        "list_roles",
        "list_scopes",
        "list_webhook_deliveries",
        "list_webhooks",
        "query_audit_log",
    ];
    let destructive = [
        "add_ip_rule",
        "disable_key",
        "remove_ip_rule",
        "revoke_key",
        "rotate_key",
        "update_key",
    ];
    let tools = listed["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 18, "{listed}");
    for tool in tools {
        let name = tool["name"].as_str().unwrap();
        let hints = &tool["annotations"];
        let reads = read_only.contains(&name);
        assert_eq!(hints["readOnlyHint"], reads, "{name}: {hints}");
        if !reads {
            assert_eq!(
                hints["destructiveHint"],
                destructive.contains(&name),
                "{name}: {hints}"
            );
        }
        assert_eq!(hints["openWorldHint"], false, "{name}: {hints}");
        assert!(
            tool["description"].as_str().unwrap().len() > 40,
            "{name} says what it does"
        );
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
    }
}

#[tokio::test]
async fn update_key_reads_null_as_the_api_does() {
    let app = TestApp::new().await;
    let made = app
        .create_key(json!({
            "name": "Open me",
            "permissions": ["dns:read"],
            "ip_allowlist": ["192.0.2.0/24"],
            "metadata": {"plan": "pro"}
        }))
        .await;
    let (error, changed) = call(
        &app,
        &app.admin_key,
        "update_key",
        json!({"key_id": made["key_id"], "ip_allowlist": null, "metadata": null, "permissions": null}),
    )
    .await;
    assert!(!error, "{changed}");
    assert_eq!(changed["ip_allowlist"], json!([]));
    assert_eq!(changed["metadata"], json!({}));
    assert_eq!(changed["permissions"], json!([]));
    let (error, refused) = call(
        &app,
        &app.admin_key,
        "update_key",
        json!({"key_id": made["key_id"], "name": null}),
    )
    .await;
    assert!(error);
    assert_eq!(refused["code"], "validation_failed");
    assert!(
        refused["message"].as_str().unwrap().contains("name"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_tool_refused_for_a_scope_counts_as_such_in_the_keys_usage() {
    let app = TestApp::new().await;
    let reader = app
        .create_key(json!({"name": "Reader", "permissions": ["keys:read"]}))
        .await;
    let id = reader["key_id"].as_str().unwrap().to_owned();
    let reader = reader["key"].as_str().unwrap();
    let (error, _) = call(&app, reader, "list_keys", json!({})).await;
    assert!(!error);
    for _ in 0..2 {
        let (error, refused) = call(&app, reader, "create_key", json!({"name": "Nope"})).await;
        assert!(error);
        assert_eq!(refused["code"], "insufficient_scope");
    }
    app.state.engine.flush_usage().await.unwrap();
    let usage = app
        .get(&format!("/v1/keys/{id}/usage?granularity=day"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(
        usage["buckets"][0]["outcomes"]["INSUFFICIENT_SCOPE"], 2,
        "{usage}"
    );
}
