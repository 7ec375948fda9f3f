//! The credential a request presents (`presented_credential`: `X-Api-Key`,
//! `Authorization: Bearer`, `?api_key=`), and the dashboard's cookies (`cookie`).
//!
//! Input: the first line is the query string (empty for none); every further line is a
//! header, `name: value`.

#![no_main]

use std::borrow::Cow;

use axum::http::{HeaderMap, header};
use keyward_core::secret::parse_secret;
use keyward_engine::tokens::looks_like_jwt;
use keyward_fuzz::{header_map, lines, text};
use keyward_gate::Refusal;
use keyward_gate::transport::{API_KEY_HEADER, Transport, presented_credential};
use keyward_server::dashboard::session::{LOGIN_COOKIE, cookie, session_cookie};
use libfuzzer_sys::fuzz_target;

type Presented<'a> = Result<Option<(Cow<'a, str>, Transport)>, Refusal>;

fuzz_target!(|data: &[u8]| {
    let mut lines = lines(data);
    let query = lines.next().and_then(text);
    let headers = header_map(lines);

    let without_query = presented_credential(&headers, query, false);
    let with_query = presented_credential(&headers, query, true);
    check_headers_only(&headers, &without_query);
    check_query_only_adds(&without_query, &with_query);
    // What the engine does next with a presented string: it must take any of them.
    if let Ok(Some((secret, _))) = &with_query {
        let _ = looks_like_jwt(secret);
        let _ = parse_secret(secret);
    }

    for name in [session_cookie(true), session_cookie(false), LOGIN_COOKIE] {
        check_cookie(&headers, name);
    }
});

/// Without the query, the credential is the one `X-Api-Key` or `Authorization: Bearer`
/// header, trimmed; two such headers, even equal, are refused.
fn check_headers_only(headers: &HeaderMap, presented: &Presented<'_>) {
    let bearer = |value: &[u8]| {
        let value = value.trim_ascii().to_ascii_lowercase();
        value == b"bearer" || value.starts_with(b"bearer ")
    };
    let count = headers.get_all(API_KEY_HEADER).iter().count()
        + headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter(|value| bearer(value.as_bytes()))
            .count();
    match presented {
        Ok(None) => assert_eq!(count, 0),
        Ok(Some((secret, transport))) => {
            assert_eq!(count, 1);
            assert_ne!(*transport, Transport::Query);
            assert_eq!(secret.trim(), secret, "a header's credential is trimmed");
        }
        Err(refusal) => {
            assert!(matches!(refusal, Refusal::MultipleCredentials));
            assert!(count >= 2);
        }
    }
}

/// Allowing `?api_key=` can only add a credential: the headers' one stays, or a second one
/// makes the request refused.
fn check_query_only_adds(without: &Presented<'_>, with: &Presented<'_>) {
    let refused =
        |presented: &Presented<'_>| matches!(presented, Err(Refusal::MultipleCredentials));
    match (without, with) {
        (Err(_), with) => assert!(refused(with)),
        (Ok(Some(found)), with) => {
            assert!(refused(with) || matches!(with, Ok(Some(again)) if again == found));
        }
        (Ok(None), with) => {
            assert!(refused(with) || matches!(with, Ok(None) | Ok(Some((_, Transport::Query)))))
        }
    }
}

/// A cookie found is the value of a `name=value` pair of some `Cookie` header.
fn check_cookie(headers: &HeaderMap, name: &str) {
    let Some(value) = cookie(headers, name) else {
        return;
    };
    let pair = format!("{name}={value}");
    assert!(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|header| header.to_str().ok())
            .any(|header| header.contains(&pair)),
        "{pair:?}"
    );
}
