//! `AppState`: what every handler shares, built once by the binary (or a test).

use std::sync::Arc;
use std::time::Duration;

use keyward_core::clock::Clock;
use keyward_core::scope::ScopeCatalogue;
use keyward_core::secret::KeyPrefix;
use keyward_store::Store;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            key_prefix: KeyPrefix::default(),
            allow_query_api_key: false,
            body_limit_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            catalogue: ScopeCatalogue::default(),
        }
    }
}

/// The state shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// Where everything is kept.
    pub store: Arc<dyn Store>,
    /// The time source (a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: Arc<ServerConfig>,
}

impl AppState {
    /// Builds the state.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: ServerConfig) -> Self {
        Self {
            store,
            clock,
            config: Arc::new(config),
        }
    }
}
