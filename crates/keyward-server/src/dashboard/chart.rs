//! Usage charts: requests per period over the last 24 hours, 7 days or 30 days, stacked by
//! outcome, drawn here as SVG (no script, no library), with a scale on the left. A period
//! without requests is drawn as nothing. They read the same counts as
//! `GET /v1/keys/{id}/usage`: one credential's, or the whole organization's.

use askama::Template;
use keyward_core::verify::Outcome;
use keyward_store::UsageCount;
use serde::Deserialize;
use time::OffsetDateTime;

/// Drawing size, in SVG units: the plot, and the margins for the scale and the labels.
const WIDTH: u32 = 720;
const HEIGHT: u32 = 180;
const LEFT: u32 = 44;
const BOTTOM: u32 = 24;
const BAR_GAP: u32 = 3;
/// Lines of the scale above zero.
const TICKS: i64 = 4;

/// The span a chart covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Range {
    /// The last 24 hours, by hour.
    #[default]
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days, by 6 hours.
    #[serde(rename = "7d")]
    Week,
    /// The last 30 days, by day.
    #[serde(rename = "30d")]
    Month,
}

impl Range {
    /// Every range, shortest first.
    pub const ALL: [Range; 3] = [Range::Day, Range::Week, Range::Month];

    /// `24h`, `7d` or `30d`: the query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    /// The range a query names; anything else is the last 24 hours.
    pub fn parse(text: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .unwrap_or_default()
    }

    /// How a person calls it.
    pub fn in_words(self) -> &'static str {
        match self {
            Range::Day => "last 24 hours",
            Range::Week => "last 7 days",
            Range::Month => "last 30 days",
        }
    }

    /// Minutes in one bar.
    pub fn bucket_minutes(self) -> i64 {
        match self {
            Range::Day => 60,
            Range::Week => 360,
            Range::Month => 1_440,
        }
    }

    /// Bars drawn.
    fn buckets(self) -> i64 {
        match self {
            Range::Day => 24,
            Range::Week => 28,
            Range::Month => 30,
        }
    }

    /// The window in minutes since the epoch, `[from, to)`, whose last bar holds `now`.
    pub fn window(self, now: OffsetDateTime) -> (i64, i64) {
        let minute = now.unix_timestamp().div_euclid(60);
        let size = self.bucket_minutes();
        let last = minute.div_euclid(size) * size;
        (last - size * (self.buckets() - 1), minute + 1)
    }

    /// A bar's label, for the bar starting at `start`.
    fn label(self, start: OffsetDateTime) -> String {
        match self {
            Range::Day => format!("{:02}:00", start.hour()),
            Range::Week | Range::Month => format!(
                "{} {}{}",
                &format!("{:?}", start.month())[..3],
                start.day(),
                if self == Range::Week {
                    format!(" {:02}h", start.hour())
                } else {
                    String::new()
                }
            ),
        }
    }

    /// Whether bar `i` prints its label (a few per chart, so they do not crowd).
    fn labelled(self, i: usize) -> bool {
        match self {
            Range::Day => i.is_multiple_of(6),
            Range::Week => i.is_multiple_of(4),
            Range::Month => i.is_multiple_of(5),
        }
    }
}

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

/// One period.
#[derive(Debug)]
pub struct Bar {
    /// Left edge.
    pub x: u32,
    /// Width.
    pub width: u32,
    /// `07:00`, `Jun 3`.
    pub label: String,
    /// Whether to print the label under the axis.
    pub labelled: bool,
    /// `07:00 UTC: 12 requests (Accepted 10, Rate limited 2)`.
    pub title: String,
    /// Stacked parts, bottom first; none for a period without requests.
    pub segments: Vec<Segment>,
}

/// One line of the scale.
#[derive(Debug)]
pub struct Tick {
    /// Its height in the drawing.
    pub y: u32,
    /// The count it marks.
    pub value: i64,
}

