//! Keyward's gate: how an HTTP request is admitted, whether it reaches `/v1/authorize`,
//! the management API, or an API that checks its requests in-process with Keyward's tower
//! layer. One function, [`Gate::admit`], reads the credential the request presents and the
//! client's address, checks them with the verification engine, and either admits the
//! request with its [`Identity`](keyward_engine::Identity) or refuses it as problem+json
//! with the RFC 6750 and `RateLimit-*` headers.
//!
//! A Rust API that links this crate compiles the engine and the store, not the server with
//! its dashboard and API document.
//!
//! # Layout
//! - [`Gate`] and [`GateConfig`]: admission.
//! - [`transport`]: where a request presents its credential.
//! - [`client_ip`]: the client address, trusted proxies considered.
//! - [`refusal`]: [`Refusal`] and the problem+json document every refusal is.
//! - [`headers`]: the `RateLimit-*` and `Retry-After` values.
//! - [`layer`]: [`KeywardLayer`](layer::KeywardLayer) and
//!   [`RequireScope`](layer::RequireScope).
//! - [`connect`]: opens the store and builds a gate for the layer.

pub mod client_ip;
pub mod headers;
pub mod layer;
pub mod refusal;
pub mod transport;

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::request::Parts;
use ipnet::IpNet;
use keyward_core::clock::SystemClock;
use keyward_core::verify::Outcome;
use keyward_engine::tokens::StoredKeys;
use keyward_engine::{Admitted, Client, Demand, EngineConfig, Verifier};
use keyward_store::{SqlStore, Store, StoreError};

pub use refusal::{Problem, Refusal};

use crate::client_ip::{client_address, peer};
use crate::transport::{Transport, presented_credential};

/// How requests may present credentials and whose forwarded addresses are believed.
#[derive(Debug, Clone, Default)]
pub struct GateConfig {
    /// Whether `?api_key=` is accepted as a transport (off by default: URLs end up in logs).
    pub allow_query_api_key: bool,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

/// Admits requests: the engine and the transport settings.
#[derive(Clone)]
pub struct Gate {
    engine: Arc<Verifier>,
    config: Arc<GateConfig>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate checking with `engine`.
    pub fn new(engine: Arc<Verifier>, config: GateConfig) -> Self {
        Self {
            engine,
            config: Arc::new(config),
        }
    }

    /// The engine checks go to.
    pub fn engine(&self) -> &Arc<Verifier> {
        &self.engine
    }

    /// Admits the request `parts` for `demand`: the one credential it presents
    /// (`X-Api-Key`, `Authorization: Bearer`, or `?api_key=` in `query` when allowed),
    /// from its client's address, failures counting against that address. `query` is the
    /// query string where `?api_key=` may be found (behind a proxy, the original request's).
    pub async fn admit(
        &self,
        parts: &Parts,
        query: Option<&str>,
        demand: &Demand<'_>,
    ) -> Result<Admitted, Refusal> {
        self.admit_if_presented(parts, query, demand)
            .await?
            .ok_or(Refusal::Unauthenticated(Outcome::Missing))
    }

    /// [`Gate::admit`], but a request that presents no credential is `None` rather than
    /// refused: for an endpoint that also accepts another kind of authentication.
    pub async fn admit_if_presented(
        &self,
        parts: &Parts,
        query: Option<&str>,
        demand: &Demand<'_>,
    ) -> Result<Option<Admitted>, Refusal> {
        let allow_query = self.config.allow_query_api_key;
        let Some((secret, transport)) = presented_credential(&parts.headers, query, allow_query)?
        else {
            return Ok(None);
        };
        let client = Client {
            ip: self.client_ip(parts),
            throttled: true,
            via_query: transport == Transport::Query,
        };
        self.engine
            .check(&secret, demand, client)
            .await
            .map(Some)
            .map_err(|denial| Refusal::from_denial(denial, demand.scopes))
    }

    /// The client address of a request: its TCP peer, or, behind trusted proxies, the
    /// address they forward.
    pub fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        client_address(peer(parts), &parts.headers, &self.config.trusted_proxies)
    }
}

/// Opens (and migrates) the database at `url` — the same one the Keyward server uses — and
/// builds the gate a [`layer::KeywardLayer`] admits with, on the system clock. Access
/// tokens are checked against the keys the server publishes in the store; usage is written
/// in the background every `engine.usage_flush_interval`.
pub async fn connect(
    url: &str,
    engine: EngineConfig,
    config: GateConfig,
) -> Result<Gate, StoreError> {
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(url).await?);
    let published = Arc::new(StoredKeys::new(
        store.clone(),
        engine.tokens.key_refresh_interval,
    ));
    let verifier = Arc::new(Verifier::new(
        store,
        Arc::new(SystemClock),
        engine,
        published,
    ));
    verifier.spawn_usage_flusher();
    Ok(Gate::new(verifier, config))
}
