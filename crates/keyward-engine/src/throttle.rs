//! Brute-force protection: failed authentications are counted per source address, and an
//! address that fails too often is refused, and told when to try again, for a period that
//! doubles with each repeat. Only that address is refused: the holder of a valid key who
//! uses it from elsewhere is unaffected. IPv6 addresses count per /64, the block one
//! subscriber usually holds.

use std::net::IpAddr;

use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::DashMap;
use foldhash::fast::RandomState;
use keyward_core::clock::{from_millis, to_millis};
use time::{Duration, OffsetDateTime};

/// How many failures, in what window, block an address, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` that block the address.
    pub threshold: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// The first block's length; each further block doubles it.
    pub block: Duration,
    /// The longest block.
    pub max_block: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            threshold: 20,
            window: Duration::minutes(1),
            block: Duration::seconds(10),
            max_block: Duration::minutes(15),
        }
    }
}

#[derive(Debug, Default)]
struct FailureState {
    window_start: Option<OffsetDateTime>,
    failures: u32,
    strikes: u32,
    blocked_until: Option<OffsetDateTime>,
}

/// Failure counts per source address; [`Throttle::prune`] drops those long past.
pub struct Throttle {
    config: ThrottleConfig,
    states: DashMap<IpAddr, FailureState, RandomState>,
    /// When the latest block of any address ends (milliseconds since the epoch): before
    /// it, an address may be blocked; after it, none is, and a check reads no map.
    blocks_end: AtomicI64,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The key an address is counted under: itself, or its /64 for IPv6.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Throttle {
    /// A throttle with this configuration.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            states: DashMap::default(),
            blocks_end: AtomicI64::new(i64::MIN),
        }
    }

    /// How long `ip` must still wait, if it is blocked at `now`.
    pub fn blocked(&self, ip: IpAddr, now: OffsetDateTime) -> Option<Duration> {
        self.blocked_at(ip, to_millis(now))
    }

    /// [`Throttle::blocked`] at `now_millis` since the epoch: what the verification path
    /// reads, answered from one atomic while nobody is blocked.
    pub fn blocked_at(&self, ip: IpAddr, now_millis: i64) -> Option<Duration> {
        if now_millis >= self.blocks_end.load(Ordering::Relaxed) {
            return None;
        }
        let now = from_millis(now_millis);
        let state = self.states.get(&bucket(ip))?;
        state
            .blocked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Forgets addresses whose window and block are over, keeping those that may be
    /// blocked again soon (repeat offenders keep their strikes for an hour).
    pub fn prune(&self, now: OffsetDateTime) {
        let window = self.config.window;
        self.states.retain(|_, state| {
            state.window_start.is_some_and(|start| now - start < window)
                || state
                    .blocked_until
                    .is_some_and(|until| now - until < Duration::hours(1))
        });
    }

    /// Counts a failed authentication from `ip` at `now`.
    pub fn record_failure(&self, ip: IpAddr, now: OffsetDateTime) {
        let mut state = self.states.entry(bucket(ip)).or_default();
        if state
            .window_start
            .is_none_or(|start| now - start >= self.config.window)
        {
            state.window_start = Some(now);
            state.failures = 0;
        }
        state.failures += 1;
        if state.failures >= self.config.threshold {
            state.strikes = state.strikes.saturating_add(1);
            let factor = 1i32 << state.strikes.saturating_sub(1).min(16);
            let block = (self.config.block * factor).min(self.config.max_block);
            state.blocked_until = Some(now + block);
            self.blocks_end
                .fetch_max(to_millis(now + block) + 1, Ordering::Relaxed);
            state.failures = 0;
            state.window_start = None;
            tracing::warn!(client.ip = %bucket(ip), seconds = block.whole_seconds(), "blocking {} after repeated failed authentications", bucket(ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            threshold: 3,
            window: Duration::minutes(1),
            block: Duration::seconds(10),
            max_block: Duration::seconds(35),
        }
    }

    #[test]
    fn an_address_is_blocked_after_the_threshold_and_released_after_the_block() {
        let throttle = Throttle::new(config());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        throttle.record_failure(ip, T0);
        throttle.record_failure(ip, T0);
        assert_eq!(throttle.blocked(ip, T0), None);
        throttle.record_failure(ip, T0);
        assert_eq!(throttle.blocked(ip, T0), Some(Duration::seconds(10)));
        assert_eq!(
            throttle.blocked(ip, T0 + Duration::seconds(4)),
            Some(Duration::seconds(6))
        );
        assert_eq!(throttle.blocked(ip, T0 + Duration::seconds(10)), None);
        assert_eq!(
            throttle.blocked("192.0.2.2".parse().unwrap(), T0),
            None,
            "other addresses are unaffected"
        );
    }

    #[test]
    fn repeated_blocks_double_up_to_the_maximum() {
        let throttle = Throttle::new(config());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut now = T0;
        for expected in [10, 20, 35, 35] {
            for _ in 0..3 {
                throttle.record_failure(ip, now);
            }
            assert_eq!(throttle.blocked(ip, now), Some(Duration::seconds(expected)));
            now += Duration::seconds(expected);
        }
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let throttle = Throttle::new(config());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        throttle.record_failure(ip, T0);
        throttle.record_failure(ip, T0);
        throttle.record_failure(ip, T0 + Duration::minutes(2));
        assert_eq!(throttle.blocked(ip, T0 + Duration::minutes(2)), None);
    }

    #[test]
    fn pruning_forgets_only_what_is_long_past() {
        let throttle = Throttle::new(config());
        let (old, blocked) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        throttle.record_failure(old, T0);
        for _ in 0..3 {
            throttle.record_failure(blocked, T0 + Duration::minutes(5));
        }
        throttle.prune(T0 + Duration::minutes(5));
        assert_eq!(throttle.states.len(), 1);
        assert!(
            throttle
                .blocked(blocked, T0 + Duration::minutes(5))
                .is_some()
        );
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let throttle = Throttle::new(config());
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
            throttle.record_failure(host.parse().unwrap(), T0);
        }
        assert!(
            throttle
                .blocked("2001:db8:1:2::77".parse().unwrap(), T0)
                .is_some()
        );
        assert!(
            throttle
                .blocked("2001:db8:1:3::1".parse().unwrap(), T0)
                .is_none()
        );
    }
}
