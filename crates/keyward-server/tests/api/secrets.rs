//! Secrets are shown once: only the answers of create and rotate ever contain them.

use serde_json::json;

use keyward_store::testing::find_leak;

use crate::support::TestApp;

#[tokio::test]
async fn no_later_answer_and_no_stored_byte_contains_a_secret() {
    let app = TestApp::new().await;
    let created = app
        .create_key(json!({"name": "shown once", "permissions": ["keys:read"], "metadata": {"note": "harmless"}}))
        .await;
    let id = created["key_id"].as_str().unwrap();
    let rotated = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&app.admin_key)
        .json(json!({"grace_period_seconds": 60}))
        .send()
        .await
        .json();
    let secrets: Vec<String> = [&created, &rotated]
        .iter()
        .flat_map(|b| {
            [
                b["key"].as_str().unwrap().to_owned(),
                b["client_secret"].as_str().unwrap().to_owned(),
            ]
        })
        .chain([app.admin_key.clone()])
        .collect();
    app.patch(&format!("/v1/keys/{id}"))
        .key(&app.admin_key)
        .json(json!({"name": "renamed"}))
        .send()
        .await
        .expect(200);
    app.post(&format!("/v1/keys/{id}/disable"))
        .key(&app.admin_key)
        .send()
        .await
        .expect(200);

    let mut later = Vec::new();
    for uri in [
        format!("/v1/keys/{id}"),
        "/v1/keys?limit=100".to_owned(),
        "/v1/audit-log?limit=100".to_owned(),
    ] {
        later.push(app.get(&uri).key(&app.admin_key).send().await.text);
    }
    later.push(app.get("/v1/keys").key(&secrets[0]).send().await.text);
    for text in &later {
        // No 16 characters of a secret, cut anywhere (without its prefix, say).
        if let Some((secret, part)) = find_leak(text.as_bytes(), &secrets) {
            panic!("{part} of {secret} appeared in {text}");
        }
    }

    let stored = app.database.stored_bytes().await;
    assert!(
        stored.windows(id.len()).any(|w| w == id.as_bytes()),
        "the dump holds the credential"
    );
    if let Some((secret, part)) = find_leak(&stored, &secrets) {
        panic!("{part} of {secret} is stored in plain text");
    }
    // The scan finds what it looks for: 16 characters from the middle of a secret, in any
    // text, and 15 are not enough to count.
    let middle = &secrets[0][5..21];
    let planted = format!("…{middle}…");
    assert_eq!(
        find_leak(planted.as_bytes(), &secrets).map(|(_, part)| part),
        Some(middle.to_owned())
    );
    assert!(find_leak(&planted.as_bytes()[..planted.len() - 4], &secrets).is_none());
}
