//! Admitting a request to a protected API — the decision `/v1/authorize` and the tower
//! layer share: read the presented credential, find the client address, check it with the
//! [`Verifier`], and answer either the identity or the refusal (401, 403 or 429 with their
//! RFC 6750 headers, as problem+json).

use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use keyward_core::credential::Environment;
use keyward_core::rate_limit::{RateDecision, ceil_seconds};
use keyward_core::scope::Scope;
use keyward_core::verify::Outcome;

use crate::auth::{Transport, presented_credential, request_client_ip_with};
use crate::error::{ApiError, retry_after};
use crate::state::ServerConfig;
use crate::verifier::{Admitted, Client, Demand, Identity, Purpose, Verifier};

/// Response headers naming the admitted credential, for the API behind the gate.
pub const KEY_ID_HEADER: HeaderName = HeaderName::from_static("x-keyward-key-id");
/// The credential's organization.
pub const ORGANIZATION_HEADER: HeaderName = HeaderName::from_static("x-keyward-organization");
/// `live` or `test`.
pub const ENVIRONMENT_HEADER: HeaderName = HeaderName::from_static("x-keyward-environment");
/// Every scope held, space-separated.
pub const SCOPES_HEADER: HeaderName = HeaderName::from_static("x-keyward-scopes");
/// The end customer's id, when the credential has one.
pub const OWNER_HEADER: HeaderName = HeaderName::from_static("x-keyward-owner-id");

/// Checks the credential a request presents for `scopes` and `environment`. `query` is the
/// query string where `?api_key=` may be found (the original request's, behind a proxy).
pub async fn admit(
    verifier: &Verifier,
    config: &ServerConfig,
    parts: &Parts,
    query: Option<&str>,
    scopes: &[Scope],
    environment: Option<Environment>,
) -> Result<Admitted, ApiError> {
    let presented = presented_credential(&parts.headers, query, config.allow_query_api_key)?;
    let Some((secret, transport)) = presented else {
        return Err(ApiError::Unauthenticated(Outcome::Missing));
    };
    let client = Client {
        ip: request_client_ip_with(parts, &config.trusted_proxies),
        throttled: true,
        via_query: transport == Transport::Query,
    };
    let demand = Demand {
        scopes,
        environment,
        organization: None,
        purpose: Purpose::Use,
    };
    verifier
        .check(&secret, &demand, client)
        .await
        .map_err(|denial| {
            let demanded: Vec<String> = scopes.iter().map(ToString::to_string).collect();
            ApiError::from_denial(denial, &demanded.join(" "))
        })
}

/// The `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers of a rate
/// limit's state (reset in whole seconds, rounded up), and `Retry-After` when it refused.
pub fn rate_limit_headers(decision: &RateDecision, headers: &mut HeaderMap) {
    headers.insert(LIMIT_HEADER, count_value(u64::from(decision.limit)));
    headers.insert(REMAINING_HEADER, count_value(u64::from(decision.remaining)));
    headers.insert(
        RESET_HEADER,
        count_value(u64::try_from(ceil_seconds(decision.reset)).unwrap_or(0)),
    );
    if !decision.allowed {
        headers.insert(header::RETRY_AFTER, retry_after(decision.retry_after));
    }
}

/// A number as a header value. Those below 1,024 (bursts, remaining requests and seconds
/// to reset, nearly always) are made once and cloned, without an allocation per answer;
/// larger ones are written out by hand (`HeaderValue::from(u64)` goes through `fmt`).
fn count_value(n: u64) -> HeaderValue {
    const MADE: usize = 1_024;
    static SMALL: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let small = SMALL.get_or_init(|| (0..MADE as u64).map(HeaderValue::from).collect());
    if let Some(value) = usize::try_from(n).ok().and_then(|i| small.get(i)) {
        return value.clone();
    }
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&digits[start..]).unwrap_or_else(|_| HeaderValue::from(n))
}

/// `RateLimit-Limit`: the credential's burst.
pub const LIMIT_HEADER: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left at once.
pub const REMAINING_HEADER: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the limit is whole again.
pub const RESET_HEADER: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Where a management API request's authentication leaves the caller's rate limit state,
/// for [`rate_limit_layer`] to put on the answer.
#[derive(Debug, Clone, Default)]
pub struct RateSlot(Arc<OnceLock<RateDecision>>);

impl RateSlot {
    /// Keeps `decision` for the answer (the first one wins).
    pub fn fill(&self, decision: RateDecision) {
        let _ = self.0.set(decision);
    }
}

/// Middleware: gives each request a [`RateSlot`] and puts what the `Caller` extractor left
/// there on the answer as `RateLimit-*` headers, unless the handler set its own.
pub async fn rate_limit_layer(mut request: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    if let Some(decision) = slot.0.get()
        && !response.headers().contains_key(LIMIT_HEADER)
    {
        rate_limit_headers(decision, response.headers_mut());
    }
    response
}

/// The headers of an admitted request: identity and rate limit state.
pub fn admitted_headers(admitted: &Admitted) -> HeaderMap {
    // Room for all of them at once: five identity headers and three of the limit.
    let mut headers = HeaderMap::with_capacity(8);
    put_identity_headers(&admitted.identity, &mut headers);
    if let Some(rate) = &admitted.rate {
        rate_limit_headers(rate, &mut headers);
    }
    headers
}

/// Puts the identity headers of an admitted credential into `headers`, from the values its
/// identity made once.
pub fn put_identity_headers(identity: &Identity, headers: &mut HeaderMap) {
    let values = identity.header_values();
    // The names are constants, checked once at compile time.
    let mut put = |name: HeaderName, value: &Option<HeaderValue>| {
        if let Some(value) = value {
            headers.insert(name, value.clone());
        }
    };
    put(KEY_ID_HEADER, &values.key_id);
    put(ORGANIZATION_HEADER, &values.organization);
    put(ENVIRONMENT_HEADER, &Some(values.environment.clone()));
    put(SCOPES_HEADER, &values.scopes);
    put(OWNER_HEADER, &values.owner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_their_decimal_text() {
        for n in [0, 7, 1_023, 1_024, 99_999, 2_000_000, u64::MAX] {
            assert_eq!(count_value(n).to_str().ok(), Some(n.to_string().as_str()));
        }
    }
}
