//! Keyward as a library: the tower layer an axum API adds to check credentials in-process
//! (the third way of use), and the configuration loading of the `keyward` binary.
//!
//! # Layout
//! - [`layer`]: [`KeywardLayer`](layer::KeywardLayer) and [`RequireScope`](layer::RequireScope).
//! - [`connect`]: opens the store and builds the state the layer checks against.
//! - [`config`]: layered configuration (defaults, TOML file, `KEYWARD_*` environment, flags).
//! - Re-exports: [`core`], [`store`], [`server`], [`Identity`].

pub mod config;
pub mod layer;

use std::sync::Arc;

pub use keyward_core as core;
pub use keyward_server as server;
pub use keyward_server::verifier::Identity;
pub use keyward_store as store;

/// Opens (and migrates) the database at `url` — the same one the Keyward server uses — and
/// builds the state a [`layer::KeywardLayer`] checks against, with the system clock. Usage
/// is written in the background every `config.usage_flush_interval`.
pub async fn connect(
    url: &str,
    config: keyward_server::ServerConfig,
) -> Result<keyward_server::AppState, keyward_store::StoreError> {
    let store = keyward_store::SqlStore::open(url).await?;
    let state = keyward_server::AppState::new(
        Arc::new(store),
        Arc::new(keyward_core::clock::SystemClock),
        config,
    );
    state.verifier.spawn_usage_flusher();
    Ok(state)
}
