//! `GET /v1/keys/{id}/usage`: a credential's requests per minute, hour or day, by outcome,
//! from the counts the verification path writes in batches.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use keyward_core::clock::{rfc3339, within_rfc3339};
use keyward_gate::Problem;
use keyward_service::principal::{Permit, ReadKeys};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::openapi::values::{Granularity, KeyId, Time};
use crate::state::AppState;

/// Most buckets one answer holds.
pub const MAX_BUCKETS: i64 = 1_500;

/// The window and bucket size of a usage report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start (RFC 3339, included), before `to`; default: 24 hours before `to`.
    #[param(inline, value_type = Option<Time>)]
    pub from: Option<String>,
    /// End (RFC 3339, excluded); default: the end of the current minute.
    #[param(inline, value_type = Option<Time>)]
    pub to: Option<String>,
    /// `minute`, `hour` (default) or `day`; the window holds at most 1,500 of them.
    #[param(inline, value_type = Option<Granularity>)]
    pub granularity: Option<String>,
}

/// A credential's usage over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// The credential.
    pub key_id: String,
    /// `minute`, `hour` or `day`.
    pub granularity: &'static str,
    /// Start of the window (RFC 3339), aligned down to the granularity.
    pub from: String,
    /// End of the window (RFC 3339, excluded), aligned up to a minute.
    pub to: String,
    /// The buckets that saw requests, oldest first (empty ones are left out).
    pub buckets: Vec<UsageBucket>,
    /// The last accepted use (RFC 3339), written within a few seconds of it.
    pub last_used_at: Option<String>,
    /// Where it came from.
    pub last_used_ip: Option<String>,
}

/// Requests in one bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBucket {
    /// Start of the bucket (RFC 3339).
    pub start: String,
    /// Every request counted in it.
    pub total: i64,
    /// Requests by outcome code (`VALID`, `RATE_LIMITED`, `IP_DENIED`, …).
    pub outcomes: BTreeMap<String, i64>,
    /// How many presented the key in the `api_key` query parameter.
    pub via_query: i64,
}

/// A time of the query: RFC 3339, and within the years every answer can write.
pub(crate) fn parse_time(
    field: &'static str,
    text: Option<&str>,
) -> Result<Option<OffsetDateTime>, ApiError> {
    text.map(|t| {
        OffsetDateTime::parse(t, &Rfc3339)
            .ok()
            .filter(|t| within_rfc3339(*t))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{field}: must be an RFC 3339 time from year 0000 to 9999 in UTC"),
                )
            })
    })
    .transpose()
}

/// A credential's requests per bucket and outcome. Needs `keys:read`. Counts are written
/// in batches every flush interval (1 s by default), so the newest second may be missing.
#[utoipa::path(get, path = "/v1/keys/{id}/usage", tag = "keys", operation_id = "key_usage",
    params(("id" = inline(KeyId), Path), UsageQuery),
    security(("api_key" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, body = UsageReport),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let permit = caller.principal().permit::<ReadKeys>()?;
    Ok(Json(report(&state, &permit, &id, query).await?))
}

/// The usage report of credential `id` over the window `query` asks for: what the route
/// answers, and what the MCP tool does.
pub async fn report(
    state: &AppState,
    permit: &Permit<'_, ReadKeys>,
    id: &str,
    query: UsageQuery,
) -> Result<UsageReport, ApiError> {
    let credentials = state.service.credentials();
    let credential = credentials.get(permit, id).await?;
    let (granularity, bucket_minutes) = match query.granularity.as_deref() {
        None | Some("hour") => ("hour", 60),
        Some("minute") => ("minute", 1),
        Some("day") => ("day", 1_440),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "granularity: must be minute, hour or day",
            ));
        }
    };
    // An explicit `to` ends the window at the minute it falls in (rounded up); by default
    // the window includes the current minute.
    let (to, to_minute) = match parse_time("to", query.to.as_deref())? {
        Some(to) => (to, (to.unix_timestamp() + 59).div_euclid(60)),
        None => {
            let now = state.clock.now();
            (now, now.unix_timestamp().div_euclid(60) + 1)
        }
    };
    let from = parse_time("from", query.from.as_deref())?.unwrap_or(to - Duration::days(1));
    let from_minute = from
        .unix_timestamp()
        .div_euclid(60)
        .div_euclid(bucket_minutes)
        * bucket_minutes;
    if from_minute >= to_minute {
        return Err(ApiError::bad_request(
            "invalid_query",
            "from: must be before to",
        ));
    }
    if (to_minute - from_minute + bucket_minutes - 1) / bucket_minutes > MAX_BUCKETS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("at most {MAX_BUCKETS} buckets: narrow the window or coarsen the granularity"),
        ));
    }
    let counts = credentials
        .usage(
            permit,
            &credential,
            (from_minute, to_minute),
            bucket_minutes,
        )
        .await?;
    let mut buckets: Vec<UsageBucket> = Vec::new();
    for count in counts {
        let start = rfc3339(minute_start(count.minute));
        let bucket = match buckets.last_mut() {
            Some(last) if last.start == start => last,
            _ => {
                buckets.push(UsageBucket {
                    start,
                    total: 0,
                    outcomes: BTreeMap::new(),
                    via_query: 0,
                });
                buckets.last_mut().ok_or_else(ApiError::internal)?
            }
        };
        bucket.total += count.count;
        bucket.via_query += count.via_query;
        *bucket.outcomes.entry(count.outcome).or_default() += count.count;
    }
    Ok(UsageReport {
        key_id: credential.id.to_string(),
        granularity,
        from: rfc3339(minute_start(from_minute)),
        to: rfc3339(minute_start(to_minute)),
        buckets,
        last_used_at: credential.last_used_at.map(rfc3339),
        last_used_ip: credential.last_used_ip.map(|ip| ip.to_string()),
    })
}

fn minute_start(minute: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(minute.saturating_mul(60))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
