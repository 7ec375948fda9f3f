//! Keyward's domain: everything about credentials that needs no I/O.
//!
//! # Layout
//! - [`typeid`]: TypeID-formatted ids (`organization_…`, `api_key_…`).
//! - [`secret`]: the API key and client secret format, generation and checksum.
//! - [`digest`]: the lookup digest and salted hash stored in place of a secret.
//! - [`ip_rule`]: organization IP access rules and their evaluation.
//! - [`scope`]: scopes, wildcards, presets and built-in roles.
//! - [`credential`]: organizations, credentials, validation and rotation arithmetic.
//! - [`verify`]: the verification decision and its outcome codes.
//! - [`rate_limit`]: per-credential limits with GCRA.
//! - [`random`]: the operating system's randomness.
//! - [`validation`]: the error of a value that fails validation.
//! - [`member`]: organization members who log in to the dashboard: emails, passwords
//!   (argon2id), session tokens.
//! - [`audit`]: audit events.
//! - [`clock`]: injected time.
//! - [`webhook`]: webhook endpoints, their event types and the targets they may have.

pub mod audit;
pub mod clock;
pub mod credential;
pub mod digest;
pub mod ip_rule;
pub mod member;
pub mod random;
pub mod rate_limit;
pub mod scope;
pub mod secret;
pub mod typeid;
pub mod validation;
pub mod verify;
pub mod webhook;
