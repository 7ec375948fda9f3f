//! `/v1/authorize`: the auth request of a reverse proxy in front of the API (nginx
//! `auth_request`, Traefik ForwardAuth, Envoy ext_authz over HTTP).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_core::credential::Environment;
use keyward_core::scope::{Scope, ScopeCatalogue, ScopeError};
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::gate::{admit, identity_headers};
use crate::state::AppState;

/// The header naming the scopes the proxied request needs (space- or comma-separated).
pub const REQUIRED_SCOPES_HEADER: &str = "x-keyward-required-scopes";
/// The header naming the environment the proxied request needs.
pub const REQUIRED_ENVIRONMENT_HEADER: &str = "x-keyward-required-environment";
/// The path of the endpoint; anything after it is the original path (Envoy).
pub const AUTHORIZE_PATH: &str = "/v1/authorize";
const ORIGINAL_URIS: [&str; 2] = ["x-original-uri", "x-forwarded-uri"];
const ORIGINAL_METHODS: [&str; 2] = ["x-original-method", "x-forwarded-method"];

/// Scopes required for requests matching a method and a path pattern, from the
/// configuration's `[[authorize.routes]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteScopes {
    /// The method, or any when none.
    pub method: Option<Method>,
    /// Path segments; `*` matches one segment, a final `**` any rest.
    pub path: String,
    /// The scopes a matching request needs.
    pub scopes: Vec<Scope>,
}

/// A route as written in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteScopesConfig {
    /// `GET`, `POST`, …; omitted for any.
    pub method: Option<String>,
    /// e.g. `/v1/domains/*/dns/**`.
    pub path: String,
    /// e.g. `["dns:write"]`.
    pub scopes: Vec<String>,
}

impl RouteScopes {
    /// Checks a configured route against the catalogue.
    pub fn from_config(
        route: &RouteScopesConfig,
        catalogue: &ScopeCatalogue,
    ) -> Result<Self, String> {
        let method = route
            .method
            .as_deref()
            .map(|m| {
                m.to_ascii_uppercase()
                    .parse::<Method>()
                    .map_err(|_| format!("`{m}` is not an HTTP method"))
            })
            .transpose()?;
        if !route.path.starts_with('/') {
            return Err(format!("route path `{}` must start with /", route.path));
        }
        let scopes = route
            .scopes
            .iter()
            .map(|s| catalogue.parse(s))
            .collect::<Result<_, ScopeError>>()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            method,
            path: route.path.clone(),
            scopes,
        })
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let mut pattern = self.path.split('/');
        let mut actual = path.split('/');
        loop {
            match (pattern.next(), actual.next()) {
                (Some("**"), _) => return true,
                (Some("*"), Some(_)) => {}
                (Some(p), Some(a)) if p == a => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

/// The scopes the configuration requires for a request: those of the first matching route.
pub fn route_scopes<'a>(routes: &'a [RouteScopes], method: &Method, path: &str) -> &'a [Scope] {
    routes
        .iter()
        .find(|r| r.matches(method, path))
        .map_or(&[], |r| r.scopes.as_slice())
}

fn header<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
}

