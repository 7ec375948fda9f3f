//! Prometheus metrics, served at `GET /metrics` in the text format: what the engine counts
//! (verifications by outcome, cache hits and misses, rate-limited requests, store errors),
//! the access tokens the service issued, request latency per endpoint, and how far behind
//! the usage flush is. No label carries a secret or an organization's data: outcomes,
//! route templates and fixed words only.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::response::{IntoResponse, Response};
use keyward_engine::metrics::{COUNT_SHARDS, shard_index};
use metrics::gauge;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;
use crate::state::AppState;

/// Request latency, by `endpoint` (the route template).
pub const REQUEST_DURATION: &str = "keyward_http_request_duration_seconds";
/// Seconds since usage was last written.
pub const FLUSH_LAG: &str = "keyward_usage_flush_lag_seconds";

/// Latency buckets' upper bounds, in nanoseconds: 50 µs to 2.5 s.
const LATENCY_BUCKETS: [u64; 15] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use; `None` when another recorder was
/// installed first (metrics are then not served).
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// Installs the process's recorder, if no other is, before anything counts.
pub fn install() {
    handle();
}

/// `GET /metrics`: every series in the Prometheus text format.
pub async fn scrape(State(state): State<AppState>) -> Response {
    match handle() {
        Some(handle) => {
            gauge!(FLUSH_LAG).set(state.engine.flush_lag().as_secs_f64());
            state.engine.metrics.publish();
            let mut text = handle.render();
            latencies().render(&mut text);
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                text,
            )
                .into_response()
        }
        None => ApiError::NotFound.into_response(),
    }
}

/// Request latency per route template. It is kept here rather than in the recorder, which
/// stores every sample until it is folded into buckets: each worker thread adds to bucket
/// counters of its own instead, so a request stores nothing and contends for nothing, and
/// a scrape renders the histograms in the text format.
#[derive(Debug, Default)]
struct Latencies {
    /// Each histogram lives as long as the process: the route templates are a fixed, small
    /// set, and a request holds its histogram without a reference count all cores move.
    endpoints: std::sync::RwLock<BTreeMap<String, &'static EndpointLatency>>,
}

/// One endpoint's histogram: a row of counters per shard of threads.
#[derive(Debug)]
struct EndpointLatency {
    shards: Box<[LatencyRow]>,
}

/// Counts per bucket (the last one past every bound; all of them together are the count)
/// and the sum in nanoseconds, on lines of their own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct LatencyRow {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

fn latencies() -> &'static Latencies {
    static LATENCIES: OnceLock<Latencies> = OnceLock::new();
    LATENCIES.get_or_init(Latencies::default)
}

impl Latencies {
    /// The histogram of `endpoint`, found through this thread's own map once known (the
    /// templates are a fixed, small set).
    fn of(&self, endpoint: &str) -> &'static EndpointLatency {
        thread_local! {
            static KNOWN: RefCell<HashMap<String, &'static EndpointLatency, foldhash::fast::RandomState>> =
                RefCell::default();
        }
        KNOWN.with_borrow_mut(|known| {
            if let Some(histogram) = known.get(endpoint) {
                return *histogram;
            }
            let histogram: &'static EndpointLatency = self
                .endpoints
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(endpoint.to_owned())
                .or_insert_with(|| {
                    Box::leak(Box::new(EndpointLatency {
                        shards: (0..COUNT_SHARDS).map(|_| LatencyRow::default()).collect(),
                    }))
                });
            known.insert(endpoint.to_owned(), histogram);
            histogram
        })
    }

    /// Appends every endpoint's histogram in the Prometheus text format.
    fn render(&self, text: &mut String) {
        use std::fmt::Write;
        let endpoints = self
            .endpoints
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if endpoints.is_empty() {
            return;
        }
        let _ = writeln!(text, "# TYPE {REQUEST_DURATION} histogram");
        for (endpoint, histogram) in endpoints.iter() {
            let label = escape_label(endpoint);
            let total = |read: &dyn Fn(&LatencyRow) -> u64| -> u64 {
                histogram.shards.iter().map(read).sum()
            };
            let mut cumulative = 0;
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += total(&|row| row.buckets[i].load(Ordering::Relaxed));
                let seconds = *bound as f64 / 1e9;
                let _ = writeln!(
                    text,
                    "{REQUEST_DURATION}_bucket{{endpoint=\"{label}\",le=\"{seconds}\"}} {cumulative}"
                );
            }
            // The count is every bucket's, so `+Inf` is never below a finite bound.
            let count = cumulative
                + total(&|row| row.buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed));
            let sum = total(&|row| row.sum_nanos.load(Ordering::Relaxed)) as f64 / 1e9;
            let _ = writeln!(
                text,
                "{REQUEST_DURATION}_bucket{{endpoint=\"{label}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(text, "{REQUEST_DURATION}_sum{{endpoint=\"{label}\"}} {sum}");
            let _ = writeln!(
                text,
                "{REQUEST_DURATION}_count{{endpoint=\"{label}\"}} {count}"
            );
        }
    }
}

impl EndpointLatency {
    /// Counts one request that took `nanos`.
    fn record(&self, nanos: u64) {
        let row = &self.shards[shard_index()];
        let bucket = LATENCY_BUCKETS.partition_point(|bound| *bound < nanos);
        row.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        row.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// A label value as the text format writes it: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        let histogram = latencies().of(endpoint);
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            histogram.record(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_render_as_cumulative_buckets_with_escaped_labels() {
        let latencies = Latencies::default();
        let histogram = latencies.of("/v1/\"odd\"");
        for nanos in [10, 50_000, 50_001, 3_000_000_000] {
            histogram.record(nanos);
        }
        let mut text = String::new();
        latencies.render(&mut text);
        let line = |suffix: &str| {
            text.lines()
                .find(|l| l.contains(suffix))
                .unwrap_or_else(|| panic!("no {suffix} in {text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        assert!(text.contains(r#"endpoint="/v1/\"odd\"""#), "{text}");
        assert_eq!(line(r#"le="0.00005""#), "2", "a bound is in its own bucket");
        assert_eq!(line(r#"le="0.0001""#), "3");
        assert_eq!(line(r#"le="2.5""#), "3");
        assert_eq!(line(r#"le="+Inf""#), "4");
        assert_eq!(line("_count{"), "4");
        assert_eq!(line("_sum{"), "3.000100011");
    }
}
