//! Per-credential rate limits with GCRA, the generic cell rate algorithm: a smooth
//! token bucket kept as one number per credential, the theoretical arrival time (TAT) of
//! the next request. The same arithmetic serves the in-memory limiter and a shared one.
//!
//! A limit of `rate` requests per second with `burst` allows `burst` requests at once from
//! rest, then one every `1/rate` seconds. With the emission interval `T = 1/rate` and
//! `TAT` the stored time, a request at `now` is allowed when
//! `max(TAT, now) + T - now ≤ burst × T`, and then `TAT` moves to `max(TAT, now) + T`.

use time::{Duration, OffsetDateTime};

/// A limit: a steady rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second, at least 1.
    pub per_second: u32,
    /// Requests allowed at once from rest, at least 1.
    pub burst: u32,
}

impl RateLimit {
    /// `per_second` with a burst of twice that (how a credential's `rate_limit_override`
    /// reads).
    pub fn with_double_burst(per_second: u32) -> Self {
        let per_second = per_second.max(1);
        Self {
            per_second,
            burst: per_second.saturating_mul(2),
        }
    }

    fn interval_nanos(self) -> i64 {
        1_000_000_000 / i64::from(self.per_second.max(1))
    }

    fn capacity_nanos(self) -> i64 {
        self.interval_nanos()
            .saturating_mul(i64::from(self.burst.max(1)))
    }
}

/// What a check against a limit found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The limit applied (`RateLimit-Limit`: the burst).
    pub limit: u32,
    /// Requests left at once after this one (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the bucket is full again (`RateLimit-Reset`, rounded up to seconds).
    pub reset: Duration,
    /// For a refused request: until one would be allowed (`Retry-After`, rounded up).
    pub retry_after: Duration,
}

/// A limit with its emission interval and capacity worked out (a division): made once per
/// credential and limit, not per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// The limit.
    pub limit: RateLimit,
    /// Nanoseconds between requests at the steady rate.
    interval: i64,
    /// Nanoseconds of burst: `burst × interval`.
    capacity: i64,
}

impl RateLimit {
    /// The limit's interval and capacity.
    pub fn pace(self) -> Pace {
        Pace {
            limit: self,
            interval: self.interval_nanos(),
            capacity: self.capacity_nanos(),
        }
    }
}

impl Pace {
    /// One GCRA step: a request at `now` against the theoretical arrival time `tat` (both
    /// [`unix_nanos`]). Returns the new `tat` when the request is allowed (the state
    /// does not move when it is refused), and what the check found.
    pub fn step(&self, tat: i64, now: i64) -> (Option<i64>, RateDecision) {
        let Pace {
            limit,
            interval,
            capacity,
        } = *self;
        let new_tat = tat.max(now).saturating_add(interval);
        let ahead = new_tat - now;
        if ahead <= capacity {
            let decision = RateDecision {
                allowed: true,
                limit: limit.burst,
                remaining: u32::try_from((capacity - ahead) / interval).unwrap_or(0),
                reset: nanos(ahead),
                retry_after: Duration::ZERO,
            };
            (Some(new_tat), decision)
        } else {
            let decision = RateDecision {
                allowed: false,
                limit: limit.burst,
                remaining: 0,
                reset: nanos(tat.max(now) - now),
                retry_after: nanos(ahead - capacity),
            };
            (None, decision)
        }
    }
}

/// The state of one limited credential: its theoretical arrival time, in nanoseconds since
/// the Unix epoch (0 = at rest). `i64` nanoseconds reach the year 2262, and keep the
/// arithmetic out of 128-bit division on the verification path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gcra {
    /// The theoretical arrival time.
    pub tat_nanos: i64,
    /// The pace last used: a credential keeps its limit, and the pace costs a division.
    pace: Option<Pace>,
}

/// Nanoseconds since the Unix epoch, as the limiter counts time (saturating in 2262).
pub fn unix_nanos(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(t.nanosecond()))
}

