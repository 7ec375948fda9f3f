//! The dashboard in a real browser (`dashboard_browser.py`): Debian's Chromium driven by
//! Playwright from PyPI, against the binary. Skipped with a notice when the browser or the
//! package is missing, failing under `KEYWARD_TEST_REQUIRE_SERVICES=1`. Screenshots of each
//! page at 1280×800 go to `target/screenshots/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use keyward_store::testing::skip_or_fail;

use crate::support::{Server, database, init, keyward, run_python_script};

/// The browser the tests drive: `KEYWARD_TEST_CHROMIUM`, else Debian's.
fn chromium() -> Option<String> {
    let path =
        std::env::var("KEYWARD_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    Path::new(&path).exists().then_some(path)
}

/// A Python interpreter with Playwright (and pyotp, for authenticator codes):
/// `KEYWARD_TEST_PYTHON`, else `python3`.
fn python_with_playwright() -> Option<String> {
    let python = std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python)
        .args(["-c", "import playwright.sync_api, requests, pyotp"])
        .output()
        .ok()?;
    probe.status.success().then_some(python)
}

/// Adds a member with a password read from standard input, as an operator would.
pub fn add_member(database: &str, organization_id: &str, email: &str, password: &str) {
    keyward_store::testing::record_secrets([password]);
    let mut child = keyward()
        .arg("--database")
        .arg(database)
        .args([
            "users",
            "add",
            "--org",
            organization_id,
            "--email",
            email,
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(email), "{stdout}");
    assert!(
        !stdout.contains(password),
        "a chosen password is not echoed"
    );
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_manages_credentials_and_rules_in_chromium() {
    let (Some(chromium), Some(python)) = (chromium(), python_with_playwright()) else {
        skip_or_fail(
            "chromium with playwright",
            "Debian's chromium and the playwright package from PyPI (see .ci/run)",
        );
        return;
    };
    let db = database().await;
    let bootstrap = init(db.url());
    let password = "correct horse battery staple";
    add_member(
        db.url(),
        &bootstrap.organization_id,
        "ada@example.com",
        password,
    );
    let server = Server::start(db.url(), &[], &[]);
    let envs = vec![
        ("KEYWARD_URL", server.base.clone()),
        ("KEYWARD_EMAIL", "ada@example.com".to_owned()),
        ("KEYWARD_PASSWORD", password.to_owned()),
        ("KEYWARD_SCREENSHOTS", screenshots().display().to_string()),
        ("KEYWARD_CHROMIUM", chromium),
    ];
    run_python_script(python, "dashboard_browser.py", envs, || {
        format!("server:\n{}", server.output.lock().unwrap())
    })
    .await;
    let logs = server.stop();
    assert!(!logs.contains(password), "the password reached the logs");
}

/// npm's axe-core: `KEYWARD_TEST_AXE`, else where `.ci/run` installs it.
fn axe_core() -> Option<String> {
    let path = std::env::var("KEYWARD_TEST_AXE")
        .unwrap_or_else(|_| "/var/tmp/keyward-npm/node_modules/axe-core/axe.min.js".to_owned());
    Path::new(&path).exists().then_some(path)
}

/// The deployment's own resources the flows run under.
const CATALOGUE: &str = r#"
[scopes]
resources = ["orders", "customers"]
actions = { orders = ["refund"] }

[webhooks]
allow_private_targets = true
allow_http = true
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboards_flows_work_in_chromium_and_every_page_passes_axe() {
    let (Some(chromium), Some(python), Some(axe)) =
        (chromium(), python_with_playwright(), axe_core())
    else {
        skip_or_fail(
            "chromium with playwright and axe-core",
            "Debian's chromium, playwright and pyotp from PyPI and axe-core from npm (see .ci/run)",
        );
        return;
    };
    let db = database().await;
    let bootstrap = init(db.url());
    let password = "an owner's passphrase";
    keyward_store::testing::record_secrets([password, "a viewer's password"]);
    add_member(
        db.url(),
        &bootstrap.organization_id,
        "owen@example.com",
        password,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keyward.toml");
    std::fs::write(&config, CATALOGUE).unwrap();
    let server = Server::start(db.url(), &["--config", config.to_str().unwrap()], &[]);
    let envs = vec![
        ("KEYWARD_URL", server.base.clone()),
        ("KEYWARD_EMAIL", "owen@example.com".to_owned()),
        ("KEYWARD_PASSWORD", password.to_owned()),
        ("KEYWARD_ADMIN_KEY", bootstrap.api_key.clone()),
        ("KEYWARD_AXE", axe),
        ("KEYWARD_SCREENSHOTS", screenshots().display().to_string()),
        ("KEYWARD_CHROMIUM", chromium),
    ];
    let stdout = run_python_script(python, "dashboard_flows.py", envs, || {
        format!("server:\n{}", server.output.lock().unwrap())
    })
    .await;
    keyward_store::testing::record_secrets_shown(&stdout);
    let logs = server.stop();
    for secret in [password, "a viewer's password", bootstrap.api_key.as_str()] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    assert!(
        !logs.contains("/invite?token="),
        "an invitation's token reached the logs"
    );
}
