//! `/metrics` parsed by a Prometheus text parser (`prometheus-parse`), with the series the
//! requests before it must have produced. The recorder is global to the test binary, so
//! values are compared as lower bounds.

use axum::http::StatusCode;
use base64::Engine;
use serde_json::json;

use crate::support::TestApp;

fn value(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn a_scrape_parses_and_holds_the_expected_series() {
    let app = TestApp::new().await;
    let created = app
        .create_key(json!({"name": "m", "permissions": ["dns:read"], "rate_limit_override": 1}))
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    // A limit of one a second with a burst of two: two pass, the third is limited.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.get("/v1/authorize").key(&key).send().await.status);
    }
    assert_eq!(statuses, [200, 200, 429]);
    app.get("/v1/authorize")
        .key("kw_live_nope")
        .send()
        .await
        .expect(401);
    app.clock.advance(time::Duration::seconds(5));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            created["client_id"].as_str().unwrap(),
            created["client_secret"].as_str().unwrap()
        ))
    );
    let token = app
        .post("/v1/auth/token")
        .header("authorization", &basic)
        .raw(
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials",
        )
        .send()
        .await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);

    let response = app.get("/metrics").send().await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let lines = response.text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();

    let outcome = |code| {
        value(
            &scrape,
            "keyward_verifications_total",
            Some(("outcome", code)),
        )
    };
    assert!(outcome("VALID") >= 2.0, "{}", response.text);
    assert!(outcome("RATE_LIMITED") >= 1.0);
    assert!(outcome("MALFORMED") >= 1.0);
    assert!(value(&scrape, "keyward_rate_limited_total", None) >= 1.0);
    assert!(
        value(
            &scrape,
            "keyward_cache_lookups_total",
            Some(("result", "hit"))
        ) >= 1.0
    );
    assert!(
        value(
            &scrape,
            "keyward_cache_lookups_total",
            Some(("result", "miss"))
        ) >= 1.0
    );
    assert!(value(&scrape, "keyward_tokens_issued_total", None) >= 1.0);
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "keyward_usage_flush_lag_seconds"),
        "{}",
        response.text
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "keyward_store_errors_total"),
        "registered even at zero"
    );
    let latency = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "keyward_http_request_duration_seconds"
                && s.labels.get("endpoint") == Some("/v1/authorize")
        })
        .unwrap_or_else(|| panic!("no latency histogram for /v1/authorize: {}", response.text));
    match &latency.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.iter().any(|b| b.count >= 4.0), "{buckets:?}");
        }
        other => panic!("not a histogram: {other:?}"),
    }
    // Route templates only: no credential id, key or organization in any label.
    assert!(!response.text.contains("api_key_"), "{}", response.text);
    assert!(!response.text.contains("kw_live_"));
    assert!(!response.text.contains("organization_"));
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_given_one_is_kept() {
    let app = TestApp::new().await;
    let mut seen = std::collections::HashSet::new();
    for path in ["/healthz", "/v1/authorize", "/v1/keys", "/nowhere"] {
        let response = app.get(path).send().await;
        let id = response
            .header("x-request-id")
            .unwrap_or_else(|| panic!("{path}: no X-Request-Id"))
            .to_owned();
        let (prefix, counter) = id.split_once('-').unwrap();
        assert_eq!((prefix.len(), counter.len()), (8, 12), "{id}");
        assert!(
            id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()),
            "{id}"
        );
        assert!(seen.insert(id), "request ids are distinct");
    }
    let kept = app
        .get("/healthz")
        .header("x-request-id", "from-the-proxy-42")
        .send()
        .await;
    assert_eq!(kept.header("x-request-id"), Some("from-the-proxy-42"));
}
