//! The OpenAPI document is served, complete, and snapshot-tested.

use crate::support::TestApp;

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = TestApp::new().await;
    let response = app.get("/v1/openapi.json").send().await;
    assert_eq!(response.status, 200);
    let document = response.json();
    assert_eq!(document["openapi"], "3.1.0");
    for (path, methods) in [
        ("/v1/keys", &["get", "post"][..]),
        ("/v1/keys/{id}", &["get", "patch"]),
        ("/v1/keys/{id}/disable", &["post"]),
        ("/v1/keys/{id}/enable", &["post"]),
        ("/v1/keys/{id}/revoke", &["post"]),
        ("/v1/keys/{id}/rotate", &["post"]),
        ("/v1/audit-log", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
    ] {
        for method in methods {
            assert!(
                document["paths"][path][method].is_object(),
                "{method} {path} is missing"
            );
        }
    }
    insta::assert_json_snapshot!("openapi", document);
}

#[tokio::test]
async fn every_operation_declares_what_it_can_answer() {
    let app = TestApp::new().await;
    let document = app.get("/v1/openapi.json").send().await.json();
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "{at}: operationId {id} twice");
            let responses = operation["responses"].as_object().unwrap();
            for (status, response) in responses {
                assert!(
                    !response["description"].as_str().unwrap_or("").is_empty(),
                    "{at}: {status} has no description"
                );
            }
            // What the gate answers before any handler runs.
            let gated = operation["security"]
                .as_array()
                .is_some_and(|alternatives| {
                    alternatives.iter().any(|a| a.get("api_key").is_some())
                });
            if gated {
                for status in ["400", "401", "403", "429", "503"] {
                    let content = &responses[status]["content"];
                    assert!(
                        content["application/problem+json"].is_object(),
                        "{at}: {status} undeclared"
                    );
                }
            }
            if operation["requestBody"]["content"]
                .as_object()
                .is_some_and(|c| c.len() == 1 && c.contains_key("application/json"))
            {
                for status in ["413", "415"] {
                    assert!(responses.contains_key(status), "{at}: {status} undeclared");
                }
            }
        }
    }
    // A page holds 1 to 100 items: `limit=0` is refused, and the document says so.
    for path in ["/v1/keys", "/v1/audit-log"] {
        let parameters = document["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap();
        let limit = parameters.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["minimum"], 1, "{path}");
        assert_eq!(limit["schema"]["maximum"], 100, "{path}");
    }
}

#[tokio::test]
async fn the_document_states_this_deployments_bounds_on_ip_rules() {
    let mut config = keyward_server::ServerConfig::default();
    config.service.rule_policy.ipv4_prefixes = 20..=32;
    let app = TestApp::with_config(config).await;
    let document = app.get("/v1/openapi.json").send().await.json();
    let network = &document["components"]["schemas"]["IpRuleNetwork"];
    assert!(
        network["description"].as_str().unwrap().contains("/20–/32"),
        "{network}"
    );
    assert!(
        network["pattern"].as_str().unwrap().contains("/(?:20|21|"),
        "{network}"
    );
}

#[tokio::test]
async fn health_probes_answer() {
    let app = TestApp::new().await;
    assert_eq!(app.get("/healthz").send().await.json()["status"], "ok");
    assert_eq!(app.get("/readyz").send().await.json()["status"], "ok");
}

#[tokio::test]
async fn the_interactive_reference_is_served_from_the_binary() {
    let app = TestApp::new().await;
    let page = app.get("/docs/").send().await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    let config = app.get("/docs/swagger-initializer.js").send().await;
    assert_eq!(config.status, 200);
    assert!(
        config.text.contains("/v1/openapi.json"),
        "the reference loads Keyward's document: {}",
        config.text
    );
    let bundle = app.get("/docs/swagger-ui-bundle.js").send().await;
    assert_eq!(bundle.status, 200);
    assert!(
        bundle.text.len() > 100_000,
        "the assets are inside the binary"
    );
    // Every part of it under a policy that loads nothing from elsewhere and lets no site
    // frame it.
    for answer in [&page, &config, &bundle] {
        assert_eq!(
            answer.header("content-security-policy"),
            Some(keyward_server::DOCS_CONTENT_SECURITY_POLICY)
        );
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    let policy = keyward_server::DOCS_CONTENT_SECURITY_POLICY;
    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
}
