//! A 201 for a created key and a 200 for a revoke are durable: SIGKILL right after the
//! answer loses neither.

use serde_json::json;

use crate::support::{Server, client, database, init};

const ROUNDS: usize = 50;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_creates_and_revokes_survive_sigkill() {
    let db = database().await;
    let path = db.url();
    let admin = init(path).api_key;
    let http = client();

    let mut created = Vec::new();
    for round in 0..ROUNDS {
        let server = Server::start(path, &[], &[]);
        let response = http
            .post(server.url("/v1/keys"))
            .header("x-api-key", &admin)
            .json(&json!({"name": format!("round {round}"), "permissions": ["keys:read"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        server.kill();
        created.push((
            body["key_id"].as_str().unwrap().to_owned(),
            body["key"].as_str().unwrap().to_owned(),
        ));
    }

    let server = Server::start(path, &[], &[]);
    for (id, key) in &created {
        let read = http
            .get(server.url(&format!("/v1/keys/{id}")))
            .header("x-api-key", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "created key {id} was lost");
        let used = http
            .get(server.url("/v1/keys"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(used.status(), 200, "created key {id} does not authenticate");
    }
    drop(server);

    for (id, _) in &created {
        let server = Server::start(path, &[], &[]);
        let response = http
            .post(server.url(&format!("/v1/keys/{id}/revoke")))
            .header("x-api-key", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        server.kill();
    }

    let server = Server::start(path, &[], &[]);
    for (id, key) in &created {
        let used = http
            .get(server.url("/v1/keys"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(used.status(), 401, "revoked key {id} still authenticates");
        let body: serde_json::Value = used.json().await.unwrap();
        assert_eq!(body["outcome"], "REVOKED");
    }
}