/// Decide whether the proxy may forward a request. The credential is read as everywhere
/// (`X-Api-Key`, `Authorization: Bearer`, `?api_key=` of the original URI when enabled);
/// the original method and URI come from `X-Original-Method`/`X-Original-URI` (or
/// `X-Forwarded-Method`/`X-Forwarded-Uri`, or the method and the path appended to
/// `/v1/authorize/…`); required scopes from
/// `X-Keyward-Required-Scopes` and the configured routes; the environment from
/// `X-Keyward-Required-Environment`; the client address from the peer or, behind trusted
/// proxies, `X-Forwarded-For`. 200 with `X-Keyward-Key-Id`, `X-Keyward-Organization`,
/// `X-Keyward-Environment` and `X-Keyward-Scopes`; 401, 403 or 429 otherwise.
#[utoipa::path(get, path = "/v1/authorize", tag = "verification",
    params(
        ("X-Original-URI" = Option<String>, Header, description = "the proxied request's URI"),
        ("X-Original-Method" = Option<String>, Header, description = "the proxied request's method"),
        ("X-Keyward-Required-Scopes" = Option<String>, Header, description = "scopes the request needs"),
        ("X-Keyward-Required-Environment" = Option<String>, Header, description = "`live` or `test`"),
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
    // Envoy's ext_authz appends the original path: /v1/authorize/v1/domains/…
    let appended = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .and_then(|pq| pq.strip_prefix(AUTHORIZE_PATH));
    let original_uri = header(&parts.headers, &ORIGINAL_URIS)
        .or(appended.filter(|rest| rest.starts_with('/')))
        .unwrap_or("");
    let (path, query) = match original_uri.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (original_uri, None),
    };
    let query = if original_uri.is_empty() {
        parts.uri.query()
    } else {
        query
    };
    let method = header(&parts.headers, &ORIGINAL_METHODS)
        .and_then(|m| m.parse::<Method>().ok())
        .unwrap_or_else(|| parts.method.clone());
    let mut scopes: Vec<Scope> =
        route_scopes(&state.config.authorize_routes, &method, path).to_vec();
    if let Some(listed) = header(&parts.headers, &[REQUIRED_SCOPES_HEADER]) {
        for text in listed.split([' ', ',']).filter(|s| !s.is_empty()) {
            let scope = state.config.catalogue.parse(text).map_err(|e| {
                ApiError::bad_request(
                    "invalid_required_scopes",
                    format!("{REQUIRED_SCOPES_HEADER}: {e}"),
                )
            })?;
            scopes.push(scope);
        }
    }
    let environment = header(&parts.headers, &[REQUIRED_ENVIRONMENT_HEADER])
        .map(|e| {
            Environment::parse(e.trim()).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_required_environment",
                    format!("{REQUIRED_ENVIRONMENT_HEADER}: must be live or test"),
                )
            })
        })
        .transpose()?;
    let identity = admit(
        &state.verifier,
        &state.config,
        &parts,
        query,
        &scopes,
        environment,
    )
    .await?;
    Ok((StatusCode::OK, identity_headers(&identity)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Option<&str>, path: &str) -> RouteScopes {
        let config = RouteScopesConfig {
            method: method.map(String::from),
            path: path.into(),
            scopes: vec!["dns:read".into()],
        };
        RouteScopes::from_config(&config, &ScopeCatalogue::default()).unwrap()
    }

    #[test]
    fn route_patterns_match_segments_and_rests() {
        let any = route(None, "/v1/domains/*/dns/**");
        assert!(any.matches(&Method::GET, "/v1/domains/example.com/dns/records/1"));
        assert!(any.matches(&Method::POST, "/v1/domains/example.com/dns"));
        assert!(!any.matches(&Method::GET, "/v1/domains/example.com"));
        assert!(!any.matches(&Method::GET, "/v1/domains"));
        let exact = route(Some("delete"), "/v1/vps/*");
        assert!(exact.matches(&Method::DELETE, "/v1/vps/7"));
        assert!(!exact.matches(&Method::GET, "/v1/vps/7"));
        assert!(!exact.matches(&Method::DELETE, "/v1/vps/7/disks"));
    }

    #[test]
    fn bad_routes_are_refused() {
        let catalogue = ScopeCatalogue::default();
        let bad_scope = RouteScopesConfig {
            method: None,
            path: "/x".into(),
            scopes: vec!["dns:fly".into()],
        };
        assert!(RouteScopes::from_config(&bad_scope, &catalogue).is_err());
        let bad_path = RouteScopesConfig {
            method: None,
            path: "x".into(),
            scopes: vec![],
        };
        assert!(RouteScopes::from_config(&bad_path, &catalogue).is_err());
    }
}
