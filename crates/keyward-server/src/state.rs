//! `AppState`: what every handler shares, built once by the binary (or a test).

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use keyward_core::clock::Clock;
use keyward_core::credential::{Credential, Environment};
use keyward_core::ip_rule::RulePolicy;
use keyward_core::rate_limit::RateLimit;
use keyward_core::scope::ScopeCatalogue;
use keyward_core::secret::KeyPrefix;
use keyward_store::Store;

use crate::ceiling::OrganizationCeiling;
use crate::dashboard::login::LoginGate;
use crate::oauth::OAuthConfig;
use crate::oauth::keys::KeyRing;
use crate::routes::authorize::AuthorizeConfig;
use crate::throttle::ThrottleConfig;
use crate::verifier::Verifier;

/// Settings of the HTTP interface and the credential rules it applies.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Prefix of issued secrets, e.g. `kw` in `kw_live_…`.
    pub key_prefix: KeyPrefix,
    /// Whether `?api_key=` is accepted as a transport (off by default: URLs end up in logs).
    pub allow_query_api_key: bool,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Longest time a request may take, reading its body included.
    pub request_timeout: Duration,
    /// The scopes credentials may hold.
    pub catalogue: ScopeCatalogue,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long an organization's change counter, rules and roles, and an unknown digest,
    /// stay cached: the longest a change made on another node goes unseen here.
    pub cache_ttl: Duration,
    /// How long a checked credential stays cached at most (it is re-read sooner whenever
    /// its organization's change counter moves).
    pub credential_cache_ttl: Duration,
    /// Most credentials cached.
    pub cache_capacity: u64,
    /// Bounds on organization IP rules.
    pub rule_policy: RulePolicy,
    /// Brute-force protection of credential checks.
    pub throttle: ThrottleConfig,
    /// Brute-force protection of dashboard logins.
    pub login_throttle: ThrottleConfig,
    /// How often recorded usage is written.
    pub usage_flush_interval: Duration,
    /// How long per-minute usage counts are kept.
    pub usage_retention: Duration,
    /// How `/v1/authorize` reads the original request and which scopes it requires.
    pub authorize: AuthorizeConfig,
    /// OAuth client credentials: issuer, token lifetime, signing keys.
    pub oauth: OAuthConfig,
    /// Per-credential rate limits by environment.
    pub rate_limits: RateLimits,
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

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            key_prefix: KeyPrefix::default(),
            allow_query_api_key: false,
            body_limit_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            catalogue: ScopeCatalogue::default(),
            trusted_proxies: Vec::new(),
            cache_ttl: Duration::from_millis(800),
            credential_cache_ttl: Duration::from_secs(600),
            cache_capacity: 1_000_000,
            rule_policy: RulePolicy::default(),
            throttle: ThrottleConfig::default(),
            login_throttle: ThrottleConfig {
                threshold: 5,
                window: time::Duration::minutes(5),
                block: time::Duration::seconds(30),
                max_block: time::Duration::minutes(30),
            },
            usage_flush_interval: Duration::from_secs(1),
            usage_retention: Duration::from_secs(30 * 24 * 3600),
            authorize: AuthorizeConfig::default(),
            oauth: OAuthConfig::default(),
            rate_limits: RateLimits::default(),
        }
    }
}

/// The state shared by every handler: one reference-counted pointer, so the clones axum
/// makes of it for each request (several per request) cost one atomic count each, not one
/// for every part.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// What [`AppState`] points to.
pub struct SharedState {
    /// Where everything is kept.
    pub store: Arc<dyn Store>,
    /// The time source (a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// The verification path and its caches.
    pub verifier: Arc<Verifier>,
    /// The keys that sign access tokens.
    pub keys: Arc<KeyRing>,
    /// The per-organization ceiling on management requests.
    pub ceiling: Arc<OrganizationCeiling>,
    /// What stands before a dashboard password check.
    pub login_gate: Arc<LoginGate>,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: ServerConfig) -> Self {
        let config = Arc::new(config);
        let keys = Arc::new(KeyRing::new(config.oauth.clone()));
        let verifier = Arc::new(Verifier::new(
            store.clone(),
            clock.clone(),
            config.clone(),
            keys.clone(),
        ));
        let ceiling = Arc::new(OrganizationCeiling::new(config.rate_limits.management));
        let login_gate = Arc::new(LoginGate::new(config.login_throttle.clone()));
        Self(Arc::new(SharedState {
            store,
            clock,
            config,
            verifier,
            keys,
            ceiling,
            login_gate,
        }))
    }
}
