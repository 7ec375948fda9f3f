//! Per-credential rate limits (GCRA) through HTTP, with the manual clock: burst, steady
//! rate, recovery, `Retry-After`, the `RateLimit-*` headers on 200 and 429, environment
//! defaults against overrides, and who is counted.

use axum::http::StatusCode;
use serde_json::json;
use time::Duration;

use crate::support::{TestApp, TestResponse};

async fn authorize(app: &TestApp, key: &str) -> TestResponse {
    app.get("/v1/authorize").key(key).send().await
}

fn rate_headers(response: &TestResponse) -> (u32, u32, i64) {
    let number = |name: &str| -> i64 {
        response
            .header(name)
            .unwrap_or_else(|| panic!("{name} missing: {:?}", response.headers))
            .parse()
            .unwrap()
    };
    (
        u32::try_from(number("ratelimit-limit")).unwrap(),
        u32::try_from(number("ratelimit-remaining")).unwrap(),
        number("ratelimit-reset"),
    )
}

#[tokio::test]
async fn a_live_key_gets_its_burst_then_429_with_retry_after_then_recovers() {
    let app = TestApp::new().await;
    let key = app.create_key(json!({"name": "limited"})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Live default: 50 a second, burst 100; the clock stands still.
    for i in 0..100u32 {
        let response = authorize(&app, &key).await;
        assert_eq!(response.status, StatusCode::OK, "request {i}");
        let (limit, remaining, reset) = rate_headers(&response);
        assert_eq!((limit, remaining), (100, 99 - i));
        assert_eq!(
            reset,
            i64::from(i / 50 + 1),
            "request {i}: 20 ms per spent request, rounded up"
        );
    }
    let refused = authorize(&app, &key).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.header("retry-after"),
        Some("1"),
        "20 ms, rounded up"
    );
    assert_eq!(rate_headers(&refused), (100, 0, 2));
    assert_eq!(refused.json()["code"], "rate_limited");
    assert_eq!(refused.json()["outcome"], "RATE_LIMITED");

    // One request per 20 ms comes back.
    app.clock.advance(Duration::milliseconds(19));
    assert_eq!(
        authorize(&app, &key).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.clock.advance(Duration::milliseconds(1));
    assert_eq!(authorize(&app, &key).await.status, StatusCode::OK);
    assert_eq!(
        authorize(&app, &key).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // At rest for the reset time, the whole burst is back.
    app.clock.advance(Duration::seconds(2));
    assert_eq!(rate_headers(&authorize(&app, &key).await).1, 99);
}

#[tokio::test]
async fn test_keys_and_overrides_have_their_own_limits() {
    let app = TestApp::new().await;
    let test_key = app
        .create_key(json!({"name": "t", "environment": "test"}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let overridden = app
        .create_key(json!({"name": "o", "rate_limit_override": 5}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for (key, burst) in [(&test_key, 20u32), (&overridden, 10)] {
        for _ in 0..burst {
            let response = authorize(&app, key).await;
            assert_eq!(response.status, StatusCode::OK);
            assert_eq!(rate_headers(&response).0, burst);
        }
        assert_eq!(
            authorize(&app, key).await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // Steady rate of the override: 5 a second, one per 200 ms.
    app.clock.advance(Duration::milliseconds(200));
    assert_eq!(authorize(&app, &overridden).await.status, StatusCode::OK);
    assert_eq!(
        authorize(&app, &overridden).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn verify_reports_the_state_and_its_caller_is_not_counted() {
    let app = TestApp::new().await;
    let verifier = app
        .create_key(
            json!({"name": "api server", "permissions": ["keys:verify"], "rate_limit_override": 1}),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = app
        .create_key(json!({"name": "customer", "rate_limit_override": 2}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The verifier key's own limit is 1 a second (burst 2), yet it verifies five times.
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let response = app
            .post("/v1/keys/verify")
            .key(&verifier)
            .json(json!({"key": key}))
            .send()
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        bodies.push(response.json());
    }
    let codes: Vec<&str> = bodies.iter().map(|b| b["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["VALID", "VALID", "VALID", "VALID", "RATE_LIMITED"]);
    assert_eq!(
        bodies[0]["rate_limit"],
        json!({"limit": 4, "remaining": 3, "reset": 1})
    );
    assert_eq!(bodies[4]["rate_limit"]["remaining"], 0);
    assert_eq!(bodies[4]["retry_after"], 1);
    assert_eq!(bodies[4]["valid"], false);
}

#[tokio::test]
async fn the_management_api_counts_and_shows_the_callers_limit() {
    let app = TestApp::new().await;
    let key = app
        .create_key(
            json!({"name": "reader", "permissions": ["keys:read"], "rate_limit_override": 1}),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = app.get("/v1/keys").key(&key).send().await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(rate_headers(&first), (2, 1, 1));
    assert_eq!(
        app.get("/v1/keys").key(&key).send().await.status,
        StatusCode::OK
    );
    let refused = app.get("/v1/keys").key(&key).send().await;
    refused.assert_problem(429, "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(rate_headers(&refused).1, 0);
}

#[tokio::test]
async fn an_organizations_management_requests_share_a_ceiling() {
    let app = TestApp::with_management_ceiling(2, 5).await;
    // Keys are made outside the ceiling's reach: the ceiling counts from here on.
    app.clock.advance(Duration::seconds(10));
    let keys: Vec<String> = {
        let mut keys = Vec::new();
        for i in 0..2 {
            keys.push(
                app.create_key(json!({"name": format!("k{i}"), "permissions": ["keys:read"]}))
                    .await["key"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        keys
    };
    app.clock.advance(Duration::seconds(10));
    // Five requests at once pass, alternating between two keys well within their own limits.
    for i in 0..5 {
        let response = app.get("/v1/keys").key(&keys[i % 2]).send().await;
        assert_eq!(response.status, StatusCode::OK, "request {i}");
    }
    let refused = app.get("/v1/keys").key(&keys[1]).send().await;
    refused.assert_problem(429, "organization_rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    // Another organization is not affected, nor is verification of this one's keys.
    let other = app.other_organization().await;
    assert_eq!(
        app.get("/v1/keys").key(&other).send().await.status,
        StatusCode::OK
    );
    assert_eq!(authorize(&app, &keys[0]).await.status, StatusCode::OK);
    // The ceiling refills at its rate.
    app.clock.advance(Duration::milliseconds(500));
    assert_eq!(
        app.get("/v1/keys").key(&keys[0]).send().await.status,
        StatusCode::OK
    );
}
