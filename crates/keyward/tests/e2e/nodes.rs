//! Several Keyward processes on one database (PostgreSQL): they start together safely,
//! and what one changes, the others see (a revoke within the 1 s cache lifetime).

use regex::Regex;
use serde_json::{Value, json};

use crate::support::{Server, client, database};

#[tokio::test(flavor = "multi_thread")]
async fn nodes_started_together_migrate_and_bootstrap_once() {
    let db = database().await;
    let url = db.url().to_owned();
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Server::start(&url, &[], &[]))
        })
        .collect();
    let servers: Vec<Server> = starts.into_iter().map(|s| s.join().unwrap()).collect();
    let key_line = Regex::new(r"API key:\s+(kw_live_[0-9A-Za-z]{38})").unwrap();
    let outputs: Vec<String> = servers
        .iter()
        .map(|s| s.output.lock().unwrap().clone())
        .collect();
    let keys: Vec<String> = outputs
        .iter()
        .filter_map(|o| key_line.captures(o).map(|c| c[1].to_owned()))
        .collect();
    assert_eq!(keys.len(), 1, "exactly one node bootstraps: {outputs:#?}");
    for server in &servers {
        let response = client()
            .get(server.url("/v1/keys"))
            .header("x-api-key", &keys[0])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let listed: Value = response.json().await.unwrap();
        assert_eq!(
            listed["data"].as_array().unwrap().len(),
            1,
            "one organization, one key"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_one_node_creates_or_revokes_holds_on_another() {
    let db = database().await;
    let admin = crate::support::init(db.url()).api_key;
    let (a, b) = (
        Server::start(db.url(), &[], &[]),
        Server::start(db.url(), &[], &[]),
    );
    let http = client();

    let created = a
        .create_key(
            &admin,
            json!({"name": "shared", "permissions": ["keys:read"]}),
        )
        .await;
    let (id, key) = (
        created["key_id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let on_b = http
        .get(b.url(&format!("/v1/keys/{id}")))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        on_b.status(),
        200,
        "a key created on one node is usable on the other"
    );

    let revoked = http
        .post(a.url(&format!("/v1/keys/{id}/revoke")))
        .header("x-api-key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    // B cached the key when it checked it; it sees the revoke when that entry expires (800 ms).
    let revoked_at = std::time::Instant::now();
    let body: Value = loop {
        let response = http
            .get(b.url("/v1/keys"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        if response.status() == 401 {
            break response.json().await.unwrap();
        }
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(1),
            "B still accepts a key revoked on A after 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(body["outcome"], "REVOKED");
    eprintln!(
        "the revoke reached the other node after {:?}",
        revoked_at.elapsed()
    );
}
