//! How the management API reads and checks the caller's credential (where a credential may
//! be presented, outcome codes, RFC 6750 challenges).

use keyward_core::credential::Environment;
use keyward_core::secret::{KeyPrefix, PlainSecret, SecretKind};
use keyward_gate::GateConfig;
use keyward_server::ServerConfig;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn both_headers_work_with_any_case() {
    let app = TestApp::new().await;
    for (name, value) in [
        ("X-Api-Key", app.admin_key.clone()),
        ("x-api-key", app.admin_key.clone()),
        ("X-API-KEY", app.admin_key.clone()),
        ("Authorization", format!("Bearer {}", app.admin_key)),
        ("authorization", format!("bearer {}", app.admin_key)),
        ("Authorization", format!("BEARER   {}", app.admin_key)),
    ] {
        let response = app.get("/v1/keys").header(name, &value).send().await;
        assert_eq!(response.status, 200, "{name}: {}", response.text);
    }
}

#[tokio::test]
async fn a_request_without_a_credential_gets_a_bare_challenge() {
    let app = TestApp::new().await;
    let response = app.get("/v1/keys").send().await;
    let body = response.assert_problem(401, "unauthenticated");
    assert_eq!(body["outcome"], "MISSING");
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"keyward\"")
    );
}

#[tokio::test]
async fn another_authorization_scheme_is_not_a_credential() {
    let app = TestApp::new().await;
    let response = app
        .get("/v1/keys")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await;
    assert_eq!(
        response.assert_problem(401, "unauthenticated")["outcome"],
        "MISSING"
    );
}

#[tokio::test]
async fn two_credentials_in_one_request_are_refused() {
    let app = TestApp::new().await;
    let key = &app.admin_key;
    let both = app
        .get("/v1/keys")
        .key(key)
        .header("authorization", &format!("Bearer {key}"))
        .send()
        .await;
    both.assert_problem(400, "multiple_credentials");
    let twice = app.get("/v1/keys").key(key).key(key).send().await;
    twice.assert_problem(400, "multiple_credentials");
}

#[tokio::test]
async fn presented_but_unusable_credentials_get_invalid_token() {
    let app = TestApp::new().await;
    let mut typo = app.admin_key.clone().into_bytes();
    let last = typo.len() - 10;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let unknown =
        PlainSecret::generate(&KeyPrefix::default(), SecretKind::ApiKey(Environment::Live));
    let created = app.create_key(json!({"name": "cs"})).await;
    let client_secret = created["client_secret"].as_str().unwrap();

    for (presented, outcome) in [
        (typo.as_str(), "MALFORMED"),
        ("not-a-key", "MALFORMED"),
        ("", "MALFORMED"),
        (client_secret, "MALFORMED"),
        (unknown.expose(), "NOT_FOUND"),
    ] {
        let response = app
            .get("/v1/keys")
            .header("authorization", &format!("Bearer {presented}"))
            .send()
            .await;
        let body = response.assert_problem(401, "unauthenticated");
        assert_eq!(body["outcome"], outcome, "{presented}");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer realm=\"keyward\", error=\"invalid_token\""),
            "{presented}"
        );
    }
}

#[tokio::test]
async fn a_missing_scope_gets_insufficient_scope_naming_it() {
    let app = TestApp::new().await;
    let created = app
        .create_key(json!({"name": "reader", "permissions": ["keys:read"]}))
        .await;
    let key = created["key"].as_str().unwrap();
    let response = app
        .post("/v1/keys")
        .key(key)
        .json(json!({"name": "x"}))
        .send()
        .await;
    let body = response.assert_problem(403, "insufficient_scope");
    assert_eq!(body["outcome"], "INSUFFICIENT_SCOPE");
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"keyward\", error=\"insufficient_scope\", scope=\"keys:write\"")
    );
}

#[tokio::test]
async fn wildcards_presets_and_roles_grant_management_scopes() {
    let app = TestApp::new().await;
    for grant in [
        json!({"permissions": ["keys:*"]}),
        json!({"permissions": ["read"]}),
        json!({"role": "viewer"}),
        json!({"role": "admin"}),
    ] {
        let mut body = json!({"name": "granted"});
        body.as_object_mut()
            .unwrap()
            .extend(grant.as_object().unwrap().clone());
        let created = app.create_key(body).await;
        let response = app
            .get("/v1/keys")
            .key(created["key"].as_str().unwrap())
            .send()
            .await;
        assert_eq!(response.status, 200, "{grant}: {}", response.text);
    }
    let dns = app
        .create_key(json!({"name": "dns", "role": "dns_manager"}))
        .await;
    app.get("/v1/keys")
        .key(dns["key"].as_str().unwrap())
        .send()
        .await
        .assert_problem(403, "insufficient_scope");
}

#[tokio::test]
async fn the_query_string_transport_is_off_unless_enabled() {
    let app = TestApp::new().await;
    let uri = format!("/v1/keys?api_key={}", app.admin_key);
    assert_eq!(
        app.get(&uri)
            .send()
            .await
            .assert_problem(401, "unauthenticated")["outcome"],
        "MISSING"
    );

    let app = TestApp::with_config(ServerConfig {
        gate: GateConfig {
            allow_query_api_key: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let uri = format!("/v1/keys?api_key={}", app.admin_key);
    assert_eq!(app.get(&uri).send().await.status, 200);
    let both = app.get(&uri).key(&app.admin_key).send().await;
    both.assert_problem(400, "multiple_credentials");
}

#[tokio::test]
async fn credential_headers_that_are_not_ascii_are_malformed_or_ignored() {
    let app = TestApp::new().await;
    let bad = app
        .get("/v1/keys")
        .header_bytes("x-api-key", b"kw_live_\xe9")
        .send()
        .await;
    assert_eq!(
        bad.assert_problem(401, "unauthenticated")["outcome"],
        "MALFORMED"
    );
    let bearer = app
        .get("/v1/keys")
        .header_bytes("authorization", b"Bearer \xe9")
        .send()
        .await;
    assert_eq!(
        bearer.assert_problem(401, "unauthenticated")["outcome"],
        "MALFORMED"
    );
    let basic = app
        .get("/v1/keys")
        .key(&app.admin_key)
        .header_bytes("authorization", b"Basic \xe9")
        .send()
        .await;
    assert_eq!(
        basic.status, 200,
        "another scheme is ignored, readable or not"
    );
}
