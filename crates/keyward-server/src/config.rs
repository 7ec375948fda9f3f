//! [`ServerConfig`]: every setting of a Keyward server in one place, as the binary reads
//! them from its file, environment and flags. Each part of the server gets its own narrow
//! view of it: the engine an [`EngineConfig`], the management service a
//! [`ServiceConfig`], admission a [`GateConfig`]; the HTTP settings stay here.

use std::time::Duration;

use ipnet::IpNet;
use keyward_core::ip_rule::RulePolicy;
use keyward_core::scope::ScopeCatalogue;
use keyward_core::secret::KeyPrefix;
use keyward_engine::throttle::ThrottleConfig;
use keyward_engine::{EngineConfig, RateLimits};
use keyward_gate::GateConfig;
use keyward_service::ServiceConfig;
use keyward_service::signing::OAuthConfig;

use crate::original::AuthorizeConfig;

/// The settings of a Keyward server and the credential rules it applies.
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
    /// Per-credential rate limits by environment, and the organizations' ceiling on
    /// management requests.
    pub rate_limits: RateLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let engine = EngineConfig::default();
        let service = ServiceConfig::default();
        Self {
            key_prefix: service.key_prefix,
            allow_query_api_key: false,
            body_limit_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            catalogue: engine.catalogue,
            trusted_proxies: Vec::new(),
            cache_ttl: engine.cache_ttl,
            credential_cache_ttl: engine.credential_cache_ttl,
            cache_capacity: engine.cache_capacity,
            rule_policy: service.rule_policy,
            throttle: engine.throttle,
            login_throttle: service.login_throttle,
            usage_flush_interval: engine.usage_flush_interval,
            usage_retention: engine.usage_retention,
            authorize: AuthorizeConfig::default(),
            oauth: OAuthConfig::default(),
            rate_limits: engine.rate_limits,
        }
    }
}

impl ServerConfig {
    /// The verification engine's settings.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            catalogue: self.catalogue.clone(),
            cache_ttl: self.cache_ttl,
            credential_cache_ttl: self.credential_cache_ttl,
            cache_capacity: self.cache_capacity,
            throttle: self.throttle.clone(),
            usage_flush_interval: self.usage_flush_interval,
            usage_retention: self.usage_retention,
            rate_limits: self.rate_limits,
            tokens: self.oauth.token_rules(),
        }
    }

    /// The management service's settings.
    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            key_prefix: self.key_prefix.clone(),
            rule_policy: self.rule_policy.clone(),
            login_throttle: self.login_throttle.clone(),
        }
    }

    /// Admission's settings.
    pub fn gate(&self) -> GateConfig {
        GateConfig {
            allow_query_api_key: self.allow_query_api_key,
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}
