//! `/v1/authorize`: the auth request of a reverse proxy in front of the API (nginx
//! `auth_request`, Traefik ForwardAuth, Envoy ext_authz over HTTP).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_core::credential::Environment;
use keyward_core::scope::Scope;
use keyward_engine::{Admitted, Demand, Purpose};
use keyward_gate::Problem;
use keyward_gate::headers::{
    LIMIT_HEADER, REMAINING_HEADER, RESET_HEADER, count_value, reset_value,
};

use crate::answers::admitting_headers;
use crate::error::ApiError;
use crate::json::EnvironmentName;
use crate::openapi::values::{MethodName, OriginalUri, RequiredScopes};
use crate::original::{Unmatched, route_scopes};
use crate::state::AppState;

/// The header naming the scopes the proxied request needs (space- or comma-separated).
pub const REQUIRED_SCOPES_HEADER: HeaderName = HeaderName::from_static("x-keyward-required-scopes");
/// The header naming the environment the proxied request needs.
pub const REQUIRED_ENVIRONMENT_HEADER: HeaderName =
    HeaderName::from_static("x-keyward-required-environment");
/// The path of the endpoint; anything after it is the original path (Envoy).
pub const AUTHORIZE_PATH: &str = "/v1/authorize";
/// A header's text; a header that is present but not visible ASCII is a 400 with `code`,
/// never read as absent (an unreadable original URI must not fall back to a path without
/// scopes, nor unreadable required scopes to none).
fn readable<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    code: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .map_err(|_| ApiError::bad_request(code, format!("{name}: not visible ASCII")))
        })
        .transpose()
}

const UNREADABLE_ORIGINAL: &str = "unreadable_original_request";
const INVALID_SCOPES: &str = "invalid_required_scopes";
const INVALID_ENVIRONMENT: &str = "invalid_required_environment";

/// Decide whether the proxy may forward a request. The credential is read as everywhere
/// (`X-Api-Key`, `Authorization: Bearer`, `?api_key=` of the original URI when enabled);
/// the original method and URI come from the configured headers (`X-Original-Method` and
/// `X-Original-URI` by default), or the method and the path appended to `/v1/authorize/…`;
/// a request no configured route matches is refused (403 `route_not_allowed`) unless
/// `unmatched = "allow"`; required scopes from
/// `X-Keyward-Required-Scopes` and the configured routes; the environment from
/// `X-Keyward-Required-Environment`; the client address from the peer or, behind trusted
/// proxies, `X-Forwarded-For`. 200 with `X-Keyward-Key-Id`, `X-Keyward-Organization`,
/// `X-Keyward-Environment` and `X-Keyward-Scopes`; 401, 403 or 429 otherwise.
///
/// The method of this request does not matter: a proxy that forwards the original method
/// (Envoy's ext_authz) asks with it.
#[utoipa::path(method(get, post, put, patch, delete, options), path = "/v1/authorize",
    tag = "verification", operation_id = "authorize",
    params(
        ("X-Original-URI" = inline(Option<OriginalUri>), Header, nullable = false, description = "the proxied request's URI"),
        ("X-Original-Method" = inline(Option<MethodName>), Header, nullable = false, description = "the proxied request's method"),
        ("X-Keyward-Required-Scopes" = inline(Option<RequiredScopes>), Header, nullable = false, description = "scopes the request needs"),
        ("X-Keyward-Required-Environment" = inline(Option<EnvironmentName>), Header, nullable = false, description = "`live` or `test`"),
    ),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "allowed; identity in the X-Keyward-* headers"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn authorize(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, _body) = request.into_parts();
    let settings = &state.config.authorize;
    // Envoy's ext_authz appends the original path (/v1/authorize/v1/domains/…): that path
    // is the proxy's own, and wins over any header.
    let appended = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .and_then(|pq| pq.strip_prefix(AUTHORIZE_PATH))
        .filter(|rest| rest.starts_with('/'));
    let original_uri = match appended {
        Some(rest) => Some(rest),
        None => readable(&parts.headers, &settings.uri_header, UNREADABLE_ORIGINAL)?,
    };
    let (path, query) = match original_uri {
        Some(uri) => match uri.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (uri, None),
        },
        None => ("", parts.uri.query()),
    };
    let method = match readable(&parts.headers, &settings.method_header, UNREADABLE_ORIGINAL)? {
        Some(text) if appended.is_none() => text.trim().parse::<Method>().map_err(|_| {
            ApiError::bad_request(
                "invalid_original_method",
                format!("{}: not an HTTP method", settings.method_header),
            )
        })?,
        _ => parts.method.clone(),
    };
    let mut scopes: Vec<Scope> = match route_scopes(&settings.routes, &method, path) {
        Some(scopes) => scopes.to_vec(),
        None if settings.unmatched == Unmatched::Allow => Vec::new(),
        None => return Err(ApiError::RouteNotAllowed),
    };
    if let Some(listed) = readable(&parts.headers, &REQUIRED_SCOPES_HEADER, INVALID_SCOPES)? {
        for text in listed.split([' ', ',']).filter(|s| !s.is_empty()) {
            let scope = state.engine.config().catalogue.parse(text).map_err(|e| {
                ApiError::bad_request(INVALID_SCOPES, format!("{REQUIRED_SCOPES_HEADER}: {e}"))
            })?;
            scopes.push(scope);
        }
    }
    let environment = readable(
        &parts.headers,
        &REQUIRED_ENVIRONMENT_HEADER,
        INVALID_ENVIRONMENT,
    )?
    .map(|e| {
        Environment::parse(e.trim()).ok_or_else(|| {
            ApiError::bad_request(
                INVALID_ENVIRONMENT,
                format!("{REQUIRED_ENVIRONMENT_HEADER}: must be live or test"),
            )
        })
    })
    .transpose()?;
    let demand = Demand {
        scopes: &scopes,
        environment,
        organization: None,
        purpose: Purpose::Use,
    };
    let admitted = state.gate.admit(&parts, query, &demand).await?;
    // The headers become the answer's own map, not copied into an empty one.
    let mut response = StatusCode::OK.into_response();
    *response.headers_mut() = admitted_headers(&admitted);
    Ok(response)
}

/// The headers of an admitted request: identity and rate limit state.
fn admitted_headers(admitted: &Admitted) -> HeaderMap {
    let mut headers = admitting_headers(&admitted.identity);
    match &admitted.rate {
        // The limit's values by name, without hashing a name again; each value is made
        // where its header is found and moved in (BENCHMARKS.md compares the other ways).
        Some(rate) => {
            for (name, value) in &mut headers {
                if *name == LIMIT_HEADER {
                    *value = count_value(u64::from(rate.limit));
                } else if *name == REMAINING_HEADER {
                    *value = count_value(u64::from(rate.remaining));
                } else if *name == RESET_HEADER {
                    *value = reset_value(rate);
                }
            }
        }
        None => {
            for name in [LIMIT_HEADER, REMAINING_HEADER, RESET_HEADER] {
                headers.remove(name);
            }
        }
    }
    headers
}
