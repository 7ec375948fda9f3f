//! Where a request presents its credential: `X-Api-Key`, `Authorization: Bearer`, or — only
//! where the deployment allows it — the `api_key` query parameter.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderName, header};

use crate::refusal::Refusal;

/// The header carrying an API key.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");
/// The query parameter carrying an API key, when the deployment allows it.
pub const API_KEY_QUERY: &str = "api_key";

/// How a credential reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `X-Api-Key: …`
    Header,
    /// `Authorization: Bearer …`
    Bearer,
    /// `?api_key=…` (only when enabled).
    Query,
}

/// Finds the one credential a request presents, borrowed from the request where it can be.
///
/// `X-Api-Key` and `Authorization: Bearer` (scheme case-insensitive) always count, and
/// `?api_key=` in `query` when `allow_query` is set. An `Authorization` header of another
/// scheme is the upstream API's business and is ignored. Two credentials, even equal ones,
/// are refused ([`Refusal::MultipleCredentials`]).
pub fn presented_credential<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    allow_query: bool,
) -> Result<Option<(Cow<'a, str>, Transport)>, Refusal> {
    let mut found = None;
    let mut present = |secret: Cow<'a, str>, transport| {
        if found.replace((secret, transport)).is_some() {
            return Err(Refusal::MultipleCredentials);
        }
        Ok(())
    };
    for value in headers.get_all(API_KEY_HEADER) {
        present(text(value.as_bytes()), Transport::Header)?;
    }
    for value in headers.get_all(header::AUTHORIZATION) {
        let bytes = value.as_bytes().trim_ascii();
        let is_bearer = bytes.len() >= 6
            && bytes[..6].eq_ignore_ascii_case(b"bearer")
            && bytes.get(6).is_none_or(|b| *b == b' ');
        if is_bearer {
            present(text(&bytes[6..]), Transport::Bearer)?;
        }
    }
    if allow_query && let Some(query) = query {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default();
        for (name, value) in pairs {
            if name == API_KEY_QUERY {
                present(Cow::Owned(value), Transport::Query)?;
            }
        }
    }
    Ok(found)
}

/// A header's credential text, trimmed. A value that is not UTF-8 is still a presented
/// credential: it is read lossily and fails its format check (401 MALFORMED), never a 400.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text.trim()),
        Err(_) => Cow::Owned(String::from_utf8_lossy(bytes).trim().to_owned()),
    }
}
