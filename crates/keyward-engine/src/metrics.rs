//! What the checks count: verifications by outcome, cache hits and misses, rate-limited
//! requests and store errors. Each worker thread increments counters of its own (a line no
//! other core writes), and [`VerificationMetrics::publish`] adds what they gained since the
//! last call to the series of the `metrics` facade's recorder: a check pays one uncontended
//! increment per count, where a recorder's shared counters cost two contended ones. No
//! label carries a secret or an organization's data: outcome codes and fixed words only.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use keyward_core::verify::Outcome;
use metrics::counter;

/// Verifications, by `outcome`.
pub const VERIFICATIONS: &str = "keyward_verifications_total";
/// Verification cache lookups, by `result` (`hit` or `miss`).
pub const CACHE_LOOKUPS: &str = "keyward_cache_lookups_total";
/// Requests refused by a credential's rate limit.
pub const RATE_LIMITED: &str = "keyward_rate_limited_total";
/// Store calls that failed.
pub const STORE_ERRORS: &str = "keyward_store_errors_total";

/// What is counted, as indices into each shard's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A verification with this outcome.
    Outcome(Outcome),
    /// A cache hit.
    CacheHit,
    /// A cache miss (a store read follows).
    CacheMiss,
    /// A request refused by its credential's rate limit.
    RateLimited,
    /// A store failure.
    StoreError,
}

/// Outcomes, then the four other counts.
const COUNTS: usize = Outcome::ALL.len() + 4;
/// Rows of counters; threads beyond this share rows (still exact, then contended).
pub const COUNT_SHARDS: usize = 16;

impl Count {
    fn index(self) -> usize {
        let outcomes = Outcome::ALL.len();
        match self {
            Count::Outcome(outcome) => Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0),
            Count::CacheHit => outcomes,
            Count::CacheMiss => outcomes + 1,
            Count::RateLimited => outcomes + 2,
            Count::StoreError => outcomes + 3,
        }
    }
}

/// This thread's row of counters, of `COUNT_SHARDS`.
pub fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % COUNT_SHARDS;
    }
    INDEX.with(|index| *index)
}

/// One shard's counts, on lines of their own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ShardCounts([AtomicU64; COUNTS]);

/// The checks' counters, and what of them was last published.
#[derive(Debug)]
pub struct VerificationMetrics {
    /// One row of counts per shard of threads.
    shards: Box<[ShardCounts]>,
    /// What was last added to each series, in [`Count`] order.
    published: Mutex<[u64; COUNTS]>,
}

impl Default for VerificationMetrics {
    fn default() -> Self {
        Self {
            shards: (0..COUNT_SHARDS).map(|_| ShardCounts::default()).collect(),
            published: Mutex::new([0; COUNTS]),
        }
    }
}

impl VerificationMetrics {
    /// Counts one `count`.
    pub fn add(&self, count: Count) {
        self.shards[shard_index()].0[count.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many of `count` were counted so far.
    pub fn total(&self, count: Count) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.0[count.index()].load(Ordering::Relaxed))
            .sum()
    }

    /// Adds to the series of the installed `metrics` recorder what was counted since the
    /// last call. The series are looked up here rather than when the engine is made, so
    /// they reach the recorder installed by then, whichever it is.
    pub fn publish(&self) {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let series = Outcome::ALL
            .iter()
            .map(|outcome| {
                (
                    Count::Outcome(*outcome),
                    counter!(VERIFICATIONS, "outcome" => outcome.code()),
                )
            })
            .chain([
                (Count::CacheHit, counter!(CACHE_LOOKUPS, "result" => "hit")),
                (
                    Count::CacheMiss,
                    counter!(CACHE_LOOKUPS, "result" => "miss"),
                ),
                (Count::RateLimited, counter!(RATE_LIMITED)),
                (Count::StoreError, counter!(STORE_ERRORS)),
            ]);
        for (count, series) in series {
            let total = self.total(count);
            let index = count.index();
            series.increment(total - published[index]);
            published[index] = total;
        }
    }
}
