//! Request extractors whose rejections are problem+json [`ApiError`]s naming what is wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; wrong media type → 415, too large → 413, unreadable → 400 naming the field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// The bytes of a JSON body, not yet parsed, for a handler that reads it in place with
/// [`parse_json`] (borrowing its strings instead of copying them); wrong media type → 415,
/// too large → 413.
pub struct JsonBody(pub Bytes);

/// Only the length: a body may carry a secret.
impl std::fmt::Debug for JsonBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonBody({} bytes)", self.0.len())
    }
}

/// A JSON body that may be absent: an empty body, or `null`, reads as `T::default()`.
#[derive(Debug)]
pub struct OptionalApiJson<T>(pub T);

/// Query parameters; unreadable → 400 `invalid_query` naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

/// The body, and whether its media type is JSON.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<(bool, Bytes), ApiError> {
    let json = is_json(req.headers());
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request("unreadable_body", "the request body could not be read")
        }
    })?;
    Ok((json, bytes))
}

/// Whether `Content-Type` is `application/json` or `application/…+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().as_bytes();
    let starts = |prefix: &[u8]| {
        essence
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    };
    let ends = |suffix: &[u8]| {
        essence
            .len()
            .checked_sub(suffix.len())
            .is_some_and(|at| essence[at..].eq_ignore_ascii_case(suffix))
    };
    essence.eq_ignore_ascii_case(b"application/json") || (starts(b"application/") && ends(b"+json"))
}

/// Parses a JSON object, naming the path of the first value that does not fit; the value
/// may borrow strings from `bytes`. The path is tracked only to explain a failure: a body is
/// read once without it, and only one that fails is read again to name where.
///
/// Every body the API reads is an object. serde would read a struct from an array too, its
/// fields by position (`[]` as a body with every field left out), which no client means.
pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    if let Ok(value) = T::deserialize(&mut deserializer)
        && deserializer.end().is_ok()
    {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = without_string_value(&error.into_inner().to_string());
        let message = if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        };
        ApiError::bad_request("invalid_json", message)
    })?;
    deserializer.end().map_err(|_| {
        ApiError::bad_request("invalid_json", "unexpected data after the JSON value")
    })?;
    Ok(value)
}

/// serde's message with the string it met left out: `invalid type: string "…", expected a
/// sequence` names what was sent, which may be a secret put in the wrong field (a key sent
/// where a list of keys was expected), and an answer does not repeat secrets.
pub(crate) fn without_string_value(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        // The expected part comes after the string, so the last `, expected ` is serde's
        // own even when the string holds those words.
        if let Some(rest) = message.strip_prefix(lead)
            && rest.starts_with("string \"")
            && let Some(expected) = rest.rfind(", expected ")
        {
            return format!("{lead}a string{}", &rest[expected..]);
        }
    }
    message.to_owned()
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBody(bytes) = JsonBody::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (json, bytes) = body_bytes(req, state).await?;
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(JsonBody(bytes))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (json, bytes) = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalApiJson(T::default()));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        if bytes.trim_ascii() == b"null" {
            return Ok(OptionalApiJson(T::default()));
        }
        parse_json(&bytes).map(OptionalApiJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}
