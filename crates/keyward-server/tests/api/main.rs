//! The management API through its real HTTP interface (the production router, in-process).

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

mod audit;
mod authentication;
mod errors;
mod isolation;
mod keys;
mod openapi;
mod rotation;
mod secrets;
mod status;
mod support;