/// An outcome in the legend.
#[derive(Debug)]
pub struct LegendEntry {
    /// In words, e.g. `Rate limited`.
    pub label: &'static str,
    /// The stable code, e.g. `RATE_LIMITED`, shown on hover.
    pub code: String,
    /// CSS class choosing the colour.
    pub class: String,
    /// Requests with it in the whole range.
    pub count: i64,
}

/// The chart.
#[derive(Debug, Template)]
#[template(path = "usage_chart.html")]
pub struct UsageChart {
    /// The range drawn.
    pub range: Range,
    /// Where the range links go (the page or fragment that draws the chart).
    pub base: String,
    /// The periods, oldest first.
    pub bars: Vec<Bar>,
    /// The scale, zero first.
    pub ticks: Vec<Tick>,
    /// Outcomes seen, most frequent first.
    pub legend: Vec<LegendEntry>,
    /// Requests in the range.
    pub total: i64,
    /// The busiest period's count.
    pub peak: i64,
    /// Where the plot starts (after the scale) and its size.
    pub left: u32,
    /// Drawing width.
    pub width: u32,
    /// Plot height (labels go below).
    pub height: u32,
}

fn class_of(outcome: &str) -> String {
    format!("seg-{}", outcome.to_ascii_lowercase().replace('_', "-"))
}

fn words(outcome: &str) -> &'static str {
    Outcome::from_code(outcome).map_or("Other", Outcome::in_words)
}

/// The smallest "round" number (1, 2 or 5 times a power of ten, times the ticks) at or
/// above `peak`: the top of the scale.
fn scale_top(peak: i64) -> i64 {
    let mut step = 1;
    loop {
        for factor in [1, 2, 5] {
            if step * factor * TICKS >= peak {
                return step * factor * TICKS;
            }
        }
        step *= 10;
    }
}

