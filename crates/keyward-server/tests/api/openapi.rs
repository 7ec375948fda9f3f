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
