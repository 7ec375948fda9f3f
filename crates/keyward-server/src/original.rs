//! The original request behind `/v1/authorize`: which headers name it, and which scopes
//! the configured routes (`[[authorize.routes]]`) require of it.

use axum::http::{HeaderName, Method};
use keyward_core::scope::{Scope, ScopeCatalogue, ScopeError};
use serde::Deserialize;

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