impl UsageChart {
    /// The chart of `counts` (buckets of `range`) over `range` ending now.
    pub fn new(range: Range, now: OffsetDateTime, counts: &[UsageCount], base: String) -> Self {
        let (from, _) = range.window(now);
        let size = range.bucket_minutes();
        let n = range.buckets() as usize;
        let mut periods: Vec<Vec<(String, i64)>> = vec![Vec::new(); n];
        let mut legend: Vec<LegendEntry> = Vec::new();
        for count in counts {
            let index = usize::try_from((count.minute - from).div_euclid(size)).unwrap_or(n);
            let Some(period) = periods.get_mut(index) else {
                continue;
            };
            match period.iter_mut().find(|(o, _)| *o == count.outcome) {
                Some(part) => part.1 += count.count,
                None => period.push((count.outcome.clone(), count.count)),
            }
            match legend.iter_mut().find(|e| e.code == count.outcome) {
                Some(entry) => entry.count += count.count,
                None => legend.push(LegendEntry {
                    label: words(&count.outcome),
                    code: count.outcome.clone(),
                    class: class_of(&count.outcome),
                    count: count.count,
                }),
            }
        }
        legend.sort_by_key(|e| std::cmp::Reverse(e.count));
        let peak = periods
            .iter()
            .map(|p| p.iter().map(|(_, n)| n).sum::<i64>())
            .max()
            .unwrap_or(0);
        let top = scale_top(peak.max(1));
        let plot = WIDTH - LEFT;
        let slot = plot / n as u32;
        let bars = periods
            .into_iter()
            .enumerate()
            .map(|(i, mut parts)| {
                // Bottom first in the legend's order, so colours stack the same in every bar.
                parts.sort_by_key(|(o, _)| legend.iter().position(|e| e.code == *o));
                let start = OffsetDateTime::from_unix_timestamp((from + size * i as i64) * 60)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let label = range.label(start);
                let total: i64 = parts.iter().map(|(_, n)| n).sum();
                let detail = parts
                    .iter()
                    .map(|(o, n)| format!("{} {n}", words(o)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut y = HEIGHT;
                let segments = parts
                    .iter()
                    .filter_map(|(outcome, n)| {
                        let height = scaled(*n, top);
                        (height > 0).then(|| {
                            y -= height.min(y);
                            Segment {
                                y,
                                height,
                                class: class_of(outcome),
                            }
                        })
                    })
                    .collect();
                Bar {
                    x: LEFT + slot * i as u32 + BAR_GAP / 2,
                    width: slot.saturating_sub(BAR_GAP).max(1),
                    title: if total == 0 {
                        format!("{label} UTC: no requests")
                    } else {
                        format!("{label} UTC: {total} requests ({detail})")
                    },
                    labelled: range.labelled(i),
                    label,
                    segments,
                }
            })
            .collect();
        let ticks = (0..=TICKS)
            .map(|k| {
                let value = top / TICKS * k;
                Tick {
                    y: HEIGHT - scaled(value, top),
                    value,
                }
            })
            .collect();
        Self {
            range,
            base,
            total: legend.iter().map(|e| e.count).sum(),
            bars,
            ticks,
            legend,
            peak,
            left: LEFT,
            width: WIDTH,
            height: HEIGHT,
        }
    }

    /// The drawing's full height, labels included.
    pub fn full_height(&self) -> u32 {
        self.height + BOTTOM
    }

    /// Every range with its link, for the range switch.
    pub fn ranges(&self) -> Vec<(Range, String)> {
        Range::ALL
            .into_iter()
            .map(|r| {
                let separator = if self.base.contains('?') { '&' } else { '?' };
                (r, format!("{}{separator}range={}", self.base, r.as_str()))
            })
            .collect()
    }
}

/// The height of `count` on a scale topped at `top`; any request shows.
fn scaled(count: i64, top: i64) -> u32 {
    if count <= 0 || top <= 0 {
        return 0;
    }
    let height = (count as f64 / top as f64 * f64::from(HEIGHT)).round() as u32;
    height.clamp(1, HEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_scale_tops_at_a_round_number() {
        assert_eq!(scale_top(1), 4);
        assert_eq!(scale_top(5), 8);
        assert_eq!(scale_top(19), 20);
        assert_eq!(scale_top(21), 40);
        assert_eq!(scale_top(1_234), 2_000);
    }

    #[test]
    fn windows_end_with_the_period_holding_now() {
        let now = datetime!(2026-06-03 13:45 UTC);
        let minute = now.unix_timestamp() / 60;
        let (from, to) = Range::Day.window(now);
        assert_eq!(to, minute + 1);
        assert_eq!(from, minute - 45 - 23 * 60);
        let (from, _) = Range::Month.window(now);
        let first = OffsetDateTime::from_unix_timestamp(from * 60).unwrap();
        assert_eq!(first, datetime!(2026-05-05 0:00 UTC));
        let (from, _) = Range::Week.window(now);
        let first = OffsetDateTime::from_unix_timestamp(from * 60).unwrap();
        assert_eq!(first, datetime!(2026-05-27 18:00 UTC));
    }

    #[test]
    fn empty_periods_draw_nothing_and_outcomes_are_words() {
        let now = datetime!(2026-06-03 13:45 UTC);
        let (from, _) = Range::Day.window(now);
        let count = |minute, outcome: &str, count| UsageCount {
            credential_id: keyward_core::typeid::CredentialId::generate(),
            minute,
            outcome: outcome.to_owned(),
            count,
            via_query: 0,
        };
        let chart = UsageChart::new(
            Range::Day,
            now,
            &[count(from, "VALID", 3), count(from, "RATE_LIMITED", 1)],
            "/x".to_owned(),
        );
        assert_eq!(chart.bars.len(), 24);
        assert_eq!(chart.bars[0].segments.len(), 2);
        assert!(chart.bars[1..].iter().all(|b| b.segments.is_empty()));
        assert!(chart.bars[0].title.contains("Accepted 3, Rate limited 1"));
        assert_eq!(chart.legend[0].label, "Accepted");
        assert_eq!(chart.ticks.last().map(|t| t.value), Some(4));
        assert_eq!(chart.ranges()[2].1, "/x?range=30d");
    }
}
