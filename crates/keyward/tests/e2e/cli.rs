//! The command line: init, keys, migrate, config check, and the first `serve`.

use regex::Regex;
use serde_json::Value;

use crate::support::{Server, client, database, init, keyward};

fn run(args: &[&str], database: &str) -> String {
    let output = keyward()
        .arg("--database")
        .arg(database)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn init_prints_the_three_values_once_as_json() {
    let db = database().await;
    let path = db.url();
    let bootstrap = init(path);
    assert!(
        Regex::new(r"^kw_live_[0-9A-Za-z]{38}$")
            .unwrap()
            .is_match(&bootstrap.api_key)
    );
    assert!(
        Regex::new(r"^kw_cs_[0-9A-Za-z]{46}$")
            .unwrap()
            .is_match(&bootstrap.client_secret)
    );
    assert!(
        Regex::new(r"^organization_[0-7][0-9a-hjkmnp-tv-z]{25}$")
            .unwrap()
            .is_match(&bootstrap.organization_id)
    );
}

#[tokio::test]
async fn keys_commands_work_on_the_same_database() {
    let db = database().await;
    let path = db.url();
    let org = init(path).organization_id;
    let created: Value = serde_json::from_str(&run(
        &[
            "keys",
            "create",
            "--org",
            &org,
            "--name",
            "from cli",
            "--environment",
            "test",
            "--permission",
            "dns:read",
            "--json",
        ],
        path,
    ))
    .unwrap();
    assert!(created["key"].as_str().unwrap().starts_with("kw_test_"));
    assert_eq!(created["permissions"], serde_json::json!(["dns:read"]));
    let id = created["key_id"].as_str().unwrap();

    let listed: Value =
        serde_json::from_str(&run(&["keys", "list", "--org", &org, "--json"], path)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        !listed
            .to_string()
            .contains(created["key"].as_str().unwrap())
    );

    let rotated: Value =
        serde_json::from_str(&run(&["keys", "rotate", "--org", &org, id, "--json"], path)).unwrap();
    assert_ne!(rotated["key"], created["key"]);
    assert!(run(&["keys", "revoke", "--org", &org, id], path).contains("revoked"));
    let listed = run(&["keys", "list", "--org", &org], path);
    assert!(listed.contains("revoked"), "{listed}");

    let failure = keyward()
        .arg("--database")
        .arg(path)
        .args([
            "keys",
            "create",
            "--org",
            &org,
            "--name",
            "x",
            "--permission",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!failure.status.success());
    assert!(String::from_utf8_lossy(&failure.stderr).contains("permissions"));
}

#[test]
fn config_check_shows_the_effective_settings_without_passwords() {
    let output = keyward()
        .args(["config", "check"])
        .env(
            "KEYWARD_DATABASE_URL",
            "postgres://keyward:hunter2@db.internal/keyward",
        )
        .env("KEYWARD_KEY_PREFIX", "edns")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["key_prefix"], "edns");
    assert_eq!(value["listen"], "127.0.0.1:8080");
    assert!(!text.contains("hunter2"));
    assert_eq!(
        value["database_url"],
        "postgres://keyward:[redacted]@db.internal/keyward"
    );
}

#[tokio::test]
async fn migrate_prepares_an_empty_database_and_is_idempotent() {
    let db = database().await;
    let path = db.url();
    assert!(run(&["migrate"], path).contains("migrations applied"));
    assert!(run(&["migrate"], path).contains("migrations applied"));
    let bootstrap = init(path);
    let listed = run(
        &[
            "keys",
            "list",
            "--org",
            &bootstrap.organization_id,
            "--json",
        ],
        path,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&listed)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_serve_bootstraps_once_and_its_key_works() {
    let db = database().await;
    let path = db.url();
    let server = Server::start(path, &[], &[]);
    let output = server.output.lock().unwrap().clone();
    let key = Regex::new(r"API key:\s+(kw_live_[0-9A-Za-z]{38})")
        .unwrap()
        .captures(&output)
        .unwrap()[1]
        .to_owned();
    assert!(
        output.contains("Client ID:") && output.contains("Client secret:"),
        "{output}"
    );
    let response = client()
        .get(server.url("/v1/keys"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first_output = server.stop();
    assert_eq!(
        first_output.matches(&key).count(),
        1,
        "the key is printed exactly once"
    );

    let again = Server::start(path, &[], &[]);
    let second = again.stop();
    assert!(
        !second.contains("API key:"),
        "a second start prints no secrets: {second}"
    );
}

#[tokio::test]
async fn signing_keys_rotate_publishes_a_second_key() {
    let db = database().await;
    init(db.url());
    let rotated = run(&["signing-keys", "rotate"], db.url());
    assert!(rotated.starts_with("Made signing key kw2-"), "{rotated}");
    let listed = run(&["signing-keys", "list"], db.url());
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("ES256") && l.contains("private key sealed")),
        "{listed}"
    );
}
