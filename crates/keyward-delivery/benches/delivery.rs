//! Webhook messages delivered per second to a receiver on 127.0.0.1, through the whole
//! path a node takes (claim from the outbox, sign, send, record the attempt) on an
//! embedded SQLite file, against two baselines measured in the same run: the same bodies
//! POSTed straight to the same receiver by a bare client with the same number in flight,
//! and the rate at which the changes that queue them (keys made one after another through
//! the service, each a durable commit) are made.
//!
//!   cargo bench -p keyward-delivery --bench delivery      (MESSAGES=2000 by default)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keyward_core::clock::SystemClock;
use keyward_core::webhook::TargetPolicy;
use keyward_delivery::Deliverer;
use keyward_engine::{EngineConfig, Verifier};
use keyward_service::credentials::NewCredential;
use keyward_service::principal::{WriteKeys, WriteWebhooks};
use keyward_service::webhooks::{NewWebhook, WebhookConfig};
use keyward_service::{Operator, Service, ServiceConfig};
use keyward_store::{SqlStore, Store};

fn main() {
    let messages: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(messages));
}

async fn run(messages: usize) {
    let dir = tempfile::tempdir().expect("a folder");
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.expect("the store"));
    let config = ServiceConfig {
        webhooks: WebhookConfig {
            targets: TargetPolicy {
                allow_private: true,
                allow_http: true,
            },
            ..WebhookConfig::default()
        },
        ..ServiceConfig::default()
    };
    let in_flight = config.webhooks.max_in_flight_per_endpoint;
    let engine_config = EngineConfig::default();
    let keys = Service::key_ring(&config, &engine_config.tokens, store.clone());
    let clock = Arc::new(SystemClock);
    let engine = Arc::new(Verifier::new(
        store.clone(),
        clock.clone(),
        engine_config,
        keys.clone(),
    ));
    let service = Arc::new(Service::new(store, clock, engine, keys, config));
    let operator = Operator::new();
    let (org, _) = service
        .organizations()
        .init(&operator, "Bench")
        .await
        .expect("an organization");

    // The receiver: 200 to everything, counting.
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let target = format!("http://{}/hook", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let principal = operator.in_organization(&org.id);
    service
        .webhooks()
        .create(
            &principal.permit::<WriteWebhooks>().expect("a permit"),
            NewWebhook {
                url: target.clone(),
                events: vec!["key.created".to_owned()],
                description: None,
            },
        )
        .await
        .expect("a webhook");
    // The messages: one key.created each, queued with its key.
    let write = principal.permit::<WriteKeys>().expect("a permit");
    let started = Instant::now();
    for n in 0..messages {
        let new = NewCredential {
            name: format!("Key {n}"),
            ..NewCredential::default()
        };
        service
            .credentials()
            .create(&write, new)
            .await
            .expect("a key");
    }
    let made_rate = messages as f64 / started.elapsed().as_secs_f64();
    let body = serde_json::json!({
        "type": "key.created",
        "timestamp": "2026-12-04T12:00:00.000Z",
        "data": {"key_id": "api_key_01m91ew689ejgbbe2j6gm9g2w8", "name": "Key 1"},
    })
    .to_string();

    // Baseline: the bodies POSTed straight to the receiver, as many in flight.
    keyward_delivery::install_tls_provider();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let bare = futures_util::StreamExt::for_each_concurrent(
        futures_util::stream::iter(0..messages),
        in_flight,
        |_| {
            let (client, target, body) = (&client, &target, body.clone());
            async move {
                let sent = client
                    .post(target)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                assert!(sent.is_ok_and(|r| r.status().is_success()));
            }
        },
    );
    bare.await;
    let bare_rate = messages as f64 / started.elapsed().as_secs_f64();
    received.store(0, Ordering::Relaxed);

    // Keyward: claimed, signed, sent and recorded.
    let deliverer = Deliverer::new(service.clone()).expect("a deliverer");
    let started = Instant::now();
    let mut delivered = 0;
    while delivered < messages {
        let claimed = deliverer.run_once().await.expect("a round");
        assert!(
            claimed > 0 || started.elapsed() < Duration::from_secs(60),
            "stuck"
        );
        delivered += claimed;
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    assert_eq!(received.load(Ordering::Relaxed), messages as u64);
    println!(
        "{messages} messages, {in_flight} in flight: delivered {rate:.0}/s; bare POSTs \
         {bare_rate:.0}/s (ratio {:.2}); the keys whose key.created they are were made at \
         {made_rate:.0}/s, one after another (ratio of delivery to making {:.2})",
        rate / bare_rate,
        rate / made_rate
    );
}
