//! Reading the parameters of an OAuth request (token, introspection, revocation) and the
//! client authentication it carries (RFC 6749 §2.3.1, §3.2).

use std::collections::HashMap;
use std::fmt;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::oauth::OAuthError;

/// The parameters of a request, each present once.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// The value of `name`; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Whether `name` was sent at all, even empty.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// Reads the body's parameters: `application/x-www-form-urlencoded` or `application/json`
/// (an object of strings). A repeated parameter, another media type, or a client secret in
/// the query string is `invalid_request`.
pub fn read(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Result<Params, OAuthError> {
    if let Some(query) = query {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default();
        if pairs.iter().any(|(name, _)| name == "client_secret") {
            return Err(OAuthError::InvalidRequest(
                "client credentials must not be sent in the query string",
            ));
        }
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let pairs: Vec<(String, String)> = match media_type.as_deref() {
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(body)
            .map_err(|_| OAuthError::InvalidRequest("the form body cannot be read"))?,
        Some("application/json") => {
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let pairs = deserializer.deserialize_map(PairsVisitor).map_err(|_| {
                OAuthError::InvalidRequest("the body must be a JSON object of strings")
            })?;
            deserializer.end().map_err(|_| {
                OAuthError::InvalidRequest("the body must be a JSON object of strings")
            })?;
            pairs
        }
        _ => {
            return Err(OAuthError::InvalidRequest(
                "send application/x-www-form-urlencoded or application/json",
            ));
        }
    };
    let mut params = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if params.insert(name, value).is_some() {
            return Err(OAuthError::InvalidRequest("a parameter is repeated"));
        }
    }
    Ok(Params(params))
}

/// A JSON object read as name–value pairs, so a repeated name is seen (a map would keep
/// only the last).
struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry::<String, String>()? {
            pairs.push(pair);
        }
        Ok(pairs)
    }
}

/// The client's credentials, as presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The client id (an organization id, unchecked).
    pub client_id: String,
    /// The client secret, as presented.
    pub client_secret: String,
}

/// The client authentication of a request: HTTP Basic (`client_secret_basic`) or the
/// body's `client_id` and `client_secret` (`client_secret_post`), never both. A `Basic`
/// header that cannot be read is a failed authentication, not an absent one.
pub fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<ClientCredentials, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes().trim_ascii())
        .filter(|bytes| {
            bytes.len() >= 5
                && bytes[..5].eq_ignore_ascii_case(b"basic")
                && bytes.get(5).is_none_or(|b| *b == b' ')
        });
    match basic {
        Some(bytes) => {
            if params.has("client_secret") {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method, not two",
                ));
            }
            let (client_id, client_secret) =
                basic_credentials(&bytes[5..]).ok_or(OAuthError::InvalidClient)?;
            if params.get("client_id").is_some_and(|id| id != client_id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id differs from the authenticated client",
                ));
            }
            Ok(ClientCredentials {
                client_id,
                client_secret,
            })
        }
        None => match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) => Ok(ClientCredentials {
                client_id: id.to_owned(),
                client_secret: secret.to_owned(),
            }),
            _ => Err(OAuthError::InvalidClient),
        },
    }
}

/// `base64(urlencode(id) ":" urlencode(secret))`, as RFC 6749 §2.3.1 has it.
fn basic_credentials(encoded: &[u8]) -> Option<(String, String)> {
    let decoded = STANDARD.decode(encoded.trim_ascii()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |part: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={part}"))
            .ok()
            .and_then(|mut pairs| pairs.pop())
            .map(|(_, value)| value)
    };
    Some((unescape(id)?, unescape(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form(body: &str) -> Result<Params, OAuthError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        read(&headers, None, body.as_bytes())
    }

    #[test]
    fn a_repeated_parameter_is_refused_in_both_media_types() {
        assert!(form("grant_type=a&grant_type=b").is_err());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(read(&headers, None, br#"{"a":"1","a":"2"}"#).is_err());
        assert!(read(&headers, None, br#"{"a":1}"#).is_err(), "strings only");
        let params = read(&headers, None, br#"{"a":"1","b":""}"#).unwrap_or_default();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None, "empty is absent");
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let encoded = STANDARD.encode("org%3Aid:se+cr%2Bet");
        assert_eq!(
            basic_credentials(encoded.as_bytes()),
            Some(("org:id".to_owned(), "se cr+et".to_owned()))
        );
        assert_eq!(basic_credentials(b"!!"), None);
    }
}
