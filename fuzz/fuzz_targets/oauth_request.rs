//! An OAuth request as the token, introspection and revocation endpoints read it: its
//! parameters (`params::read`: form or JSON body, query) and its client authentication
//! (`params::client_credentials`: HTTP Basic or the body's `client_id`/`client_secret`),
//! then what the token endpoint parses of them.
//!
//! Input: the first line is the `Content-Type` (empty for none), the second the query
//! string (empty for none), the third the `Authorization` header (empty for none); the
//! rest, line breaks included, is the body.

#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_core::scope::ScopeCatalogue;
use keyward_core::secret::parse_secret;
use keyward_core::typeid::OrganizationId;
use keyward_engine::tokens::looks_like_jwt;
use keyward_fuzz::text;
use keyward_server::oauth::OAuthError;
use keyward_server::oauth::params::{ClientCredentials, Params, client_credentials, read};
use libfuzzer_sys::fuzz_target;

static CATALOGUE: LazyLock<ScopeCatalogue> = LazyLock::new(ScopeCatalogue::default);

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let (content_type, query, authorization, body) = (
        parts.next().unwrap_or_default(),
        parts.next().and_then(text),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::AUTHORIZATION, authorization),
    ] {
        if let Ok(value) = HeaderValue::from_bytes(value)
            && !value.is_empty()
        {
            headers.insert(name, value);
        }
    }

    let Ok(params) = read(&headers, query, body) else {
        return;
    };
    check_params(&headers, query, body, &params);
    let credentials = client_credentials(&headers, &params);
    check_credentials(&headers, &params, &credentials);
    // What the endpoints parse next.
    for name in ["client_id", "client_secret", "token", "scope", "grant_type"] {
        if let Some(value) = params.get(name) {
            let _ = OrganizationId::parse(value);
            let _ = parse_secret(value);
            let _ = looks_like_jwt(value);
            for scope in value.split(' ') {
                let _ = CATALOGUE.parse(scope);
            }
        }
    }
    if let Ok(credentials) = &credentials {
        let _ = OrganizationId::parse(&credentials.client_id);
        let _ = parse_secret(&credentials.client_secret);
    }
    check_basic_round_trip(&params);
});

/// Parameters read are the body's pairs, each name once, never with a client secret in
/// the query string; an empty value reads as absent.
fn check_params(headers: &HeaderMap, query: Option<&str>, body: &[u8], params: &Params) {
    if let Some(query) = query {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        assert!(pairs.iter().all(|(name, _)| name != "client_secret"));
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let pairs: Vec<(String, String)> = match media_type.as_deref() {
        Some("application/x-www-form-urlencoded") => {
            serde_urlencoded::from_bytes(body).expect("an accepted form body is a form")
        }
        Some("application/json") => serde_json::from_slice::<HashMap<String, String>>(body)
            .expect("an accepted JSON body is an object of strings")
            .into_iter()
            .collect(),
        other => panic!("a body of {other:?} was accepted"),
    };
    let mut seen = std::collections::HashSet::new();
    for (name, value) in &pairs {
        assert!(seen.insert(name), "{name:?} repeated");
        assert!(params.has(name));
        assert_eq!(
            params.get(name),
            Some(value.as_str()).filter(|v| !v.is_empty())
        );
    }
}

/// Client authentication is HTTP Basic or the body's pair, never both, and what it yields
/// is what was sent.
fn check_credentials(
    headers: &HeaderMap,
    params: &Params,
    credentials: &Result<ClientCredentials, OAuthError>,
) {
    let basic = headers.get(header::AUTHORIZATION).is_some_and(|value| {
        let value = value.as_bytes().trim_ascii().to_ascii_lowercase();
        value == b"basic" || value.starts_with(b"basic ")
    });
    match credentials {
        Ok(credentials) if basic => {
            assert!(!params.has("client_secret"), "two authentication methods");
            assert!(
                params
                    .get("client_id")
                    .is_none_or(|id| id == credentials.client_id)
            );
        }
        Ok(credentials) => {
            assert_eq!(
                params.get("client_id"),
                Some(credentials.client_id.as_str())
            );
            assert_eq!(
                params.get("client_secret"),
                Some(credentials.client_secret.as_str())
            );
        }
        Err(OAuthError::InvalidRequest(_)) => assert!(basic),
        Err(error) => assert_eq!(*error, OAuthError::InvalidClient),
    }
}

/// Whatever id and secret a client has, `Basic base64(urlencode(id) ":" urlencode(secret))`
/// authenticates it as exactly that id and secret (RFC 6749 §2.3.1).
fn check_basic_round_trip(params: &Params) {
    let (Some(id), Some(secret)) = (params.get("client_id"), params.get("client_secret")) else {
        return;
    };
    let encode = |text: &str| {
        let pair = serde_urlencoded::to_string([("v", text)]).expect("a pair encodes");
        pair["v=".len()..].to_owned()
    };
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&basic).expect("base64 is a header value"),
    );
    let mut form = HeaderMap::new();
    form.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let grant = read(&form, None, b"grant_type=client_credentials").expect("a plain form reads");
    assert_eq!(
        client_credentials(&headers, &grant),
        Ok(ClientCredentials {
            client_id: id.to_owned(),
            client_secret: secret.to_owned(),
        })
    );
}
