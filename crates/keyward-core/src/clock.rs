//! Time, injected: production reads the system clock, tests move a manual one.
//!
//! Times are kept to the millisecond, the precision the store keeps, so a time returned
//! when an object is created is the same one read back later.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in whole milliseconds since the Unix epoch: what the verification
    /// path counts in.
    fn now_millis(&self) -> i64;

    /// The current time, truncated to the millisecond.
    fn now(&self) -> OffsetDateTime {
        from_millis(self.now_millis())
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        // Whole milliseconds straight from the system time: no 128-bit arithmetic, which
        // `OffsetDateTime::now_utc` and a truncation would take (this runs twice a check).
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since.as_secs())
            .unwrap_or(i64::MAX / 1_000)
            .saturating_mul(1_000)
            .saturating_add(i64::from(since.subsec_millis()))
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(truncate_to_millis(start))))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        to_millis(self.now())
    }

    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops sub-millisecond precision.
pub fn truncate_to_millis(t: OffsetDateTime) -> OffsetDateTime {
    from_millis(to_millis(t))
}

/// Milliseconds since the Unix epoch, as the store keeps times (whole milliseconds, counted
/// down for times before 1970).
pub fn to_millis(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
        .saturating_mul(1_000)
        .saturating_add(i64::from(t.millisecond()))
}

/// The time `millis` milliseconds after the Unix epoch (the epoch itself when out of the
/// representable range).
pub fn from_millis(millis: i64) -> OffsetDateTime {
    let millisecond = u16::try_from(millis.rem_euclid(1_000)).unwrap_or(0);
    OffsetDateTime::from_unix_timestamp(millis.div_euclid(1_000))
        .and_then(|t| t.replace_millisecond(millisecond))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Whether `t` can be shown as RFC 3339 text in UTC, and kept: its year in UTC is one of
/// RFC 3339's four digits (0000 to 9999). A time read with an offset can fall outside
/// (`9999-12-31T23:00:00-05:00`), and then neither shows nor survives storage.
pub fn within_rfc3339(t: OffsetDateTime) -> bool {
    t.checked_to_offset(time::UtcOffset::UTC)
        .is_some_and(|utc| (0..=9999).contains(&utc.year()))
}

/// A time as RFC 3339 text, the way every interface shows times (`2026-06-01T12:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The millisecond conversions agree with the nanosecond arithmetic of `time`.
        #[test]
        fn millis_round_trip(millis in -62_135_596_800_000i64..253_402_300_799_999) {
            let t = from_millis(millis);
            prop_assert_eq!(t.unix_timestamp_nanos(), i128::from(millis) * 1_000_000);
            prop_assert_eq!(to_millis(t), millis);
            let finer = t + time::Duration::nanoseconds(999_999);
            prop_assert_eq!(truncate_to_millis(finer), t);
        }
    }

    #[test]
    fn the_system_clock_reads_whole_milliseconds_near_now() {
        let before = OffsetDateTime::now_utc();
        let now = SystemClock.now();
        assert_eq!(now.nanosecond() % 1_000_000, 0);
        assert!((now - before).abs() < time::Duration::seconds(1));
    }
}
