//! A deployment's own scope catalogue, end to end: named in the configuration file, it is
//! what keys may hold, what verification and `/v1/authorize` require, what `/v1/scopes`,
//! the roles, the API document and the MCP metadata show.

use serde_json::{Value, json};

use crate::support::{Server, client, database, init};

const CONFIG: &str = r#"
[scopes]
resources = ["orders", "customers"]
actions = { orders = ["refund"] }

[authorize]
routes = [
  { method = "POST", path = "/orders/*/refund", scopes = ["orders:refund"] },
  { path = "/orders/**", scopes = ["orders:read"] },
]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_names_its_own_resources_from_config_to_verification() {
    let db = database().await;
    let bootstrap = init(db.url());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keyward.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let server = Server::start(db.url(), &["--config", config.to_str().unwrap()], &[]);
    let admin = bootstrap.api_key.as_str();
    let http = client();
    let get = |path: &str| http.get(server.url(path)).header("x-api-key", admin).send();

    // The catalogue: the API's resources and Keyward's own, nothing of the example's.
    let scopes: Value = get("/v1/scopes").await.unwrap().json().await.unwrap();
    let resources: Vec<&str> = scopes["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource"].as_str().unwrap())
        .collect();
    assert!(
        resources.contains(&"orders") && resources.contains(&"keys"),
        "{scopes}"
    );
    assert!(!resources.contains(&"dns"), "{scopes}");
    let orders = scopes["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "orders")
        .unwrap();
    assert_eq!(
        orders["actions"],
        json!(["read", "write", "delete", "refund"])
    );

    // Keys hold its scopes, and only its scopes.
    let refunder = server
        .create_key(
            admin,
            json!({"name": "refunds", "permissions": ["orders:refund", "orders:read"]}),
        )
        .await;
    let key = refunder["key"].as_str().unwrap();
    let wrong = http
        .post(server.url("/v1/keys"))
        .header("x-api-key", admin)
        .json(&json!({"name": "dns", "permissions": ["dns:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 422);
    let problem: Value = wrong.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("dns:read"),
        "{problem}"
    );

    // Verification and /v1/authorize require them.
    let verify = |required: &'static [&'static str]| {
        http.post(server.url("/v1/keys/verify"))
            .header("x-api-key", admin)
            .json(&json!({"key": key, "required_scopes": required}))
            .send()
    };
    let valid: Value = verify(&["orders:refund"])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(valid["code"], "VALID", "{valid}");
    let short: Value = verify(&["customers:read"])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(short["code"], "INSUFFICIENT_SCOPE", "{short}");
    let authorize = |method: &str, uri: &str| {
        http.get(server.url("/v1/authorize"))
            .header("x-api-key", key)
            .header("x-original-method", method)
            .header("x-original-uri", uri)
            .send()
    };
    assert_eq!(
        authorize("POST", "/orders/7/refund")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(authorize("GET", "/orders/7").await.unwrap().status(), 200);
    let reader = server
        .create_key(
            admin,
            json!({"name": "reader", "permissions": ["orders:read"]}),
        )
        .await;
    let refused = http
        .get(server.url("/v1/authorize"))
        .header("x-api-key", reader["key"].as_str().unwrap())
        .header("x-original-method", "POST")
        .header("x-original-uri", "/orders/7/refund")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // The example roles name resources this API does not have: only admin and viewer.
    let roles: Value = get("/v1/roles").await.unwrap().json().await.unwrap();
    let builtin: Vec<&str> = roles["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["builtin"] == true)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(builtin, ["admin", "viewer"]);
    let dns_role = http
        .post(server.url("/v1/keys"))
        .header("x-api-key", admin)
        .json(&json!({"name": "dns", "role": "dns_manager"}))
        .send()
        .await
        .unwrap();
    assert_eq!(dns_role.status(), 422);

    // The API document and the MCP metadata describe this catalogue.
    let document: Value = get("/v1/openapi.json").await.unwrap().json().await.unwrap();
    let names = &document["components"]["schemas"]["ScopeName"]["enum"];
    assert!(
        names.as_array().unwrap().contains(&json!("orders:refund")),
        "{names}"
    );
    assert!(
        !names.as_array().unwrap().contains(&json!("dns:read")),
        "{names}"
    );
    let header = document["paths"]["/v1/authorize"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "X-Keyward-Required-Scopes")
        .unwrap();
    let pattern = header["schema"]["pattern"].as_str().unwrap();
    assert!(
        pattern.contains("orders:refund") && !pattern.contains("dns:read"),
        "{pattern}"
    );
    let token_scopes = &document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
        ["scopes"];
    assert!(
        token_scopes.get("orders:refund").is_some(),
        "{token_scopes}"
    );
    let metadata: Value = get("/.well-known/oauth-protected-resource")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        metadata["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("customers:write")),
        "{metadata}"
    );
}