impl Gcra {
    /// Checks one request at `now` against `limit`, moving the state when it is allowed.
    pub fn check(&mut self, limit: RateLimit, now: OffsetDateTime) -> RateDecision {
        self.check_at(limit, unix_nanos(now))
    }

    /// [`Gcra::check`] with the time as [`unix_nanos`] gives it.
    pub fn check_at(&mut self, limit: RateLimit, now: i64) -> RateDecision {
        let pace = match self.pace {
            Some(pace) if pace.limit == limit => pace,
            _ => *self.pace.insert(limit.pace()),
        };
        let (tat, decision) = pace.step(self.tat_nanos, now);
        if let Some(tat) = tat {
            self.tat_nanos = tat;
        }
        decision
    }
}

fn nanos(n: i64) -> Duration {
    Duration::nanoseconds(n)
}

/// Whole seconds, rounded up: what `RateLimit-Reset` and `Retry-After` carry.
pub fn ceil_seconds(duration: Duration) -> i64 {
    let whole = duration.whole_seconds();
    if duration > Duration::seconds(whole) {
        whole + 1
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    #[test]
    fn a_burst_passes_at_once_then_one_per_interval() {
        let limit = RateLimit {
            per_second: 10,
            burst: 20,
        };
        let mut state = Gcra::default();
        for i in 0..20 {
            let d = state.check(limit, T0);
            assert!(d.allowed, "request {i} of the burst");
            assert_eq!(d.remaining, 19 - i);
            assert_eq!(d.limit, 20);
        }
        let refused = state.check(limit, T0);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after, Duration::milliseconds(100));
        assert_eq!(ceil_seconds(refused.retry_after), 1);
        assert_eq!(
            refused.reset,
            Duration::seconds(2),
            "full again after burst × interval"
        );
        // One more every 100 ms, not before.
        assert!(!state.check(limit, T0 + Duration::milliseconds(99)).allowed);
        assert!(state.check(limit, T0 + Duration::milliseconds(100)).allowed);
        assert!(!state.check(limit, T0 + Duration::milliseconds(150)).allowed);
        assert!(state.check(limit, T0 + Duration::milliseconds(200)).allowed);
    }

    #[test]
    fn the_steady_rate_is_sustained_and_the_bucket_recovers() {
        let limit = RateLimit {
            per_second: 50,
            burst: 100,
        };
        let mut state = Gcra::default();
        // 50 a second for 10 seconds, evenly: all pass, and the bucket stays nearly full.
        let mut last = None;
        for i in 0..500 {
            let d = state.check(limit, T0 + Duration::milliseconds(20 * i));
            assert!(d.allowed, "request {i}");
            last = Some(d);
        }
        assert_eq!(last.map(|d| d.remaining), Some(99));
        // Twice the rate: after the burst is spent, half are refused.
        let mut state = Gcra::default();
        let allowed = (0..1000)
            .filter(|i| {
                state
                    .check(limit, T0 + Duration::milliseconds(10 * i))
                    .allowed
            })
            .count();
        assert_eq!(allowed, 100 + 500 - 1, "the burst, then the rate over 10 s");
        // After resting for the reset time, the whole burst is back.
        let rest = T0 + Duration::seconds(20);
        assert_eq!(state.check(limit, rest).remaining, 99);
    }

    #[test]
    fn refusals_do_not_consume_the_limit() {
        let limit = RateLimit {
            per_second: 1,
            burst: 1,
        };
        let mut state = Gcra::default();
        assert!(state.check(limit, T0).allowed);
        for ms in [1, 100, 500, 999] {
            let d = state.check(limit, T0 + Duration::milliseconds(ms));
            assert!(!d.allowed);
            assert_eq!(d.retry_after, Duration::milliseconds(1000 - ms));
        }
        assert!(state.check(limit, T0 + Duration::seconds(1)).allowed);
    }

    #[test]
    fn an_override_gets_a_burst_of_twice_its_rate() {
        assert_eq!(
            RateLimit::with_double_burst(5),
            RateLimit {
                per_second: 5,
                burst: 10
            }
        );
        assert_eq!(RateLimit::with_double_burst(0).per_second, 1);
    }
}
