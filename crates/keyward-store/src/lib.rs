//! Keyward's storage: what is kept, behind one trait, on SQLite or PostgreSQL.
//!
//! # Layout
//! - [`Store`]: every read and write the server needs, each write atomic together with its
//!   audit event.
//! - [`StoreError`]: the few failures callers must tell apart.
//! - [`sql`]: the implementation for both dialects. The SQL is written once in the subset
//!   both accept (`$N` placeholders, integer milliseconds, bytes for digests); only
//!   connecting, pragmas and the migrations folder differ per dialect.
//! - `testing` (feature `testing`): fresh test databases on either backend.
//! - `migrations/sqlite`, `migrations/postgres`: plain SQL, one folder per dialect.

use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::credential::{Credential, DisplayStatus, Environment, Organization};
use keyward_core::digest::{LookupDigest, SaltedHash, SecretDigests};
use keyward_core::ip_rule::IpRule;
use keyward_core::member::{Member, Session};
use keyward_core::scope::CustomRole;
use keyward_core::secret::SecretKind;
use keyward_core::typeid::{AuditEventId, CredentialId, IpRuleId, OrganizationId, UserId};
use time::OffsetDateTime;

pub mod sql;
#[cfg(feature = "testing")]
pub mod testing;

pub use sql::SqlStore;

/// A store failure, as callers need to distinguish them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (or belongs to another organization).
    #[error("not found")]
    NotFound,
    /// A uniqueness or concurrency rule was broken; `constraint` names which.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The constraint or rule: e.g. `version` for a concurrent update.
        constraint: &'static str,
    },
    /// The database cannot be reached or did not answer; retrying later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database answered something this code cannot read, or refused a statement.
    #[error("store failure: {0}")]
    Internal(String),
}

/// A secret to store: which one it is and its digests.
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// API key or client secret.
    pub kind: SecretKind,
    /// Its lookup digest and salted hash.
    pub digests: SecretDigests,
}

/// A credential found by the lookup digest of a presented secret.
#[derive(Debug, Clone)]
pub struct SecretMatch {
    /// The credential the secret belongs to.
    pub credential: Credential,
    /// `api_key` or `client_secret`.
    pub kind: String,
    /// The salted hash to confirm the secret against.
    pub salted: SaltedHash,
    /// The end of a rotated-out secret's grace period.
    pub expires_at: Option<OffsetDateTime>,
    /// The organization's change counter as of this read.
    pub org_change_seq: i64,
}

/// A successful use of a credential, recorded in batches (never one write per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUse {
    /// The credential used.
    pub credential_id: CredentialId,
    /// When.
    pub at: OffsetDateTime,
    /// From where.
    pub ip: Option<std::net::IpAddr>,
}

/// A key that signs access tokens, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Its key id (the JWT `kid`).
    pub kid: String,
    /// Its place in the sequence of keys: a newer key has a higher one, and two nodes
    /// creating a key at once cannot both take the same.
    pub generation: i64,
    /// The JWS algorithm, e.g. `ES256`.
    pub algorithm: String,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    /// The private key sealed under the master key; gone once a newer key signs.
    pub sealed_private_key: Option<String>,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it starts signing (it is published from `created_at`).
    pub activates_at: OffsetDateTime,
    /// When a newer key took over signing.
    pub retired_at: Option<OffsetDateTime>,
    /// When the last token it signed expires: it is unpublished after this.
    pub published_until: Option<OffsetDateTime>,
}

/// An access token revoked before its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    /// The token's `jti`.
    pub jti: String,
    /// Its organization (its `client_id`).
    pub organization_id: OrganizationId,
    /// Its credential (its `sub`).
    pub credential_id: CredentialId,
    /// Its `exp`: the row may go after this.
    pub expires_at: OffsetDateTime,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
}

/// Requests of one credential in one minute with one outcome, as recorded or summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    /// The credential.
    pub credential_id: CredentialId,
    /// The minute (or the first minute of a longer bucket), in minutes since the epoch.
    pub minute: i64,
    /// The outcome code, e.g. `VALID`.
    pub outcome: String,
    /// How many requests.
    pub count: i64,
    /// How many of them presented the key in the query string.
    pub via_query: i64,
}

