//! Keyward's MCP tools driven by a client no one here wrote: the `mcp` Python SDK from PyPI
//! (`mcp_client.py`), against the real binary over both transports: Streamable HTTP at
//! `/mcp`, and `keyward mcp` on standard input and output relaying to it. The interpreter
//! is `KEYWARD_TEST_PYTHON`, else `python3`; skipped with a notice when it or the package
//! is missing, failing under `KEYWARD_TEST_REQUIRE_SERVICES=1`. `keyward mcp` itself is also
//! spoken to line by line, for what no SDK sends: malformed JSON-RPC.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use keyward_store::testing::{keep_log, record_secrets, skip_or_fail};
use serde_json::{Value, json};

use crate::support::{Bootstrap, Server, client, database, init, keyward, run_python_script};

/// The interpreter, when it has the `mcp` package; else the skip notice (or the failure
/// under `KEYWARD_TEST_REQUIRE_SERVICES=1`) and `None`.
fn python() -> Option<String> {
    let python = std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let found = Command::new(&python)
        .args(["-c", "import mcp.client.streamable_http, mcp.client.stdio"])
        .output()
        .is_ok_and(|probe| probe.status.success());
    if !found {
        skip_or_fail(
            "python mcp client",
            "python3 with the mcp package (see .ci/run)",
        );
    }
    found.then_some(python)
}

