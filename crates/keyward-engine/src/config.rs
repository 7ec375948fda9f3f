//! What the engine is told by its deployment: the scope catalogue, how long things stay
//! cached, brute-force and rate limits, how usage is written, and which access tokens it
//! accepts.

use std::time::Duration;

use keyward_core::credential::{Credential, Environment};
use keyward_core::rate_limit::RateLimit;
use keyward_core::scope::ScopeCatalogue;

use crate::throttle::ThrottleConfig;
use crate::tokens::TokenRules;

/// The engine's settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The scopes credentials may hold.
    pub catalogue: ScopeCatalogue,
    /// How long an organization's change counter, rules and roles, and an unknown digest,
    /// stay cached: the longest a change made on another node goes unseen here.
    pub cache_ttl: Duration,
    /// How long a checked credential stays cached at most (it is re-read sooner whenever
    /// its organization's change counter moves).
    pub credential_cache_ttl: Duration,
    /// Most credentials cached.
    pub cache_capacity: u64,
    /// Brute-force protection of credential checks.
    pub throttle: ThrottleConfig,
    /// How often recorded usage is written.
    pub usage_flush_interval: Duration,
    /// How long per-minute usage counts are kept.
    pub usage_retention: Duration,
    /// Per-credential rate limits by environment, and the organizations' ceiling on
    /// management requests.
    pub rate_limits: RateLimits,
    /// Which access tokens are accepted.
    pub tokens: TokenRules,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            catalogue: ScopeCatalogue::default(),
            cache_ttl: Duration::from_millis(800),
            credential_cache_ttl: Duration::from_secs(600),
            cache_capacity: 1_000_000,
            throttle: ThrottleConfig::default(),
            usage_flush_interval: Duration::from_secs(1),
            usage_retention: Duration::from_secs(30 * 24 * 3600),
            rate_limits: RateLimits::default(),
            tokens: TokenRules::default(),
        }
    }
}

/// The deployment's default rate limit of each environment; a credential's
/// `rate_limit_override` (requests per second, burst twice that) replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// For `live` credentials: 50 a second, burst 100 by default.
    pub live: RateLimit,
    /// For `test` credentials: 10 a second, burst 20 by default.
    pub test: RateLimit,
    /// For all management API requests of one organization together: 100 a second,
    /// burst 200 by default.
    pub management: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            live: RateLimit {
                per_second: 50,
                burst: 100,
            },
            test: RateLimit {
                per_second: 10,
                burst: 20,
            },
            management: RateLimit {
                per_second: 100,
                burst: 200,
            },
        }
    }
}

impl RateLimits {
    /// The limit of `credential`.
    pub fn of(&self, credential: &Credential) -> RateLimit {
        match credential.settings.rate_limit_override {
            Some(per_second) => RateLimit::with_double_burst(per_second),
            None => match credential.environment {
                Environment::Live => self.live,
                Environment::Test => self.test,
            },
        }
    }
}
