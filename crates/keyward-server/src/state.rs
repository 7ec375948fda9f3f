//! `AppState`: what every handler shares, built once by the binary (or a test).

use std::sync::Arc;

use keyward_core::clock::Clock;
use keyward_engine::Verifier;
use keyward_gate::Gate;
use keyward_service::Service;
use keyward_store::Store;

use crate::config::ServerConfig;

/// The state shared by every handler: one reference-counted pointer, so the clones axum
/// makes of it for each request (several per request) cost one atomic count each, not one
/// for every part.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// What [`AppState`] points to.
pub struct SharedState {
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// The time source (a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// The verification engine and its caches.
    pub engine: Arc<Verifier>,
    /// Admission of requests, through the engine.
    pub gate: Gate,
    /// Management: every change and query an organization makes.
    pub service: Arc<Service>,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

impl AppState {
    /// Builds the state: the engine checks access tokens against the keys the service
    /// signs with, so both read the signing keys once.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: ServerConfig) -> Self {
        let keys = Service::key_ring(&config.service, &config.engine.tokens, store.clone());
        let engine = Arc::new(Verifier::new(
            store.clone(),
            clock.clone(),
            config.engine.clone(),
            keys.clone(),
        ));
        let gate = Gate::new(engine.clone(), config.gate.clone());
        let service = Arc::new(Service::new(
            store,
            clock.clone(),
            engine.clone(),
            keys,
            config.service.clone(),
        ));
        Self(Arc::new(SharedState {
            config: Arc::new(config),
            clock,
            engine,
            gate,
            service,
        }))
    }
}
