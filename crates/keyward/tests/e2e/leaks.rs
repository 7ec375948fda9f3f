//! After a run that issues, uses, rotates and revokes secrets, none of them appears in the
//! database (the SQLite file and its WAL, or every PostgreSQL row) nor in any line the
//! server printed.

use serde_json::{Value, json};

use crate::support::{Server, client, database, init};

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
        let body: Value = http
            .post(server.url("/v1/keys"))
            .header("x-api-key", &admin)
            .json(&json!({"name": format!("leak check {i}"), "environment": env, "permissions": ["keys:*", "audit_log:read"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    for secret in &secrets {
        let random_part = &secret[secret.len() - 24..];
        assert!(
            !output.contains(random_part),
            "a secret was printed: {secret}"
        );
        assert!(
            !stored.windows(24).any(|w| w == random_part.as_bytes()),
            "a secret is stored"
        );
    }
}
