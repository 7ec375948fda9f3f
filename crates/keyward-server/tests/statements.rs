//! No database write in the request path: every SQL statement sqlx runs is counted (its
//! `sqlx::query` trace events) while 10,000 verifications go through `/v1/authorize`;
//! none may write, and reads must not grow with the requests. The batched flush afterwards
//! writes what they recorded.
//!
//! Its own test binary: the counting subscriber is global, since SQLite runs statements on
//! a worker thread of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use keyward_core::clock::ManualClock;
use keyward_server::{AppState, ServerConfig, router};
use keyward_service::Operator;
use keyward_service::credentials::NewCredential;
use keyward_service::principal::WriteKeys;
use keyward_store::testing::TestDatabase;
use keyward_store::{SqlStore, Store};
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Statements seen so far, by kind.
#[derive(Default)]
struct Statements {
    reads: AtomicU64,
    writes: AtomicU64,
}

struct Counter(Arc<Statements>);

struct Summary(Option<String>);

impl Visit for Summary {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counter {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut summary = Summary(None);
        event.record(&mut summary);
        let verb = summary
            .0
            .unwrap_or_default()
            .trim_start_matches('"')
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if matches!(verb.as_str(), "select" | "pragma" | "with") {
            self.0.reads.fetch_add(1, Ordering::Relaxed);
        } else {
            self.0.writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test]
async fn ten_thousand_verifications_make_no_database_write() {
    let statements = Arc::new(Statements::default());
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(Counter(statements.clone())),
    )
    .unwrap();

    let db = TestDatabase::from_env().await;
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let clock = ManualClock::new(time::macros::datetime!(2026-06-01 12:00 UTC));
    let state = AppState::new(store.clone(), Arc::new(clock), ServerConfig::default());
    let operator = Operator::new();
    let (org, _) = state
        .service
        .organizations()
        .init(&operator, "Counted")
        .await
        .unwrap();
    let new = NewCredential {
        name: "busy".into(),
        permissions: vec!["dns:read".into()],
        rate_limit_override: Some(1_000_000),
        ..Default::default()
    };
    let permit = operator
        .in_organization(&org.id)
        .permit::<WriteKeys>()
        .unwrap();
    let issued = state
        .service
        .credentials()
        .create(&permit, new)
        .await
        .unwrap();
    let key = issued.api_key.expose().to_owned();
    let app = router(state.clone());
    let authorize = |key: &str| {
        let mut request = Request::builder()
            .uri("/v1/authorize")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 5000))));
        app.clone().oneshot(request)
    };
    assert_eq!(authorize(&key).await.unwrap().status(), StatusCode::OK);
    assert!(
        statements.writes.load(Ordering::Relaxed) > 0,
        "the counter sees the setup's writes"
    );

    let (reads, writes) = (
        statements.reads.load(Ordering::Relaxed),
        statements.writes.load(Ordering::Relaxed),
    );
    for _ in 0..10_000 {
        assert_eq!(authorize(&key).await.unwrap().status(), StatusCode::OK);
    }
    let reads = statements.reads.load(Ordering::Relaxed) - reads;
    let writes = statements.writes.load(Ordering::Relaxed) - writes;
    assert_eq!(writes, 0, "no write in the request path");
    // The organization's counter, rules and roles are re-read every 800 ms of real time.
    assert!(reads < 100, "{reads} reads for 10,000 verifications");

    let before = statements.writes.load(Ordering::Relaxed);
    state.engine.flush_usage().await.unwrap();
    let flushed = statements.writes.load(Ordering::Relaxed) - before;
    assert!(
        (1..=4).contains(&flushed),
        "one batch writes the last use and the counts: {flushed} statements"
    );
    let usage = store
        .usage(&issued.credential.id, 0, i64::MAX, 1_000_000_000)
        .await
        .unwrap();
    assert_eq!(usage.iter().map(|u| u.count).sum::<i64>(), 10_001);
}
