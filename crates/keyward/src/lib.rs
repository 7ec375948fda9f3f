//! Keyward as a library: every layer re-exported, and the configuration loading of the
//! `keyward` binary.
//!
//! An API that only checks its requests in-process needs [`keyward_gate`] (re-exported
//! here as [`gate`], its tower layer as [`layer`]): it compiles the engine and the store,
//! not the server. This crate compiles everything the binary does.
//!
//! # Layout
//! - [`cli`]: `keyward keys …` and `keyward orgs …`, as the operator.
//! - [`users`]: `keyward users …`, the organizations' members, as the operator.
//! - [`config`]: layered configuration (defaults, TOML file, `KEYWARD_*` environment, flags).
//! - [`scan`]: `keyward scan`, Keyward secrets in files.
//! - [`mcp`]: `keyward mcp`, the MCP tools over standard input and output.
//! - [`remote`]: reaching a running Keyward over HTTP (`scan --server`, `mcp`).
//! - Re-exports: [`core`], [`store`], [`engine`], [`service`], [`gate`], [`server`],
//!   [`layer`], [`connect`], [`Identity`].

pub mod cli;
pub mod config;
pub mod mcp;
pub mod remote;
pub mod scan;
pub mod users;

pub use keyward_core as core;
pub use keyward_engine as engine;
pub use keyward_engine::Identity;
pub use keyward_gate as gate;
pub use keyward_gate::{connect, layer};
pub use keyward_server as server;
pub use keyward_service as service;
pub use keyward_store as store;
