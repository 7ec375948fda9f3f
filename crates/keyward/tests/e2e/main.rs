//! End-to-end tests of the real `keyward` binary on `127.0.0.1:0` with a temporary SQLite file.

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

mod caddy;
mod cli;
mod cli_keys;
mod connections;
mod dashboard;
mod durability;
mod gateway;
mod leaks;
mod mcp;
mod nginx;
mod nodes;
mod oauth_clients;
mod scopes;
mod support;
mod webhooks;
