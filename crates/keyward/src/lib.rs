//! Keyward as a library: configuration loading for the binary, and the crates an API links
//! to check credentials in-process.
//!
//! # Layout
//! - [`config`]: layered configuration (defaults, TOML file, `KEYWARD_*` environment, flags).
//! - Re-exports: [`core`], [`store`], [`server`].

pub mod config;

pub use keyward_core as core;
pub use keyward_server as server;
pub use keyward_store as store;
