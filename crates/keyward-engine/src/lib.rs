//! Keyward's verification engine: whether a presented API key, access token or client
//! secret may be used, decided in memory for a cached credential, with no HTTP in it. The
//! HTTP endpoints, the tower layer a Rust API links and the management API's own
//! authentication all check through one [`Verifier`].
//!
//! # Layout
//! - [`verifier`]: [`Verifier`], the check: parse the presented secret, find it in the
//!   cache or the store, confirm it, decide with the organization's policy, count it.
//! - [`identity`]: [`Identity`], who a valid credential is.
//! - [`policy`]: an organization's IP rules and roles as checks see them, and the scopes a
//!   credential holds through its role.
//! - [`cache`]: the expiring, bounded table the checks cache credentials in.
//! - [`usage`]: last uses, rule matches and per-minute counts, recorded in memory and
//!   written in batches; the per-credential rate limit's state.
//! - [`throttle`]: brute-force protection per source address.
//! - [`ceiling`]: the per-organization ceiling on management requests.
//! - [`tokens`]: access tokens as a check reads them: claims, signature against the
//!   published keys.
//! - [`metrics`]: what the checks count, published to the `metrics` facade on demand.
//! - [`config`]: [`EngineConfig`] and the default rate limits.

pub mod cache;
pub mod ceiling;
pub mod config;
pub mod identity;
pub mod metrics;
pub mod policy;
pub mod throttle;
pub mod tokens;
pub mod usage;
pub mod verifier;

pub use config::{EngineConfig, RateLimits};
pub use identity::Identity;
pub use usage::Counted;
pub use verifier::{Admitted, Client, Demand, Denial, Purpose, Verifier};
