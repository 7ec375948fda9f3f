//! PostgreSQL crashes (`pg_ctlcluster … stop -m immediate`) under a bounded create/revoke
//! load: Keyward answers 503 problem+json meanwhile (never a 500, a hang or a crash),
//! recovers by itself, and every acknowledged create and revoke holds afterwards.
//!
//! A test binary of its own: it stops the machine's PostgreSQL, which no other test may
//! be using at the time (cargo runs test binaries one after another).

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward_store::testing::{TestDatabase, postgres_admin_url, skip_or_fail};
use serde_json::{Value, json};

#[path = "e2e/support.rs"]
#[expect(dead_code, reason = "shared with the e2e suite, which uses all of it")]
mod support;

use support::{Server, client, init};

/// The local PostgreSQL cluster, controlled with `pg_ctlcluster`; started again on drop.
struct Cluster {
    version: String,
}

impl Cluster {
    fn local() -> Option<Self> {
        let url = postgres_admin_url();
        if !(url.contains("@127.0.0.1") || url.contains("@localhost")) {
            return None;
        }
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()?
            .flatten()
            .next()?
            .file_name()
            .into_string()
            .ok()?;
        Some(Self { version })
    }

    fn run(&self, action: &[&str]) {
        let status = Command::new("pg_ctlcluster")
            .arg("--skip-systemctl-redirect")
            .args([self.version.as_str(), "main"])
            .args(action)
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctlcluster {action:?} failed");
    }

    fn crash(&self) {
        self.run(&["stop", "-m", "immediate"]);
    }

    fn start(&self) {
        self.run(&["start"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Whatever happened in the test, leave the server running ("already running" is fine).
        let _ = Command::new("pg_ctlcluster")
            .arg("--skip-systemctl-redirect")
            .args([self.version.as_str(), "main", "start"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[derive(Default)]
struct Ledger {
    created: Vec<(String, String)>,
    revoked: HashSet<String>,
    statuses: Vec<u16>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_a_postgres_crash() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let Some(cluster) = Cluster::local() else {
        skip_or_fail(
            "a local PostgreSQL cluster controlled by pg_ctlcluster",
            "none found",
        );
        return;
    };
    let admin = init(db.url()).api_key;
    // The load runs on the bootstrap key: lift its rate limit out of the way.
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("keyward.toml");
    std::fs::write(
        &config,
        "[rate_limits]\nlive_per_second = 1000000\nlive_burst = 1000000\n\
         management_per_second = 1000000\nmanagement_burst = 1000000\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let server = Arc::new(Server::start(
        db.url(),
        &["--config", config],
        &[("KEYWARD_LOG", "warn")],
    ));
    let limit = client()
        .get(server.url("/v1/keys?limit=1"))
        .header("x-api-key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        limit.headers()["ratelimit-limit"],
        "1000000",
        "the configuration lifted the limit"
    );
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (server, ledger, admin, stop) =
                (server.clone(), ledger.clone(), admin.clone(), stop.clone());
            tokio::spawn(async move {
                let http = client();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && Instant::now() < deadline
                    && i < 5_000
                {
                    i += 1;
                    let response = http
                        .post(server.url("/v1/keys"))
                        .header("x-api-key", &admin)
                        .json(&json!({"name": format!("w{worker}-{i}")}))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap();
                    let mut to_revoke = None;
                    {
                        let mut ledger = ledger.lock().unwrap();
                        ledger.statuses.push(status);
                        if status == 201 {
                            let entry = (
                                body["key_id"].as_str().unwrap().to_owned(),
                                body["key"].as_str().unwrap().to_owned(),
                            );
                            if i % 3 == 0 {
                                to_revoke = Some(entry.0.clone());
                            }
                            ledger.created.push(entry);
                        } else {
                            assert_eq!(status, 503, "only 503 while the database is down: {body}");
                            assert_eq!(body["code"], "unavailable");
                        }
                    }
                    if let Some(id) = to_revoke {
                        let response = http
                            .post(server.url(&format!("/v1/keys/{id}/revoke")))
                            .header("x-api-key", &admin)
                            .send()
                            .await
                            .unwrap();
                        let status = response.status().as_u16();
                        let mut ledger = ledger.lock().unwrap();
                        ledger.statuses.push(status);
                        match status {
                            200 => drop(ledger.revoked.insert(id)),
                            503 => {}
                            other => panic!("revoke answered {other}"),
                        }
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.crash();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start();

    // Keyward recovers by itself: /readyz answers 200 again within a bounded time.
    let http = client();
    let recovered_by = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if ready == 200 {
            break;
        }
        assert!(
            Instant::now() < recovered_by,
            "Keyward did not recover after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(ledger.statuses.contains(&503), "the outage was seen");
    assert!(
        ledger.created.len() > 20,
        "the load ran: {} creates",
        ledger.created.len()
    );
    for (id, key) in &ledger.created {
        let read = http
            .get(server.url(&format!("/v1/keys/{id}")))
            .header("x-api-key", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "acknowledged create {id} was lost");
        let check = http
            .get(server.url("/v1/keys/none"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        let body: Value = check.json().await.unwrap();
        if ledger.revoked.contains(id) {
            assert_eq!(
                body["outcome"], "REVOKED",
                "acknowledged revoke of {id} did not hold"
            );
        } else {
            assert_ne!(
                body["outcome"], "NOT_FOUND",
                "created key {id} does not authenticate"
            );
        }
    }
    eprintln!(
        "{} acknowledged creates, {} acknowledged revokes, {} answers of 503",
        ledger.created.len(),
        ledger.revoked.len(),
        ledger.statuses.iter().filter(|s| **s == 503).count()
    );
}
