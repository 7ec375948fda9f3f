//! Developer → Overview: the whole organization at a glance: its requests by outcome over
//! the last 24 hours, 7 days or 30 days, its busiest credentials in that range, the
//! credentials never used, and those expiring within 30 days.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::typeid::CredentialId;
use keyward_service::credentials::CredentialFilter;
use keyward_service::principal::ReadKeys;

use crate::dashboard::chart::{Range, UsageChart};
use crate::dashboard::credentials::{ChartQuery, LIST_PATH};
use crate::dashboard::page::{Nav, PageError, display_time, render};
use crate::dashboard::session::SignedIn;
use crate::state::AppState;

/// The overview page.
pub const PATH: &str = "/developer/overview";
/// The chart alone, which the range links swap in.
pub const CHART_PATH: &str = "/developer/overview/usage-chart";
/// Rows in each list.
const LIST_ROWS: u32 = 10;
/// How far ahead "expiring soon" looks.
const SOON: time::Duration = time::Duration::days(30);

/// A credential in one of the page's lists.
#[derive(Debug)]
pub struct Row {
    id: String,
    name: String,
    /// The list's figure: requests, a creation time or an expiry.
    figure: String,
    /// Requests refused, for the busiest list.
    refused: i64,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    nav: Nav,
    chart: UsageChart,
    busiest: Vec<Row>,
    unused: Vec<Row>,
    expiring: Vec<Row>,
}

/// The organization's chart over `range`.
async fn chart(
    state: &AppState,
    signed_in: &SignedIn,
    range: Range,
) -> Result<(UsageChart, Vec<keyward_store::UsageCount>), PageError> {
    let permit = signed_in.principal().permit::<ReadKeys>()?;
    let now = state.clock.now();
    let counts = state
        .service
        .credentials()
        .organization_usage(&permit, range.window(now), range.bucket_minutes())
        .await?;
    let chart = UsageChart::new(range, now, &counts, CHART_PATH.to_owned());
    Ok((chart, counts))
}

/// The overview page.
pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<ChartQuery>,
) -> Result<Response, PageError> {
    let range = Range::parse(&query.range);
    let (chart, counts) = chart(&state, &signed_in, range).await?;
    let permit = signed_in.principal().permit::<ReadKeys>()?;
    let credentials = state.service.credentials();

    // The busiest in the range: every request, and the refused ones.
    let mut by_credential: HashMap<&CredentialId, (i64, i64)> = HashMap::new();
    for count in &counts {
        let entry = by_credential.entry(&count.credential_id).or_default();
        entry.0 += count.count;
        if count.outcome != "VALID" {
            entry.1 += count.count;
        }
    }
    let mut ranked: Vec<_> = by_credential.into_iter().collect();
    ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
    let mut busiest = Vec::new();
    for (id, (total, refused)) in ranked.into_iter().take(LIST_ROWS as usize) {
        let name = match credentials.get(&permit, id.as_str()).await {
            Ok(credential) => credential.settings.name,
            Err(_) => "A deleted credential".to_owned(),
        };
        busiest.push(Row {
            id: id.to_string(),
            name,
            figure: total.to_string(),
            refused,
        });
    }

    let now = state.clock.now();
    let listed = |filter: CredentialFilter| {
        let permit = &permit;
        async move { credentials.list(permit, filter).await }
    };
    let unused = listed(CredentialFilter {
        unused: true,
        hide_revoked: true,
        limit: LIST_ROWS,
        ..CredentialFilter::default()
    })
    .await?
    .into_iter()
    .map(|c| Row {
        id: c.id.to_string(),
        figure: display_time(c.created_at),
        name: c.settings.name,
        refused: 0,
    })
    .collect();
    let expiring = listed(CredentialFilter {
        expiring_before: Some(now + SOON),
        hide_revoked: true,
        limit: LIST_ROWS,
        ..CredentialFilter::default()
    })
    .await?
    .into_iter()
    .map(|c| Row {
        id: c.id.to_string(),
        figure: c.settings.expires_at.map(display_time).unwrap_or_default(),
        name: c.settings.name,
        refused: 0,
    })
    .collect();
    let page = OverviewPage {
        nav: signed_in.nav("overview"),
        chart,
        busiest,
        unused,
        expiring,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The organization's chart alone, for the range links.
pub async fn usage_chart(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<ChartQuery>,
) -> Result<Response, PageError> {
    let (chart, _) = chart(&state, &signed_in, Range::parse(&query.range)).await?;
    Ok(render(StatusCode::OK, &chart))
}

/// Where a credential's page is.
pub fn credential_link(id: &str) -> String {
    format!("{LIST_PATH}/{id}")
}
