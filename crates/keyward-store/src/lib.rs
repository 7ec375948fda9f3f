//! Keyward's storage: what is kept, behind one trait per aggregate, on SQLite or PostgreSQL.
//!
//! # Layout
//! - [`traits`], one per aggregate, each write atomic together with its audit event:
//!   [`OrganizationStore`] (organizations, the first-run claim, the change counter),
//!   [`CredentialStore`] (credentials and their secrets), [`RuleStore`] (IP access rules),
//!   [`RoleStore`] (custom roles), [`UsageStore`] (what the verification path records),
//!   [`OAuthStore`] (signing keys, revoked tokens), [`MemberStore`] (dashboard members and
//!   their sessions), [`AuditStore`], [`WebhookStore`] (endpoints and the outbox) and
//!   [`NoticeStore`] (what the scheduled scans announce). [`Store`] is all of them, and what the
//!   application holds.
//! - [`error`]: [`StoreError`] and [`Conflict`], the few failures callers must tell apart.
//! - [`records`]: what is read and written besides the domain's own types.
//! - [`sql`]: the implementation for both dialects, a module per aggregate. The SQL is
//!   written once in the subset both accept (`$N` placeholders, integer milliseconds,
//!   bytes for digests); only connecting, pragmas and the migrations folder differ per
//!   dialect.
//! - `testing` (feature `testing`): fresh test databases on either backend.
//! - `migrations/sqlite`, `migrations/postgres`: plain SQL, one folder per dialect.

pub mod error;
pub mod records;
pub mod sql;
#[cfg(feature = "testing")]
pub mod testing;
pub mod traits;

pub use error::{Conflict, StoreError};
pub use records::{
    AttemptRecord, AttemptResult, AuditQuery, BlockedRule, CredentialQuery, CredentialUse,
    DeliveryRecord, DeliveryState, DueDelivery, NewSecret, NextStep, RevokedToken, RuleMatch,
    SecretMatch, SigningKeyRecord, UsageCount,
};
pub use sql::SqlStore;
pub use traits::{
    AuditStore, CredentialStore, MemberStore, NoticeStore, OAuthStore, OrganizationStore,
    RoleStore, RuleStore, Store, UsageStore, WebhookStore,
};
