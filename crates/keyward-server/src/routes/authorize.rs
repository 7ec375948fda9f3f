//! `/v1/authorize`: the auth request of a reverse proxy in front of the API (nginx
//! `auth_request`, Traefik ForwardAuth, Envoy ext_authz over HTTP).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_core::credential::Environment;
use keyward_core::scope::{Scope, ScopeCatalogue, ScopeError};
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::gate::{admit, admitted_headers};
use crate::state::AppState;

/// The header naming the scopes the proxied request needs (space- or comma-separated).
pub const REQUIRED_SCOPES_HEADER: HeaderName = HeaderName::from_static("x-keyward-required-scopes");
/// The header naming the environment the proxied request needs.
pub const REQUIRED_ENVIRONMENT_HEADER: HeaderName =
    HeaderName::from_static("x-keyward-required-environment");
/// The path of the endpoint; anything after it is the original path (Envoy).
pub const AUTHORIZE_PATH: &str = "/v1/authorize";
/// The header the proxy names the original URI in, unless configured otherwise (nginx's
/// `X-Original-URI`; Traefik's is `X-Forwarded-Uri`).
pub const DEFAULT_URI_HEADER: &str = "x-original-uri";
/// The header the proxy names the original method in (Traefik: `X-Forwarded-Method`).
pub const DEFAULT_METHOD_HEADER: &str = "x-original-method";

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

    fn matches(&self, method: &Method, segments: &[String]) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let mut pattern = self.path.split('/').filter(|p| !p.is_empty());
        let mut actual = segments.iter();
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

/// A path as the API behind will route it: percent-decoded, empty and `.` segments dropped,
/// `..` resolved, so `/v1//vps/%37/` and `/v1/vps/7` are the same path.
pub fn normalized_segments(path: &str) -> Vec<String> {
    let mut segments: Vec<String> = Vec::new();
    for raw in path.split('/') {
        let segment = percent_decode(raw);
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    segments
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What `/v1/authorize` does with a request no configured route matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unmatched {
    /// Refuse it (403 `route_not_allowed`): the default once any route is configured, so a
    /// path spelled in a way no route foresaw cannot slip through without scopes.
    #[default]
    Deny,
    /// Let it through with the scopes of the request's headers only.
    Allow,
}

/// The scopes the configuration requires for a request: those of the first matching route;
/// `None` when routes are configured and none matches.
pub fn route_scopes<'a>(
    routes: &'a [RouteScopes],
    method: &Method,
    path: &str,
) -> Option<&'a [Scope]> {
    if routes.is_empty() {
        return Some(&[]);
    }
    let segments = normalized_segments(path);
    routes
        .iter()
        .find(|r| r.matches(method, &segments))
        .map(|r| r.scopes.as_slice())
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A header's text; a header that is present but not visible ASCII is a 400, never read
/// as absent (an unreadable original URI must not fall back to a path without scopes).
fn readable<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value.to_str().map_err(|_| {
                ApiError::bad_request(
                    "unreadable_original_request",
                    format!("{name}: not visible ASCII"),
                )
            })
        })
        .transpose()
}

/// How `/v1/authorize` learns the original request, and which scopes it requires.
#[derive(Debug, Clone)]
pub struct AuthorizeConfig {
    /// The header holding the original URI (the proxy must set it and not pass on the
    /// client's own).
    pub uri_header: HeaderName,
    /// The header holding the original method.
    pub method_header: HeaderName,
    /// Scopes per method and path.
    pub routes: Vec<RouteScopes>,
    /// What a request no route matches gets, when routes are configured.
    pub unmatched: Unmatched,
}

impl Default for AuthorizeConfig {
    fn default() -> Self {
        Self {
            uri_header: HeaderName::from_static(DEFAULT_URI_HEADER),
            method_header: HeaderName::from_static(DEFAULT_METHOD_HEADER),
            routes: Vec::new(),
            unmatched: Unmatched::Deny,
        }
    }
}

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
        None => readable(&parts.headers, &settings.uri_header)?,
    };
    let (path, query) = match original_uri {
        Some(uri) => match uri.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (uri, None),
        },
        None => ("", parts.uri.query()),
    };
    let method = match readable(&parts.headers, &settings.method_header)? {
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
    if let Some(listed) = header(&parts.headers, &REQUIRED_SCOPES_HEADER) {
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
    let environment = header(&parts.headers, &REQUIRED_ENVIRONMENT_HEADER)
        .map(|e| {
            Environment::parse(e.trim()).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_required_environment",
                    format!("{REQUIRED_ENVIRONMENT_HEADER}: must be live or test"),
                )
            })
        })
        .transpose()?;
    let admitted = admit(
        &state.verifier,
        &state.config,
        &parts,
        query,
        &scopes,
        environment,
    )
    .await?;
    // The headers become the answer's own map, not copied into an empty one.
    let mut response = StatusCode::OK.into_response();
    *response.headers_mut() = admitted_headers(&admitted);
    Ok(response)
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

    fn matches(route: &RouteScopes, method: &Method, path: &str) -> bool {
        route.matches(method, &normalized_segments(path))
    }

    #[test]
    fn route_patterns_match_segments_and_rests() {
        let any = route(None, "/v1/domains/*/dns/**");
        assert!(matches(
            &any,
            &Method::GET,
            "/v1/domains/example.com/dns/records/1"
        ));
        assert!(matches(&any, &Method::POST, "/v1/domains/example.com/dns"));
        assert!(!matches(&any, &Method::GET, "/v1/domains/example.com"));
        assert!(!matches(&any, &Method::GET, "/v1/domains"));
        let exact = route(Some("delete"), "/v1/vps/*");
        assert!(matches(&exact, &Method::DELETE, "/v1/vps/7"));
        assert!(!matches(&exact, &Method::GET, "/v1/vps/7"));
        assert!(!matches(&exact, &Method::DELETE, "/v1/vps/7/disks"));
    }

    #[test]
    fn paths_are_matched_the_way_an_api_routes_them() {
        let exact = route(Some("delete"), "/v1/vps/*");
        for spelled in [
            "/v1/vps/7/",
            "/v1//vps/7",
            "/v1/vps/%37",
            "/v1/./vps/7",
            "/v1/x/../vps/7",
            "/v1/%76ps/7",
        ] {
            assert!(matches(&exact, &Method::DELETE, spelled), "{spelled}");
        }
        assert_eq!(normalized_segments("/a/%2F/b"), ["a", "/", "b"]);
        assert_eq!(normalized_segments("/../../etc"), ["etc"]);
    }

    #[test]
    fn unmatched_paths_are_told_apart_once_routes_exist() {
        let routes = [route(Some("get"), "/v1/domains/**")];
        assert_eq!(
            route_scopes(&routes, &Method::GET, "/v1/domains/x").map(<[Scope]>::len),
            Some(1)
        );
        assert_eq!(route_scopes(&routes, &Method::DELETE, "/v1/vps/7"), None);
        assert_eq!(
            route_scopes(&[], &Method::DELETE, "/v1/vps/7").map(<[Scope]>::len),
            Some(0)
        );
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
