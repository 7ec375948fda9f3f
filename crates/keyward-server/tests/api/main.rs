//! The management API through its real HTTP interface (the production router, in-process).

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

mod audit;
mod authentication;
mod authorize;
mod contract;
mod dashboard;
mod dashboard_edit;
mod errors;
mod ip_rules;
mod isolation;
mod keys;
mod leaks;
mod mcp;
mod members;
mod metrics;
mod oauth;
mod openapi;
mod rate_limits;
mod roles;
mod rotation;
mod secrets;
mod status;
mod support;
mod usage;
mod verify;
mod webhooks;
