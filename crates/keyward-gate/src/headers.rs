//! The `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and `Retry-After`
//! values of an answer, made without `fmt` (every admitted request carries three).

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use keyward_core::rate_limit::{RateDecision, ceil_seconds};

/// `RateLimit-Limit`: the credential's burst.
pub const LIMIT_HEADER: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left at once.
pub const REMAINING_HEADER: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the limit is whole again.
pub const RESET_HEADER: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Sets the `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers of a
/// rate limit's state (reset in whole seconds, rounded up), and `Retry-After` when it
/// refused.
pub fn rate_limit_headers(decision: &RateDecision, headers: &mut HeaderMap) {
    headers.insert(LIMIT_HEADER, count_value(u64::from(decision.limit)));
    headers.insert(REMAINING_HEADER, count_value(u64::from(decision.remaining)));
    headers.insert(RESET_HEADER, reset_value(decision));
    if !decision.allowed {
        headers.insert(header::RETRY_AFTER, retry_after(decision.retry_after));
    }
}

/// `RateLimit-Reset`: whole seconds until the limit is whole again, rounded up.
pub fn reset_value(decision: &RateDecision) -> HeaderValue {
    count_value(u64::try_from(ceil_seconds(decision.reset)).unwrap_or(0))
}

/// How many numbers have a static header value.
const SMALL_NUMBERS: u64 = 1_024;

/// A number as a header value. Those below 1,024 (bursts, remaining requests and seconds
/// to reset, nearly always) are made once, as static text, so cloning one neither
/// allocates nor touches a reference count another core also writes; larger ones are
/// written by `itoa` (`HeaderValue::from(u64)` goes through `fmt`).
pub fn count_value(n: u64) -> HeaderValue {
    static SMALL: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let small = SMALL.get_or_init(|| {
        (0..SMALL_NUMBERS)
            .map(|n| HeaderValue::from_static(Box::leak(n.to_string().into_boxed_str())))
            .collect()
    });
    if let Some(value) = usize::try_from(n).ok().and_then(|i| small.get(i)) {
        return value.clone();
    }
    HeaderValue::from_bytes(itoa::Buffer::new().format(n).as_bytes())
        .unwrap_or_else(|_| HeaderValue::from(n))
}

/// A `Retry-After` value: whole seconds, rounded up, at least 1.
pub fn retry_after(wait: time::Duration) -> HeaderValue {
    HeaderValue::from(retry_after_seconds(wait))
}

/// Seconds to wait: rounded up (a client that waits them is never early), at least 1.
pub fn retry_after_seconds(wait: time::Duration) -> u64 {
    ceil_seconds(wait).max(1).unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_their_decimal_text() {
        for n in (0..1_100).chain([99_999, 2_000_000, u64::MAX]) {
            assert_eq!(count_value(n).to_str().ok(), Some(n.to_string().as_str()));
        }
    }
}
