//! Keyward's management: everything an organization changes or asks about its
//! credentials, in domain terms, for every interface alike — the HTTP API, the dashboard,
//! the CLI. Who may do what is decided here, once: an operation takes a [`Permit`] for its
//! permission, and refuses any change that would reach beyond the principal's own
//! credential (no escalation). No HTTP types: each interface parses its input, calls one
//! operation, and renders the result or the [`ServiceError`] in its own way.
//!
//! # Layout
//! - [`Service`]: the store, the clock, the verification engine (whose caches every
//!   change clears) and the signing keys; each aggregate's module adds its operations.
//! - [`principal`]: principals, permissions and permits, and the no-escalation rule.
//! - [`credentials`]: create, list, read, change, disable, enable, revoke, rotate, usage,
//!   secrets found elsewhere; [`leaks`], the settings of leak reports.
//! - [`ip_rules`]: the organization's IP access rules, with the lockout guard.
//! - [`roles`]: built-in and custom roles, and the scope catalogue.
//! - [`members`]: dashboard members, logins and sessions; [`login`], the bounds on
//!   password checks.
//! - [`audit`]: the audit log.
//! - [`records`]: what every interface shows of a credential or a rule.
//! - [`organizations`]: the first run and `keyward init`.
//! - [`tokens`] and [`signing`]: issuing and revoking access tokens, and the keys that
//!   sign them.
//! - [`webhooks`]: webhook endpoints; their [`webhooks::outbox`], as the delivery worker
//!   works it, and the [`webhooks::notices`] the scheduled scans send.
//! - [`error`]: [`ServiceError`], and what forbids or conflicts with a change.
//! - `writes`: version-checked writes and audit details, as every operation makes them.

pub mod audit;
pub mod credentials;
pub mod error;
pub mod ip_rules;
pub mod leaks;
pub mod login;
pub mod members;
pub mod organizations;
pub mod principal;
pub mod records;
pub mod roles;
pub mod service;
pub mod signing;
pub mod tokens;
pub mod webhooks;
mod writes;

pub use error::ServiceError;
pub use principal::{Authority, Operator, Permit, Principal};
pub use service::{Service, ServiceConfig};