/// Filters and page of a credential listing, newest first.
#[derive(Debug, Clone)]
pub struct CredentialQuery {
    /// Only credentials showing this status at `now`.
    pub status: Option<DisplayStatus>,
    /// Only credentials of this environment.
    pub environment: Option<Environment>,
    /// Only credentials of this end customer.
    pub owner_id: Option<String>,
    /// Only credentials older than this one (the cursor).
    pub before: Option<CredentialId>,
    /// At most this many.
    pub limit: u32,
    /// The time that decides `expired`.
    pub now: OffsetDateTime,
}

/// Page of an audit log listing, newest first.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// Only events of this action, e.g. `key.revoked`.
    pub action: Option<String>,
    /// Only events about this object.
    pub target_id: Option<String>,
    /// Only events older than this one (the cursor).
    pub before: Option<AuditEventId>,
    /// At most this many.
    pub limit: u32,
}

/// Everything Keyward reads and writes. Every write that changes a credential or an
/// organization takes its audit event and commits both in one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates an organization.
    async fn insert_organization(
        &self,
        org: &Organization,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Reads an organization.
    async fn organization(&self, id: &OrganizationId) -> Result<Option<Organization>, StoreError>;

    /// The organization's change counter: it moves with every change to one of its
    /// credentials, IP rules or roles (creating a credential does not move it). Zero for
    /// an unknown organization.
    async fn organization_change_seq(&self, org: &OrganizationId) -> Result<i64, StoreError>;

    /// How many organizations exist (zero on a fresh database).
    async fn organization_count(&self) -> Result<u64, StoreError>;

    /// Claims the database's one first-run bootstrap: `true` for the one caller that
    /// claims it, `false` for every other, however many nodes start together.
    async fn claim_bootstrap(&self, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Creates a credential with its secrets' digests.
    async fn insert_credential(
        &self,
        credential: &Credential,
        secrets: &[NewSecret],
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Reads one credential of an organization; another organization's id reads as none.
    async fn credential(
        &self,
        org: &OrganizationId,
        id: &CredentialId,
    ) -> Result<Option<Credential>, StoreError>;

    /// Finds the credential a secret belongs to, by the secret's lookup digest (O(1)).
    async fn credential_by_secret(
        &self,
        lookup: &LookupDigest,
    ) -> Result<Option<SecretMatch>, StoreError>;

    /// Lists an organization's credentials, newest first.
    async fn list_credentials(
        &self,
        org: &OrganizationId,
        query: &CredentialQuery,
    ) -> Result<Vec<Credential>, StoreError>;

    /// Writes a changed credential. `credential.version` is the version it was read at;
    /// if another write came between, nothing is written and the answer is
    /// [`StoreError::Conflict`] with `constraint: "version"`. The stored version becomes
    /// `credential.version + 1`.
    async fn update_credential(
        &self,
        credential: &Credential,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Replaces a credential's secrets, as [`Store::update_credential`] writes the record.
    /// The old secrets stop at once (`old_until: None`) or at `old_until`, whichever
    /// of that and an earlier end they already had comes first.
    async fn rotate_credential(
        &self,
        credential: &Credential,
        new_secrets: &[NewSecret],
        old_until: Option<OffsetDateTime>,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Records when and from where credentials were last used; a use older than the one
    /// stored changes nothing.
    async fn record_credential_uses(&self, uses: &[CredentialUse]) -> Result<(), StoreError>;

    /// An organization's IP access rules, oldest first.
    async fn ip_rules(&self, org: &OrganizationId) -> Result<Vec<IpRule>, StoreError>;

    /// Adds a rule unless the organization already has `max_rules`
    /// ([`StoreError::Conflict`] with `constraint: "ip_rule_limit"`). Each of the three
    /// rule writes takes `seen`, the organization's rules as read (by [`Store::ip_rules`],
    /// in any order) when the change was judged: if a rule has been added, changed or
    /// removed since, nothing is written ([`StoreError::Conflict`] with
    /// `constraint: "version"`), so a change judged against the rules (the lockout guard)
    /// is applied to those rules only. Changes to the organization's rules are applied one
    /// at a time.
    async fn insert_ip_rule(
        &self,
        rule: &IpRule,
        max_rules: usize,
        seen: &[IpRule],
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Changes a rule's range, kind or description, if the organization's rules are still
    /// `seen` and the rule's version still `rule.version` (the version it was read at);
    /// otherwise nothing is written and the answer is [`StoreError::Conflict`] with
    /// `constraint: "version"`.
    async fn update_ip_rule(
        &self,
        rule: &IpRule,
        seen: &[IpRule],
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Removes a rule, if the organization's rules are still `seen`.
    async fn delete_ip_rule(
        &self,
        org: &OrganizationId,
        id: &IpRuleId,
        seen: &[IpRule],
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Records when rules last decided a request; an older time changes nothing.
    async fn record_rule_matches(
        &self,
        matches: &[(IpRuleId, OffsetDateTime)],
    ) -> Result<(), StoreError>;

    /// An organization's custom roles, by name.
    async fn roles(&self, org: &OrganizationId) -> Result<Vec<CustomRole>, StoreError>;

    /// Adds a custom role; a taken name is a [`StoreError::Conflict`].
    async fn insert_role(&self, role: &CustomRole, event: &AuditEvent) -> Result<(), StoreError>;

    /// Adds usage counts to what is stored (a sum per credential, minute and outcome).
    async fn record_usage(&self, counts: &[UsageCount]) -> Result<(), StoreError>;

    /// A credential's usage from minute `from` (included) to `to` (excluded), summed per
    /// bucket of `bucket_minutes` (aligned on the epoch) and outcome, oldest first.
    async fn usage(
        &self,
        credential: &CredentialId,
        from: i64,
        to: i64,
        bucket_minutes: i64,
    ) -> Result<Vec<UsageCount>, StoreError>;

    /// Deletes usage counts of minutes before `before`.
    async fn prune_usage(&self, before: i64) -> Result<(), StoreError>;

    /// The signing keys still published, oldest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;

    /// Adds a signing key; a generation already taken is a [`StoreError::Conflict`].
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;

    /// Erases the private keys of every key older than generation `below`, marking them
    /// retired at `at` and published until `published_until`.
    async fn retire_signing_keys(
        &self,
        below: i64,
        at: OffsetDateTime,
        published_until: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Deletes retired keys published until before `now`, and revoked-token rows expired
    /// before `now`.
    async fn prune_oauth(&self, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Records a revoked access token with its audit event, and moves its organization's
    /// change counter. Revoking a revoked token changes nothing.
    async fn revoke_token(
        &self,
        token: &RevokedToken,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Whether the access token `jti` was revoked.
    async fn token_revoked(&self, jti: &str) -> Result<bool, StoreError>;

    /// Adds an organization member with its audit event; a taken email is a
    /// [`StoreError::Conflict`] with `constraint: "unique"`.
    async fn insert_member(&self, member: &Member, event: &AuditEvent) -> Result<(), StoreError>;

    /// The member with this (lower-cased) email.
    async fn member_by_email(&self, email: &str) -> Result<Option<Member>, StoreError>;

    /// Replaces a member's password hash, marks it changed at `at`, and ends every session
    /// of the member, with the audit event; an unknown member is [`StoreError::NotFound`].
    async fn set_member_password(
        &self,
        id: &UserId,
        password_hash: &str,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Starts a session, and deletes the member's sessions that ended before it began.
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError>;

    /// The session with this token digest and its member, ended or not.
    async fn session(&self, digest: &LookupDigest)
    -> Result<Option<(Session, Member)>, StoreError>;

    /// Ends a session; an unknown one changes nothing.
    async fn delete_session(&self, digest: &LookupDigest) -> Result<(), StoreError>;

    /// Appends an audit event on its own (for events that change nothing else).
    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Lists an organization's audit events, newest first.
    async fn list_audit_events(
        &self,
        org: &OrganizationId,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}