/// Runs `scenario` of `mcp_client.py` over `transport` as `key` against `server`, with
/// `envs` besides; returns the JSON it printed and what `keyward mcp` wrote to standard
/// error (kept for the secret scan).
async fn run_client(
    python: String,
    server: &Server,
    transport: &str,
    scenario: &str,
    key: &str,
    envs: Vec<(&'static str, String)>,
) -> (Value, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut all = vec![
        ("TRANSPORT", transport.to_owned()),
        ("SCENARIO", scenario.to_owned()),
        ("KEYWARD_URL", server.base.clone()),
        ("KEYWARD_API_KEY", key.to_owned()),
        ("KEYWARD_BIN", env!("CARGO_BIN_EXE_keyward").to_owned()),
        ("KEYWARD_MCP_LOG", log.path().display().to_string()),
    ];
    all.extend(envs);
    let output = server.output.clone();
    let stdout = run_python_script(python, "mcp_client.py", all, move || {
        output.lock().unwrap().clone()
    })
    .await;
    let relay_log = std::fs::read_to_string(log.path()).unwrap();
    keep_log("keyward-mcp", &relay_log);
    (
        serde_json::from_str(stdout.lines().next().unwrap()).unwrap(),
        relay_log,
    )
}

async fn manages_a_key(transport: &str) {
    let Some(python) = python() else {
        return;
    };
    let db = database().await;
    let bootstrap = init(db.url());
    // Everything logged, the MCP SDK's payloads included if they were not held back.
    let server = Server::start(db.url(), &[], &[("KEYWARD_LOG", "trace")]);
    let (seen, relay_log) = run_client(
        python,
        &server,
        transport,
        "manage",
        &bootstrap.api_key,
        vec![],
    )
    .await;
    let secret = seen["secret"].as_str().unwrap();
    let rotated = seen["rotated_secret"].as_str().unwrap();
    record_secrets([secret, rotated, seen["client_secret"].as_str().unwrap()]);
    assert_eq!(seen["server"], "rmcp");
    for tool in [
        "create_key",
        "rotate_key",
        "revoke_key",
        "verify_key",
        "key_usage",
        "query_audit_log",
    ] {
        assert!(
            seen["tools"].as_array().unwrap().contains(&json!(tool)),
            "{seen}"
        );
    }
    // The secret reached the client once, in the creating tool's result, marked so.
    assert_eq!(seen["shown_once"], true);
    assert_eq!(seen["secret_seen"], 1, "{seen}");
    assert_eq!(seen["rotated_seen"], 1, "{seen}");
    assert_eq!(seen["client_secret_seen"], 1, "{seen}");
    assert_eq!(seen["authorize_first"], 200);
    assert_eq!(seen["verified"], json!([true, "VALID", seen["key_id"]]));
    // The authorization and the verification.
    assert_eq!(seen["usage_valid"], 2, "{seen}");
    assert!(seen["listed"].as_array().unwrap().contains(&seen["key_id"]));
    assert_eq!(seen["after_rotation"], json!([401, 200]));
    assert_eq!(seen["revoked_status"], "revoked");
    assert_eq!(seen["after_revoke"], 401);
    assert_eq!(
        seen["audit"],
        json!([
            ["key.revoked", "mcp"],
            ["key.rotated", "mcp"],
            ["key.created", "mcp"]
        ])
    );
    assert_eq!(seen["unknown_is_error"], true);
    assert_eq!(seen["unknown_code"], "not_found");
    // And never in the server's logs, nor the relay's, nor the credential in the latter.
    let log = server.stop();
    for whole in [secret, rotated] {
        assert!(!log.contains(whole), "a secret reached the server's output");
        assert!(
            !relay_log.contains(whole),
            "a secret reached keyward mcp's output"
        );
    }
    assert!(!relay_log.contains(&bootstrap.api_key), "{relay_log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_mcp_client_manages_a_key_over_streamable_http() {
    manages_a_key("http").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_mcp_client_manages_a_key_through_keyward_mcp_on_stdio() {
    manages_a_key("stdio").await;
}

async fn holds_the_credentials_limits(transport: &str) {
    let Some(python) = python() else {
        return;
    };
    let db = database().await;
    let ours = init(db.url());
    let theirs: Bootstrap = init(db.url());
    let server = Server::start(db.url(), &[], &[]);
    let reader = server
        .create_key(
            &ours.api_key,
            json!({"name": "Reader", "permissions": ["keys:read"]}),
        )
        .await;
    let narrow = server
        .create_key(
            &ours.api_key,
            json!({"name": "Narrow", "permissions": ["dns:read", "keys:write"]}),
        )
        .await;
    let their_key = server
        .create_key(&theirs.api_key, json!({"name": "Theirs"}))
        .await;
    let (seen, _) = run_client(
        python,
        &server,
        transport,
        "limits",
        &ours.api_key,
        vec![
            ("READER_KEY", reader["key"].as_str().unwrap().to_owned()),
            ("NARROW_KEY", narrow["key"].as_str().unwrap().to_owned()),
            (
                "OTHER_KEY_ID",
                their_key["key_id"].as_str().unwrap().to_owned(),
            ),
        ],
    )
    .await;
    // A keys:read credential sees no write tool, and is refused one by name.
    assert_eq!(
        seen["reader_tools"],
        json!(["get_key", "key_usage", "list_keys", "list_scopes"])
    );
    assert_eq!(
        seen["reader_create"],
        json!([true, "insufficient_scope", true])
    );
    assert_eq!(seen["reader_revoke"], json!([true, "insufficient_scope"]));
    // No key wider than the credential.
    assert_eq!(seen["narrow_wider"], json!([true, "privilege_escalation"]));
    // Another organization's key is not found, whatever the tool.
    for tool in ["other_get", "other_revoke", "other_usage"] {
        assert_eq!(seen[tool][0], true, "{tool}: {seen}");
        assert_eq!(seen[tool][1]["code"], "not_found", "{tool}: {seen}");
    }
    // Bad input: an unknown tool is a protocol error (invalid params); arguments that do not
    // fit are tool errors like any other; and the session still answers.
    assert_eq!(seen["unknown_tool"], json!([null, -32602]));
    for bad in ["wrong_type", "missing_argument"] {
        assert_eq!(seen[bad][0], true, "{bad}: {seen}");
        assert_eq!(seen[bad][1]["code"], "validation_failed", "{bad}: {seen}");
    }
    assert_eq!(seen["bad_limit"], json!([true, "invalid_query"]));
    assert_eq!(seen["still_answering"], true, "{seen}");
    // Their key was not touched.
    let status: Value = client()
        .get(server.url(&format!(
            "/v1/keys/{}",
            their_key["key_id"].as_str().unwrap()
        )))
        .header("x-api-key", &theirs.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "active");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_is_held_to_its_scopes_and_organization_over_streamable_http() {
    holds_the_credentials_limits("http").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_is_held_to_its_scopes_and_organization_through_keyward_mcp() {
    holds_the_credentials_limits("stdio").await;
}

/// `keyward mcp` spoken to line by line: one JSON-RPC message a line in, one a line out.
struct Relay {
    child: std::process::Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Relay {
    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn receive(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line:?}"))
    }

    /// Closes standard input and returns what it wrote to standard error.
    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        let output = self.child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        keep_log("keyward-mcp", &log);
        log
    }
}

fn relay(base: &str, args: &[&str], envs: &[(&str, &str)]) -> Relay {
    let mut child = keyward()
        .arg("mcp")
        .args(["--url", base])
        .args(args)
        .env_remove("KEYWARD_API_KEY")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    Relay { child, stdout }
}

#[tokio::test(flavor = "multi_thread")]
async fn keyward_mcp_answers_malformed_json_rpc_and_stays_usable() {
    let db = database().await;
    let bootstrap = init(db.url());
    let server = Server::start(db.url(), &[], &[]);
    // The key from a file this time.
    let mut key_file = tempfile::NamedTempFile::new().unwrap();
    writeln!(key_file, "{}", bootstrap.api_key).unwrap();
    let key_path = key_file.path().display().to_string();
    let base = server.base.clone();
    let log = tokio::task::spawn_blocking(move || {
        let mut relay = relay(&base, &["--key-file", &key_path], &[]);
        relay.send(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "line-by-line", "version": "1"}}})
            .to_string(),
        );
        let initialized = relay.receive();
        assert_eq!(initialized["id"], 1, "{initialized}");
        assert_eq!(initialized["result"]["serverInfo"]["name"], "rmcp");
        relay.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        // A line that is not JSON is skipped, as the MCP SDKs do (there is no id to answer,
        // and answering garbage can start an echo storm); JSON that is not a request is
        // an Invalid Request; an unknown method, a tool that does not exist, arguments of
        // the wrong type: each answered with an error, none ending the session.
        relay.send("{not json");
        relay.send(r#"{"jsonrpc":"2.0","id":2,"method":"no/such/method"}"#);
        let answer = relay.receive();
        assert_eq!(answer["id"], 2, "{answer}");
        assert_eq!(answer["error"]["code"], -32601, "{answer}");
        relay.send(r#"{"jsonrpc":"2.0","id":6,"method":5}"#);
        let answer = relay.receive();
        assert_eq!(answer["error"]["code"], -32600, "{answer}");
        relay.send(
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "drop_database", "arguments": {}}})
            .to_string(),
        );
        let answer = relay.receive();
        assert_eq!(answer["id"], 3);
        assert!(answer["error"]["code"].is_i64(), "{answer}");
        relay.send(
            &json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                "params": {"name": "list_keys", "arguments": {"limit": "many"}}})
            .to_string(),
        );
        let answer = relay.receive();
        assert_eq!(answer["id"], 4);
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        let refused: Value =
            serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(refused["code"], "validation_failed", "{refused}");
        relay.send(
            &json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                "params": {"name": "list_keys", "arguments": {}}})
            .to_string(),
        );
        let answer = relay.receive();
        assert_eq!(answer["id"], 5);
        assert_eq!(answer["result"]["isError"], false, "{answer}");
        let listed: Value =
            serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(listed["data"].as_array().unwrap().len(), 1);
        relay.finish()
    })
    .await
    .unwrap();
    assert!(!log.contains(&bootstrap.api_key), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keyward_mcp_refuses_to_start_without_a_credential_the_server_accepts() {
    let db = database().await;
    let bootstrap = init(db.url());
    let server = Server::start(db.url(), &[], &[]);
    let base = server.base.clone();
    // The key with its last character changed (to one it does not end with: a key ending
    // in `x` would otherwise stay itself).
    let key = &bootstrap.api_key;
    let last = if key.ends_with('x') { "y" } else { "x" };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    tokio::task::spawn_blocking(move || {
        let started = |args: &[&str], envs: &[(&str, &str)]| {
            let relay = relay(&base, args, envs);
            let mut child = relay.child;
            drop(child.stdin.take());
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "keyward mcp kept running"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let output = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&output.stderr).into_owned();
            keep_log("keyward-mcp", &err);
            (output.status.success(), output.stdout.is_empty(), err)
        };
        // No credential.
        let (ok, quiet, err) = started(&[], &[]);
        assert!(!ok && quiet);
        assert!(err.contains("KEYWARD_API_KEY"), "{err}");
        // One the server refuses: said, without the key.
        let (ok, quiet, err) = started(&[], &[("KEYWARD_API_KEY", &wrong)]);
        assert!(!ok && quiet, "{err}");
        assert!(err.contains("connecting to"), "{err}");
        assert!(!err.contains(&wrong), "{err}");
        // Plain HTTP to another machine: refused before anything is sent.
        let relay = keyward()
            .args(["mcp", "--url", "http://192.0.2.1:8080"])
            .env("KEYWARD_API_KEY", &wrong)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&relay.stderr);
        assert!(!relay.status.success());
        assert!(err.contains("https"), "{err}");
        // A password in the URL is refused, and not repeated.
        let relay = keyward()
            .args(["mcp", "--url", "https://me:hunter2@keyward.example"])
            .env("KEYWARD_API_KEY", &wrong)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&relay.stderr);
        assert!(!relay.status.success());
        assert!(
            err.contains("user or password") && !err.contains("hunter2"),
            "{err}"
        );
    })
    .await
    .unwrap();
}
