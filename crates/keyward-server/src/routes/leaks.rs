//! `POST /v1/leaks`: anyone who finds Keyward secrets in public reports them here. The
//! answer is the same whatever was reported, so a report cannot be used to learn whether a
//! key exists; a live key reported is revoked, disabled or only flagged, as the deployment
//! says (`[leaks] action`), and `key.exposed` is audited with the source.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use keyward_gate::Problem;
use keyward_service::leaks::LeakReport;
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
