//! [`Service`]: what every management operation works with — the store, the clock, the
//! verification engine it keeps in step, the signing keys, the settings — and its
//! [`ServiceConfig`]. Each aggregate's module adds its operations to it.

use std::sync::Arc;

use keyward_core::clock::Clock;
use keyward_core::ip_rule::RulePolicy;
use keyward_core::secret::KeyPrefix;
use keyward_engine::Verifier;
use keyward_engine::throttle::{Throttle, ThrottleConfig};
use keyward_engine::tokens::TokenRules;
use keyward_store::Store;

use crate::error::ServiceError;
use crate::leaks::LeakConfig;
use crate::login::LoginThrottle;
use crate::signing::{KeyRing, SigningConfig};
use crate::webhooks::settings::WebhookConfig;

/// The management side's settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Prefix of issued secrets, e.g. `kw` in `kw_live_…`.
    pub key_prefix: KeyPrefix,
    /// Bounds on organization IP rules.
    pub rule_policy: RulePolicy,
    /// Brute-force protection of dashboard logins.
    pub login_throttle: ThrottleConfig,
    /// How access tokens are signed.
    pub signing: SigningConfig,
    /// What a leak report does to a live key it names, and how many reports an address
    /// may send.
    pub leaks: LeakConfig,
    /// How webhooks are delivered, and which targets they may have.
    pub webhooks: WebhookConfig,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            key_prefix: KeyPrefix::default(),
            rule_policy: RulePolicy::default(),
            login_throttle: ThrottleConfig {
                threshold: 5,
                window: time::Duration::minutes(5),
                block: time::Duration::seconds(30),
                max_block: time::Duration::minutes(30),
            },
            signing: SigningConfig::default(),
            leaks: LeakConfig::default(),
            webhooks: WebhookConfig::default(),
        }
    }
}

/// The management service.
pub struct Service {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) engine: Arc<Verifier>,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) config: ServiceConfig,
    pub(crate) login: LoginThrottle,
    pub(crate) leak_reports: Throttle,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service over `store`, clearing `engine`'s caches on every change and signing
    /// tokens with `keys`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        engine: Arc<Verifier>,
        keys: Arc<KeyRing>,
        config: ServiceConfig,
    ) -> Self {
        let login = LoginThrottle::new(config.login_throttle.clone());
        let leak_reports = Throttle::new(config.leaks.reports.clone());
        Self {
            store,
            clock,
            engine,
            keys,
            config,
            login,
            leak_reports,
        }
    }

    /// The ring of signing keys over `store` that signs as `config` says tokens that
    /// `rules` accept: for [`Service::new`], and for the engine, which checks tokens against
    /// the keys it publishes.
    pub fn key_ring(
        config: &ServiceConfig,
        rules: &TokenRules,
        store: Arc<dyn Store>,
    ) -> Arc<KeyRing> {
        Arc::new(KeyRing::new(config.signing.clone(), rules.clone(), store))
    }

    /// The time source.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Keeps the signing keys' schedule (a new key every rotation interval, retirement,
    /// removal) until the handle is aborted.
    pub fn spawn_key_schedule(&self) -> tokio::task::JoinHandle<()> {
        self.keys.spawn_schedule(self.clock.clone())
    }

    /// Whether the store answers.
    pub async fn ready(&self) -> Result<(), ServiceError> {
        Ok(self.store.ping().await?)
    }
}
