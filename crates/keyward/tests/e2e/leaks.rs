//! After a run that issues, uses, rotates and revokes secrets and access tokens, none of
//! them, nor the master key or an unsealed signing key, appears in the database (the SQLite file and its WAL, or every PostgreSQL row) nor in any line the
//! server printed.

use keyward_store::testing::find_leak;
use serde_json::{Value, json};

use crate::support::{Server, TEST_MASTER_KEY, client, database, init};

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_database_or_the_logs() {
    let db = database().await;
    let path = db.url();
    let bootstrap = init(path);
    let mut secrets = vec![bootstrap.api_key.clone(), bootstrap.client_secret.clone()];
    let admin = bootstrap.api_key.clone();
    let server = Server::start(
        path,
        &["--allow-query-api-key", "true", "--log-format", "json"],
        &[("KEYWARD_LOG", "debug")],
    );
    let http = client();

    let mut issued: Vec<Value> = Vec::new();
    for (i, env) in ["live", "test", "live"].iter().enumerate() {
        let body = server
            .create_key(
                &admin,
                json!({"name": format!("leak check {i}"), "environment": env, "permissions": ["keys:*", "audit_log:read"]}),
            )
            .await;
        issued.push(body);
    }
    let id = issued[0]["key_id"].as_str().unwrap().to_owned();
    let rotated: Value = http
        .post(server.url(&format!("/v1/keys/{id}/rotate")))
        .header("authorization", format!("Bearer {admin}"))
        .json(&json!({"grace_period_seconds": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    issued.push(rotated);
    for body in &issued {
        secrets.push(body["key"].as_str().unwrap().to_owned());
        secrets.push(body["client_secret"].as_str().unwrap().to_owned());
    }

    // Use every key by every transport, including a mistyped copy and the query string.
    for key in secrets.iter().filter(|s| !s.contains("_cs_")) {
        let mut typo = key.clone();
        typo.pop();
        typo.push('x');
        for request in [
            http.get(server.url("/v1/keys")).header("x-api-key", key),
            http.get(server.url("/v1/audit-log"))
                .header("authorization", format!("Bearer {key}")),
            http.get(server.url(&format!("/v1/keys?api_key={key}"))),
            http.get(server.url("/v1/keys")).header("x-api-key", &typo),
            http.get(server.url("/v1/keys"))
                .header("x-api-key", key)
                .header("authorization", format!("Bearer {key}")),
            http.get(server.url("/v1/authorize"))
                .header("x-api-key", key),
            http.get(server.url("/v1/authorize"))
                .header("x-original-uri", format!("/v1/domains?api_key={key}")),
            http.post(server.url("/v1/keys/verify"))
                .header("x-api-key", &admin)
                .json(&json!({"key": key, "client_ip": "192.0.2.1"})),
            http.post(server.url("/v1/keys/verify"))
                .header("x-api-key", &admin)
                .json(&json!({"key": typo, "client_ip": "192.0.2.1"})),
        ] {
            request.send().await.unwrap();
        }
    }
    // Client secrets presented where API keys belong, and a body that echoes one back.
    for secret in secrets.iter().filter(|s| s.contains("_cs_")) {
        http.get(server.url("/v1/keys"))
            .header("x-api-key", secret)
            .send()
            .await
            .unwrap();
        http.post(server.url("/v1/keys"))
            .header("x-api-key", &admin)
            .json(&json!({"name": 5, "description": secret}))
            .send()
            .await
            .unwrap();
    }
    // Access tokens: issued by both client authentication methods, used, introspected,
    // one revoked; a wrong secret tried too.
    let client_id = bootstrap.organization_id.clone();
    let mut tokens = Vec::new();
    for body in &issued {
        let secret = body["client_secret"].as_str().unwrap();
        let by_basic: Value = http
            .post(server.url("/v1/auth/token"))
            .basic_auth(&client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let by_post: Value = http
            .post(server.url("/v1/auth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
                ("client_secret", &format!("{secret}x")),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(by_post["error"], "invalid_client");
        tokens.push(by_basic["access_token"].as_str().unwrap().to_owned());
    }
    for token in &tokens {
        for request in [
            http.get(server.url("/v1/keys")).bearer_auth(token),
            http.get(server.url("/v1/authorize")).bearer_auth(token),
            http.post(server.url("/v1/auth/introspect"))
                .header("x-api-key", &admin)
                .form(&[("token", token.as_str())]),
        ] {
            request.send().await.unwrap();
        }
    }
    http.post(server.url("/v1/auth/revoke"))
        .basic_auth(&client_id, Some(&bootstrap.client_secret))
        .form(&[("token", tokens[0].as_str())])
        .send()
        .await
        .unwrap();
    secrets.extend(tokens);

    for body in &issued[1..] {
        let id = body["key_id"].as_str().unwrap();
        http.post(server.url(&format!("/v1/keys/{id}/revoke")))
            .header("x-api-key", &admin)
            .send()
            .await
            .unwrap();
    }

    let output = server.stop();
    assert!(
        output.contains("\"request\""),
        "debug logs were captured: {output}"
    );
    let stored = db.stored_bytes().await;
    // Neither the master key nor an unsealed P-256 private key (the base64 opening of its
    // PKCS#8 document) is stored or printed.
    for sealed_only in [TEST_MASTER_KEY, "MIGHAgEAMBMGByqGSM49AgEG"] {
        assert!(!output.contains(sealed_only), "printed: {sealed_only}");
        assert!(
            !stored
                .windows(sealed_only.len())
                .any(|w| w == sealed_only.as_bytes()),
            "stored: {sealed_only}"
        );
    }
    // No 16 characters of any of them, cut anywhere.
    if let Some((secret, part)) = find_leak(output.as_bytes(), &secrets) {
        panic!("{part} of {secret} was printed");
    }
    if let Some((secret, part)) = find_leak(&stored, &secrets) {
        panic!("{part} of {secret} is stored");
    }
}
