//! The usage chart of a credential: requests per hour over the last 24 hours, stacked by
//! outcome, drawn here as SVG (no script, no library). It reads the same per-minute counts
//! as `GET /v1/keys/{id}/usage`.

use askama::Template;
use keyward_core::credential::Credential;
use keyward_service::principal::ReadKeys;

use crate::dashboard::page::PageError;
use crate::dashboard::session::SignedIn;
use crate::state::AppState;

/// Hours shown.
const HOURS: usize = 24;
/// Drawing size, in SVG units.
const WIDTH: u32 = 720;
const HEIGHT: u32 = 180;
const BAR_GAP: u32 = 4;

/// One outcome's part of a bar.
#[derive(Debug)]
pub struct Segment {
    /// Top edge.
    pub y: u32,
    /// Height.
    pub height: u32,
    /// CSS class choosing the colour, e.g. `seg-valid`.
    pub class: String,
}

/// One hour.
#[derive(Debug)]
pub struct Bar {
    /// Left edge.
    pub x: u32,
    /// Width.
    pub width: u32,
    /// `07:00`.
    pub label: String,
    /// Whether to print the label under the axis (every sixth hour).
    pub labelled: bool,
    /// `07:00–08:00 UTC: 12 requests (VALID 10, RATE_LIMITED 2)`.
    pub title: String,
    /// Stacked parts, bottom first.
    pub segments: Vec<Segment>,
}

/// The chart.
#[derive(Debug, Template)]
#[template(path = "usage_chart.html")]
pub struct UsageChart {
    /// The hours, oldest first.
    pub bars: Vec<Bar>,
    /// Outcomes seen, with their colour class and total.
    pub legend: Vec<(String, String, i64)>,
    /// Requests in the 24 hours.
    pub total: i64,
    /// The tallest bar's count (the scale).
    pub peak: i64,
    /// Drawing width.
    pub width: u32,
    /// Drawing height (bars only; labels go below).
    pub height: u32,
}

fn class_of(outcome: &str) -> String {
    format!("seg-{}", outcome.to_ascii_lowercase().replace('_', "-"))
}

impl UsageChart {
    /// The last 24 whole hours and the current one of `credential`, as `signed_in` sees it.
    pub async fn last_day(
        state: &AppState,
        signed_in: &SignedIn,
        credential: &Credential,
    ) -> Result<Self, PageError> {
        let now_minute = state.clock.now().unix_timestamp().div_euclid(60);
        let current_hour = now_minute.div_euclid(60) * 60;
        let from = current_hour - 60 * (HOURS as i64 - 1);
        let permit = signed_in.principal().permit::<ReadKeys>()?;
        let counts = state
            .service
            .credentials()
            .usage(&permit, credential, (from, now_minute + 1), 60)
            .await?;
        let mut hours: Vec<Vec<(String, i64)>> = vec![Vec::new(); HOURS];
        let mut legend: Vec<(String, String, i64)> = Vec::new();
        for count in counts {
            let index = usize::try_from((count.minute - from) / 60).unwrap_or(usize::MAX);
            let Some(hour) = hours.get_mut(index) else {
                continue;
            };
            hour.push((count.outcome.clone(), count.count));
            match legend.iter_mut().find(|(o, _, _)| *o == count.outcome) {
                Some(entry) => entry.2 += count.count,
                None => legend.push((count.outcome.clone(), class_of(&count.outcome), count.count)),
            }
        }
        legend.sort_by_key(|(_, _, count)| std::cmp::Reverse(*count));
        let peak = hours
            .iter()
            .map(|h| h.iter().map(|(_, n)| n).sum::<i64>())
            .max()
            .unwrap_or(0);
        let slot = WIDTH / HOURS as u32;
        let bars = hours
            .into_iter()
            .enumerate()
            .map(|(i, mut parts)| {
                // Bottom first in the legend's order, so colours stack the same in every bar.
                parts.sort_by_key(|(o, _)| legend.iter().position(|(l, _, _)| l == o));
                let start = time::OffsetDateTime::from_unix_timestamp((from + 60 * i as i64) * 60)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                let label = format!("{:02}:00", start.hour());
                let total: i64 = parts.iter().map(|(_, n)| n).sum();
                let detail = parts
                    .iter()
                    .map(|(o, n)| format!("{o} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut top = HEIGHT;
                let segments = parts
                    .iter()
                    .filter_map(|(outcome, n)| {
                        let height = scaled(*n, peak);
                        (height > 0).then(|| {
                            top -= height.min(top);
                            Segment {
                                y: top,
                                height,
                                class: class_of(outcome),
                            }
                        })
                    })
                    .collect();
                Bar {
                    x: slot * i as u32 + BAR_GAP / 2,
                    width: slot - BAR_GAP,
                    title: if total == 0 {
                        format!("{label} UTC: no requests")
                    } else {
                        format!("{label} UTC: {total} requests ({detail})")
                    },
                    labelled: i % 6 == 0,
                    label,
                    segments,
                }
            })
            .collect();
        Ok(Self {
            total: legend.iter().map(|(_, _, n)| n).sum(),
            bars,
            legend,
            peak,
            width: WIDTH,
            height: HEIGHT,
        })
    }
}

/// The height of `count` in a chart whose tallest bar is `peak`; any request shows.
fn scaled(count: i64, peak: i64) -> u32 {
    if count <= 0 || peak <= 0 {
        return 0;
    }
    let height = (count as f64 / peak as f64 * f64::from(HEIGHT)).round() as u32;
    height.clamp(1, HEIGHT)
}
