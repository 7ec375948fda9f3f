//! `POST /v1/leaks`: anyone who finds Keyward secrets in public reports them here
//! (`POST /v1/leaks/github`: GitHub's secret scanning, signed). The
//! answer is the same whatever was reported, so a report cannot be used to learn whether a
//! key exists; a live key reported is revoked, disabled or only flagged, as the deployment
//! says (`[leaks] action`), and `key.exposed` is audited with the source.

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_gate::Problem;
use keyward_service::leaks::{LeakReport, SignedReport};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{JsonBody, parse_json};
use crate::openapi::values::LeakSource;
use crate::state::AppState;

/// Secrets found in public.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakReportRequest {
    /// The secrets as found (API keys or client secrets), at most 100.
    #[schema(max_items = 100)]
    pub keys: Vec<String>,
    /// Where they were found: a URL, say.
    #[schema(value_type = LeakSource)]
    pub source: String,
}

/// The same answer to every report.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeakReportAnswer {
    /// How many keys the report named.
    pub received: usize,
}

/// Report secrets found in public; no credential needed. The answer never says whether a
/// key was found. Each address may send a few reports a minute (429 past that).
#[utoipa::path(post, path = "/v1/leaks", tag = "leaks", operation_id = "report_leak",
    request_body = LeakReportRequest, security(()),
    responses(
        (status = 202, body = LeakReportAnswer),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn report(
    State(state): State<AppState>,
    parts: Parts,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let request: LeakReportRequest = parse_json(&body)?;
    let report = LeakReport {
        secrets: &request.keys,
        source: &request.source,
        reporter_ip: state.gate.client_ip(&parts),
    };
    state.service.credentials().report_exposed(&report).await?;
    let answer = LeakReportAnswer {
        received: request.keys.len(),
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Reports from GitHub's secret scanning partner program: a JSON array of
/// `{token, type, url, source}`, signed with the ECDSA P-256 key named in
/// `Github-Public-Key-Identifier` (signature, base64, in `Github-Public-Key-Signature`), which
/// must be one of the keys this deployment trusts (`[leaks] github_keys_file`); else 403
/// `signature_invalid`. The answer labels each token, by its SHA-256, `true_positive`
/// (live here, and now handled as `[leaks] action` says) or `false_positive`.
#[utoipa::path(post, path = "/v1/leaks/github", tag = "leaks", operation_id = "report_github_leak",
    request_body(content = Vec<GithubToken>, content_type = "application/json"),
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "the key that signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "base64 of the ECDSA P-256 signature of the body"),
    ),
    security(()),
    responses(
        (status = 200, body = Vec<TokenLabelSchema>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn report_github(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    };
    let report = SignedReport {
        key_identifier: header("github-public-key-identifier"),
        signature: header("github-public-key-signature"),
        body: &body,
    };
    let labels = state.service.credentials().report_signed(&report).await?;
    Ok(Json(labels).into_response())
}

/// A token GitHub found.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GithubToken {
    /// The token, as found.
    pub token: String,
    /// The token type the partner registered.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it was found.
    pub url: String,
    /// What kind of place that is (`content`, `commit`, …).
    pub source: String,
}

/// What GitHub is told of a token it reported.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TokenLabel)]
pub struct TokenLabelSchema {
    /// SHA-256 of the token, in hex.
    pub token_hash: String,
    /// The type GitHub gave it.
    pub token_type: String,
    /// `true_positive` or `false_positive`.
    pub label: String,
}
