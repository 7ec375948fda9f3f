//! Prometheus metrics, served at `GET /metrics` in the text format: verifications by
//! outcome, request latency per endpoint, cache hits and misses, rate-limited requests,
//! token issuance, store errors and how far behind the usage flush is. No label carries a
//! secret or an organization's data: outcomes, route templates and fixed words only.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Verifications, by `outcome`.
pub const VERIFICATIONS: &str = "keyward_verifications_total";
/// Request latency, by `endpoint` (the route template).
pub const REQUEST_DURATION: &str = "keyward_http_request_duration_seconds";
/// Verification cache lookups, by `result` (`hit` or `miss`).
pub const CACHE_LOOKUPS: &str = "keyward_cache_lookups_total";
/// Requests refused by a credential's rate limit.
pub const RATE_LIMITED: &str = "keyward_rate_limited_total";
/// Access tokens issued.
pub const TOKENS_ISSUED: &str = "keyward_tokens_issued_total";
/// Store calls that failed.
pub const STORE_ERRORS: &str = "keyward_store_errors_total";
/// Seconds since usage was last written.
pub const FLUSH_LAG: &str = "keyward_usage_flush_lag_seconds";

/// Latency buckets, in seconds: 50 µs to 2.5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use; `None` when another recorder was
/// installed first (metrics are then not served).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// `GET /metrics`: every series in the Prometheus text format.
pub async fn scrape(State(state): State<AppState>) -> Response {
    match handle() {
        Some(handle) => {
            gauge!(FLUSH_LAG).set(state.verifier.flush_lag().as_secs_f64());
            state.verifier.metrics.publish();
            handle.run_upkeep();
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                handle.render(),
            )
                .into_response()
        }
        None => crate::error::ApiError::NotFound.into_response(),
    }
}

/// What the verification path counts. Each worker thread increments counters of its own
/// (a line no other core writes), and a scrape adds what they gained since the last one
/// to the recorder's series: a check pays one uncontended increment per count, where the
/// recorder's shared counters cost two contended ones.
#[derive(Debug)]
pub struct VerificationMetrics {
    /// One row of counts per shard of threads.
    shards: Box<[ShardCounts]>,
    /// The recorder's series, in [`Count`] order, and what was last added to each.
    series: Vec<Counter>,
    published: std::sync::Mutex<Vec<u64>>,
}

/// What is counted, as indices into each shard's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A verification with this outcome.
    Outcome(keyward_core::verify::Outcome),
    /// A cache hit.
    CacheHit,
    /// A cache miss (a store read follows).
    CacheMiss,
    /// A request refused by its credential's rate limit.
    RateLimited,
    /// A store failure.
    StoreError,
}

/// Outcomes, then the four other counts.
const COUNTS: usize = keyward_core::verify::Outcome::ALL.len() + 4;
/// Rows of counts; threads beyond this share rows (still exact, then contended).
const COUNT_SHARDS: usize = 16;

/// One shard's counts, on lines of their own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ShardCounts([AtomicU64; COUNTS]);

impl Count {
    fn index(self) -> usize {
        let outcomes = keyward_core::verify::Outcome::ALL.len();
        match self {
            Count::Outcome(outcome) => keyward_core::verify::Outcome::ALL
                .iter()
                .position(|o| *o == outcome)
                .unwrap_or(0),
            Count::CacheHit => outcomes,
            Count::CacheMiss => outcomes + 1,
            Count::RateLimited => outcomes + 2,
            Count::StoreError => outcomes + 3,
        }
    }
}

/// This thread's row.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % COUNT_SHARDS;
    }
    INDEX.with(|index| *index)
}

impl VerificationMetrics {
    /// Registers the series (with the recorder installed first, so they are counted).
    pub fn new() -> Self {
        handle();
        let mut series: Vec<Counter> = keyward_core::verify::Outcome::ALL
            .iter()
            .map(|o| counter!(VERIFICATIONS, "outcome" => o.code()))
            .collect();
        series.push(counter!(CACHE_LOOKUPS, "result" => "hit"));
        series.push(counter!(CACHE_LOOKUPS, "result" => "miss"));
        series.push(counter!(RATE_LIMITED));
        series.push(counter!(STORE_ERRORS));
        Self {
            shards: (0..COUNT_SHARDS).map(|_| ShardCounts::default()).collect(),
            published: std::sync::Mutex::new(vec![0; series.len()]),
            series,
        }
    }

    /// Counts one `count`.
    pub fn add(&self, count: Count) {
        self.shards[shard_index()].0[count.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds to the recorder's series what was counted since the last call.
    pub fn publish(&self) {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (index, series) in self.series.iter().enumerate() {
            let total: u64 = self
                .shards
                .iter()
                .map(|shard| shard.0[index].load(Ordering::Relaxed))
                .sum();
            series.increment(total - published[index]);
            published[index] = total;
        }
    }
}

impl Default for VerificationMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Folds the latency samples recorded since the last call into their buckets. The
/// recorder keeps each sample until then, so without a scrape or this call the samples
/// would pile up in memory; the usage flusher calls it every flush interval.
pub fn upkeep() {
    if let Some(handle) = handle() {
        handle.run_upkeep();
    }
}

/// Counts an issued access token.
pub fn token_issued() {
    counter!(TOKENS_ISSUED).increment(1);
}

/// The latency histogram of a route template. The handles are kept per worker thread, so a
/// request neither allocates its label nor looks it up in the recorder's registry (the
/// templates are a fixed, small set).
fn latency_histogram(endpoint: &str) -> Histogram {
    thread_local! {
        static HISTOGRAMS: RefCell<HashMap<String, Histogram, foldhash::fast::RandomState>> =
            RefCell::default();
    }
    HISTOGRAMS.with_borrow_mut(|histograms| {
        if let Some(histogram) = histograms.get(endpoint) {
            return histogram.clone();
        }
        let histogram = histogram!(REQUEST_DURATION, "endpoint" => endpoint.to_owned());
        histograms.insert(endpoint.to_owned(), histogram.clone());
        histogram
    })
}

/// A layer timing each request by its route template.
#[derive(Debug, Clone, Copy, Default)]
pub struct LatencyLayer;

impl<S> tower::Layer<S> for LatencyLayer {
    type Service = Latency<S>;

    fn layer(&self, inner: S) -> Latency<S> {
        Latency { inner }
    }
}

/// The service of [`LatencyLayer`].
#[derive(Debug, Clone)]
pub struct Latency<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Latency<S>
where
    S: tower::Service<Request, Response = Response> + Send,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let endpoint = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let histogram = latency_histogram(endpoint);
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            histogram.record(started.elapsed().as_secs_f64());
            response
        })
    }
}
