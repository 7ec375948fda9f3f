//! Running the real binary on a test database: `init`, `serve` on a free port, and a small HTTP client.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward_store::testing::{TestDatabase, keep_log, record_secrets, record_secrets_shown};
use serde_json::Value;

/// The master key of every test server (32 bytes, base64).
pub const TEST_MASTER_KEY: &str = "a2V5d2FyZC10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=";

/// The binary under test.
pub fn keyward() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    command
        .env_remove("KEYWARD_DATABASE_URL")
        .env_remove("KEYWARD_CONFIG")
        .env_remove("KEYWARD_LISTEN")
        // One master key for every node of a test, and no key file left in the crate.
        .env("KEYWARD_MASTER_KEY", TEST_MASTER_KEY);
    command
}

/// The three values `keyward init --json` prints.
pub struct Bootstrap {
    pub api_key: String,
    pub client_secret: String,
    pub organization_id: String,
}

/// Runs `keyward init --json` on `database`.
pub fn init(database: &str) -> Bootstrap {
    let output = keyward()
        .arg("--database")
        .arg(database)
        .args(["init", "--org-name", "E2E", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    record_secrets_shown(&String::from_utf8_lossy(&output.stdout));
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    Bootstrap {
        api_key: value["api_key"].as_str().unwrap().to_owned(),
        client_secret: value["client_secret"].as_str().unwrap().to_owned(),
        organization_id: value["organization_id"].as_str().unwrap().to_owned(),
    }
}

/// A running `keyward serve`, killed on drop; everything it wrote is captured.
pub struct Server {
    child: Child,
    pub base: String,
    pub output: Arc<Mutex<String>>,
    /// The thread that reads the log, done when the process has exited.
    log_done: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `keyward serve` on a free port and waits until it listens.
    pub fn start(database: &str, extra_args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut command = keyward();
        command
            .arg("--database")
            .arg(database)
            .arg("serve")
            .args(extra_args)
            .args(["--listen", "127.0.0.1:0"])
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = output.clone();
        // What the server writes to standard error is its log: kept for the scan after
        // the run.
        let log_done = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            keep_log("keyward-serve", &text);
            sink.lock().unwrap().push_str(&text);
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut line = String::new();
        let base = loop {
            line.clear();
            assert!(Instant::now() < deadline, "the server did not start");
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("the server exited: {}", output.lock().unwrap());
            }
            output.lock().unwrap().push_str(&line);
            // Standard output shows the first organization's secrets once, by design.
            record_secrets_shown(&line);
            if let Some(address) = line.trim().strip_prefix("Keyward listening on ") {
                break address.to_owned();
            }
        };
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        Self {
            child,
            base,
            output,
            log_done: Some(log_done),
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a graceful exit; returns everything the process wrote.
    pub fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "graceful shutdown failed: {exit}");
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(200));
        self.output.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a key over the API as `admin` (asserting 201) and records its secrets for
    /// the scan of the logs; returns the answer.
    pub async fn create_key(&self, admin: &str, body: serde_json::Value) -> Value {
        let response = client()
            .post(self.url("/v1/keys"))
            .header("x-api-key", admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let made: Value = response.json().await.unwrap();
        record_secrets([
            made["key"].as_str().unwrap(),
            made["client_secret"].as_str().unwrap(),
        ]);
        made
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The log is whole, and kept, before the test goes on.
        if let Some(reader) = self.log_done.take() {
            let _ = reader.join();
        }
    }
}

/// An HTTP client builder, with the process's TLS provider in place (see
/// `keyward_delivery::install_tls_provider`).
pub fn http() -> reqwest::ClientBuilder {
    keyward_delivery::install_tls_provider();
    reqwest::Client::builder()
}

/// A blocking-free HTTP client for the tests.
pub fn client() -> reqwest::Client {
    http().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Runs the Python script `tests/e2e/{name}` with `python` and `envs`, off the async
/// threads, and asserts it succeeded and printed `OK` last; `context` is added to the
/// failure message (the server's output, say). Returns what it printed.
pub async fn run_python_script(
    python: String,
    name: &str,
    envs: Vec<(&'static str, String)>,
    context: impl FnOnce() -> String,
) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e")
        .join(name);
    let output =
        tokio::task::spawn_blocking(move || Command::new(python).arg(script).envs(envs).output())
            .await
            .unwrap()
            .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("OK"),
        "{stdout}\n{stderr}\n{}",
        context()
    );
    stdout.into_owned()
}

/// A fresh database of the backend `KEYWARD_TEST_DATABASE` names (SQLite by default; when
/// PostgreSQL is named but unreachable and not required, a notice is printed and SQLite
/// stands in).
pub async fn database() -> TestDatabase {
    TestDatabase::from_env().await
}
