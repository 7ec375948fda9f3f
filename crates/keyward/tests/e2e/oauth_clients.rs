//! Real OAuth clients against the binary: Python's `authlib`, `requests-oauthlib`, `pyjwt`
//! and `jwcrypto` (`oauth_clients.py`), installed by `.ci/run` in a venv. The interpreter
//! is `KEYWARD_TEST_PYTHON`, else `python3`; skipped with a notice when it or the packages
//! are missing, failing under `KEYWARD_TEST_REQUIRE_SERVICES=1`.

use std::path::Path;
use std::process::Command;

use keyward_store::testing::skip_or_fail;

use crate::support::{Server, database, init};

fn python() -> Option<String> {
    let python = std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python)
        .args([
            "-c",
            "import authlib, requests_oauthlib, jwt, jwcrypto, requests",
        ])
        .output()
        .ok()?;
    probe.status.success().then_some(python)
}

#[tokio::test(flavor = "multi_thread")]
async fn python_oauth_clients_get_and_check_tokens() {
    let Some(python) = python() else {
        skip_or_fail(
            "python oauth clients",
            "python3 with authlib, requests-oauthlib, pyjwt[crypto] and jwcrypto (see .ci/run)",
        );
        return;
    };
    let db = database().await;
    let bootstrap = init(db.url());
    let server = Server::start(db.url(), &[], &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/oauth_clients.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("KEYWARD_URL", &server.base)
            .env("CLIENT_ID", &bootstrap.organization_id)
            .env("CLIENT_SECRET", &bootstrap.client_secret)
            // The test server is plain HTTP on loopback; oauthlib refuses that otherwise.
            .env("OAUTHLIB_INSECURE_TRANSPORT", "1")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("OK"),
        "{stdout}\n{stderr}"
    );
}
