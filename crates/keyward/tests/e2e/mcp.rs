//! Keyward's MCP tools driven by a client no one here wrote: the `mcp` Python SDK from PyPI
//! (`mcp_client.py`), over Streamable HTTP against the real binary. The interpreter is
//! `KEYWARD_TEST_PYTHON`, else `python3`; skipped with a notice when it or the package is
//! missing, failing under `KEYWARD_TEST_REQUIRE_SERVICES=1`.

use std::process::Command;

use keyward_store::testing::{record_secrets, skip_or_fail};
use serde_json::{Value, json};

use crate::support::{Server, database, init, run_python_script};

fn python() -> Option<String> {
    let python = std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python)
        .args(["-c", "import mcp.client.streamable_http"])
        .output()
        .ok()?;
    probe.status.success().then_some(python)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_mcp_client_manages_a_key_over_streamable_http() {
    let Some(python) = python() else {
        skip_or_fail(
            "python mcp client",
            "python3 with the mcp package (see .ci/run)",
        );
        return;
    };
    let db = database().await;
    let bootstrap = init(db.url());
    // Everything logged, the MCP SDK's payloads included if they were not held back.
    let server = Server::start(db.url(), &[], &[("KEYWARD_LOG", "trace")]);
    let envs = vec![
        ("KEYWARD_URL", server.base.clone()),
        ("KEYWARD_API_KEY", bootstrap.api_key.clone()),
    ];
    let output = server.output.clone();
    let stdout = run_python_script(python, "mcp_client.py", envs, move || {
        output.lock().unwrap().clone()
    })
    .await;
    let seen: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let secret = seen["secret"].as_str().unwrap();
    record_secrets([
        secret,
        seen["rotated_secret"].as_str().unwrap(),
        seen["client_secret"].as_str().unwrap(),
    ]);
    assert_eq!(seen["server"], "rmcp");
    for tool in [
        "create_key",
        "rotate_key",
        "revoke_key",
        "key_usage",
        "query_audit_log",
    ] {
        assert!(
            seen["tools"].as_array().unwrap().contains(&json!(tool)),
            "{seen}"
        );
    }
    // The secret reached the client once, in the creating tool's result.
    assert_eq!(seen["secret_seen"], 1, "{seen}");
    assert_eq!(seen["authorize_first"], 200);
    assert_eq!(seen["usage_valid"], 1, "{seen}");
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
    // And never in the server's logs.
    let log = server.stop();
    for whole in [secret, seen["rotated_secret"].as_str().unwrap()] {
        assert!(!log.contains(whole), "a secret reached the server's output");
    }
}
