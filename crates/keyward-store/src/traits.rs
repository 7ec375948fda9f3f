//! The store's traits, one per aggregate, and [`Store`], all of them on one database.

use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::credential::{Credential, Organization};
use keyward_core::digest::LookupDigest;
use keyward_core::ip_rule::IpRule;
use keyward_core::member::{Invitation, Member, MemberRole, Session};
use keyward_core::scope::CustomRole;
use keyward_core::typeid::{CredentialId, IpRuleId, MessageId, OrganizationId, UserId, WebhookId};
use keyward_core::webhook::Webhook;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::records::{
    AttemptResult, AuditQuery, BlockedRule, CredentialQuery, CredentialUse, DeliveryRecord,
    DueDelivery, NewSecret, RevokedToken, RuleMatch, SecretMatch, SigningKeyRecord, UsageCount,
};

/// Organizations, the first-run claim, and the change counter every cache of an
/// organization's credentials, rules and roles is checked against.
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// Creates an organization.
    async fn insert_organization(
        &self,
        org: &Organization,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Reads an organization.
    async fn organization(&self, id: &OrganizationId) -> Result<Option<Organization>, StoreError>;

    /// Every organization, oldest first: the operator's view of a deployment.
    async fn organizations(&self) -> Result<Vec<Organization>, StoreError>;

    /// The organization's change counter: it moves with every change to one of its
    /// credentials, IP rules or roles (creating a credential does not move it). Zero for
    /// an unknown organization.
    async fn organization_change_seq(&self, org: &OrganizationId) -> Result<i64, StoreError>;

    /// How many organizations exist (zero on a fresh database).
    async fn organization_count(&self) -> Result<u64, StoreError>;

    /// Claims the database's one first-run bootstrap: `true` for the one caller that
    /// claims it, `false` for every other, however many nodes start together.
    async fn claim_bootstrap(&self, at: OffsetDateTime) -> Result<bool, StoreError>;
}

/// Credentials and the digests of their secrets. Every change moves the organization's
/// change counter, except creating one.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Creates a credential with its secrets' digests; an id already taken is
    /// [`Conflict::Unique`](crate::error::Conflict::Unique).
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
    /// [`Conflict::Version`](crate::error::Conflict::Version). The stored version becomes `credential.version + 1`.
    async fn update_credential(
        &self,
        credential: &Credential,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Replaces a credential's secrets, as [`CredentialStore::update_credential`] writes
    /// the record. The old secrets stop at once (`old_until: None`: at the record's
    /// `updated_at`) or at `old_until`, whichever of that and an earlier end they already
    /// had comes first; they are kept, ended, so that they read as replaced, not unknown.
    async fn rotate_credential(
        &self,
        credential: &Credential,
        new_secrets: &[NewSecret],
        old_until: Option<OffsetDateTime>,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Until when the secrets a rotation replaced keep working, if any still works at
    /// `now` (a rotation's grace period).
    async fn previous_secrets_until(
        &self,
        credential: &CredentialId,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError>;
}

/// An organization's IP access rules.
///
/// Each of the three rule writes takes `seen`, the organization's rules as read (by
/// [`RuleStore::ip_rules`], in any order) when the change was judged: if a rule has been
/// added, changed or removed since, nothing is written ([`Conflict::Version`](crate::error::Conflict::Version)), so a
/// change judged against the rules (the lockout guard) is applied to those rules only.
/// Changes to one organization's rules are applied one at a time.
#[async_trait]
pub trait RuleStore: Send + Sync {
    /// An organization's IP access rules, oldest first.
    async fn ip_rules(&self, org: &OrganizationId) -> Result<Vec<IpRule>, StoreError>;

    /// Adds a rule unless the organization already has `max_rules`
    /// ([`Conflict::RuleLimit`](crate::error::Conflict::RuleLimit)).
    async fn insert_ip_rule(
        &self,
        rule: &IpRule,
        max_rules: usize,
        seen: &[IpRule],
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Changes a rule's range, kind or description, if the organization's rules are still
    /// `seen` and the rule's version still `rule.version` (the version it was read at);
    /// otherwise nothing is written and the answer is [`Conflict::Version`](crate::error::Conflict::Version).
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
}

/// An organization's custom roles.
#[async_trait]
pub trait RoleStore: Send + Sync {
    /// An organization's custom roles, by name.
    async fn roles(&self, org: &OrganizationId) -> Result<Vec<CustomRole>, StoreError>;

    /// Adds a custom role; a taken name is [`Conflict::Unique`](crate::error::Conflict::Unique).
    async fn insert_role(&self, role: &CustomRole, event: &AuditEvent) -> Result<(), StoreError>;
}

/// What the verification path records in batches, and the per-minute counts it reads back.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Records when and from where credentials were last used; a use older than the one
    /// stored changes nothing.
    async fn record_credential_uses(&self, uses: &[CredentialUse]) -> Result<(), StoreError>;

    /// Records when rules last decided a request, and when they last refused one; an older
    /// time changes nothing.
    async fn record_rule_matches(&self, matches: &[RuleMatch]) -> Result<(), StoreError>;

    /// Records when and from where secrets a rotation replaced were last presented (and
    /// refused); an older time changes nothing.
    async fn record_old_secret_uses(&self, uses: &[CredentialUse]) -> Result<(), StoreError>;

    /// When and from where a secret a rotation replaced was last presented to credential
    /// `id`, if ever.
    async fn old_secret_use(
        &self,
        id: &CredentialId,
    ) -> Result<Option<(OffsetDateTime, Option<std::net::IpAddr>)>, StoreError>;

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

    /// The usage of every credential of `org`, as [`UsageStore::usage`] sums it, per
    /// credential: the organization's overview.
    async fn organization_usage(
        &self,
        org: &OrganizationId,
        from: i64,
        to: i64,
        bucket_minutes: i64,
    ) -> Result<Vec<UsageCount>, StoreError>;

    /// Deletes usage counts of minutes before `before`.
    async fn prune_usage(&self, before: i64) -> Result<(), StoreError>;
}

/// The keys that sign access tokens, and tokens revoked before their expiry.
#[async_trait]
pub trait OAuthStore: Send + Sync {
    /// The signing keys still published, oldest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;

    /// Adds a signing key; a generation already taken is [`Conflict::Unique`](crate::error::Conflict::Unique).
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
}

/// Organization members who log in to the dashboard, and their sessions.
#[async_trait]
pub trait MemberStore: Send + Sync {
    /// Adds an organization member with its audit event; a taken email is
    /// [`Conflict::Unique`](crate::error::Conflict::Unique).
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

    /// The organization's members, by email.
    async fn members(&self, org: &OrganizationId) -> Result<Vec<Member>, StoreError>;

    /// The member's sealed TOTP secret and the last time step accepted, if its second
    /// factor is on.
    async fn member_totp(&self, id: &UserId) -> Result<Option<(String, Option<i64>)>, StoreError>;

    /// Turns member `id`'s second factor on with this sealed secret and these recovery code
    /// digests (replacing any earlier ones), or off with `None` (its codes deleted), with
    /// the audit event.
    async fn set_member_totp(
        &self,
        id: &UserId,
        sealed: Option<&str>,
        recovery_codes: &[LookupDigest],
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Accepts time step `step` for member `id` if it is later than the last one accepted:
    /// true once per step, however many logins race for it.
    async fn use_totp_step(&self, id: &UserId, step: i64) -> Result<bool, StoreError>;

    /// Uses up member `id`'s recovery code with this digest at `at`: true the first time.
    async fn use_recovery_code(
        &self,
        id: &UserId,
        digest: &LookupDigest,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// How many of member `id`'s recovery codes are unused.
    async fn recovery_codes_left(&self, id: &UserId) -> Result<i64, StoreError>;

    /// The member `id` of `org`.
    async fn member(&self, org: &OrganizationId, id: &UserId)
    -> Result<Option<Member>, StoreError>;

    /// Gives member `id` of `org` the role `role`, with the audit event. An unknown member
    /// is [`StoreError::NotFound`]; a change that would leave the organization without an
    /// owner is [`Conflict::LastOwner`](crate::error::Conflict::LastOwner) and changes
    /// nothing, however many such changes run at once.
    async fn set_member_role(
        &self,
        org: &OrganizationId,
        id: &UserId,
        role: MemberRole,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Removes member `id` of `org` and ends its sessions, with the audit event; errors as
    /// for [`MemberStore::set_member_role`].
    async fn delete_member(
        &self,
        org: &OrganizationId,
        id: &UserId,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Stores an invitation with its audit event.
    async fn insert_invitation(
        &self,
        invitation: &Invitation,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// The organization's invitations, expired or not, newest first.
    async fn invitations(&self, org: &OrganizationId) -> Result<Vec<Invitation>, StoreError>;

    /// The invitation whose token has this digest, expired or not.
    async fn invitation(&self, digest: &LookupDigest) -> Result<Option<Invitation>, StoreError>;

    /// Withdraws the invitation of `org` with this digest, with the audit event; an unknown
    /// one is [`StoreError::NotFound`].
    async fn delete_invitation(
        &self,
        org: &OrganizationId,
        digest: &LookupDigest,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Uses up the invitation with this digest, if it has not expired by `now`, and adds
    /// `member` with the audit event, in one transaction: an invitation used already, or
    /// expired, is [`StoreError::NotFound`] and adds no one; a taken email is
    /// [`Conflict::Unique`](crate::error::Conflict::Unique) and leaves the invitation.
    async fn accept_invitation(
        &self,
        digest: &LookupDigest,
        now: OffsetDateTime,
        member: &Member,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an audit event on its own (for events that change nothing else).
    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Lists an organization's audit events, newest first.
    async fn list_audit_events(
        &self,
        org: &OrganizationId,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}

/// Webhook endpoints and the outbox of their messages.
///
/// Messages are queued by the store itself: an audit event that carries a notice (see
/// `AuditEvent::notice`) queues one message per enabled endpoint of its organization that
/// hears its action, in the transaction that writes the event.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Adds an endpoint unless the organization already has `max`
    /// ([`Conflict::WebhookLimit`](crate::error::Conflict::WebhookLimit)).
    async fn insert_webhook(
        &self,
        webhook: &Webhook,
        max: usize,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Reads one endpoint of an organization; another organization's reads as none.
    async fn webhook(
        &self,
        org: &OrganizationId,
        id: &WebhookId,
    ) -> Result<Option<Webhook>, StoreError>;

    /// An organization's endpoints, oldest first.
    async fn webhooks(&self, org: &OrganizationId) -> Result<Vec<Webhook>, StoreError>;

    /// Writes a changed endpoint, version-checked as [`CredentialStore::update_credential`].
    /// Its failing streak is the delivery's to write (`finish_deliveries`), not this one's:
    /// it is kept as stored, except that enabling a disabled endpoint clears it.
    async fn update_webhook(&self, webhook: &Webhook, event: &AuditEvent)
    -> Result<(), StoreError>;

    /// Removes an endpoint and its queued messages; an unknown one is
    /// [`StoreError::NotFound`].
    async fn delete_webhook(
        &self,
        org: &OrganizationId,
        id: &WebhookId,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Queues a message for one endpoint, whatever it hears (the test message).
    async fn enqueue_message(
        &self,
        webhook: &Webhook,
        message_id: &MessageId,
        event_type: &str,
        payload: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// An endpoint's messages with their attempts, newest first, before `before` if given.
    async fn deliveries(
        &self,
        org: &OrganizationId,
        webhook: &WebhookId,
        before: Option<&MessageId>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Claims up to `limit` messages due at `now` for enabled endpoints, for `owner` until
    /// `lease_until`: no other node claims them before that, unless the result is written
    /// first. Oldest due first.
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        owner: &str,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;

    /// Writes attempts and what follows each, in one transaction, and marks their
    /// endpoints answering or failing. An attempt whose `lease_owner` no longer holds the
    /// claim (it ran out, and another node took the message) is left out. Returns, for each
    /// endpoint of the results, since when it has been failing; none when it answers.
    async fn finish_deliveries(
        &self,
        results: &[AttemptResult],
    ) -> Result<Vec<(WebhookId, Option<OffsetDateTime>)>, StoreError>;

    /// Deletes delivered and failed messages queued before `before`.
    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<(), StoreError>;
}

/// What the scheduled scans announce: credentials that expire, and rules that refused
/// requests. Each announcement is recorded with its audit event in one transaction that
/// refuses a repeat, so any number of nodes can scan at once and each is sent once.
#[async_trait]
pub trait NoticeStore: Send + Sync {
    /// Credentials not revoked whose notice due at `now` for their current expiry is not
    /// recorded yet, expiring first; at most `limit`. The notice due is `expired` once
    /// `expires_at` has passed, else `expiring_1d` from `one_day` before it, else
    /// `expiring_7d` from `seven_days` before it (the caller's `now` plus a day and a week).
    async fn expiry_candidates(
        &self,
        now: OffsetDateTime,
        one_day: OffsetDateTime,
        seven_days: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Credential>, StoreError>;

    /// Records notice `kind` for the credential's expiry `expires_at`, with its audit
    /// event; one already recorded is [`Conflict::Unique`](crate::error::Conflict::Unique)
    /// and nothing is written.
    async fn record_expiry_notice(
        &self,
        credential: &CredentialId,
        kind: &str,
        expires_at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Rules that refused a request after their last announcement, and not announced since
    /// `quiet_since`.
    async fn blocked_rules(
        &self,
        quiet_since: OffsetDateTime,
    ) -> Result<Vec<BlockedRule>, StoreError>;

    /// Records that `rule`'s refusals were announced at `at`, with the audit event, if its
    /// last announcement is still `seen` (otherwise another node did it:
    /// [`Conflict::Version`](crate::error::Conflict::Version)).
    async fn record_block_notice(
        &self,
        rule: &BlockedRule,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;
}

/// Everything Keyward reads and writes: every aggregate's store, on one database. Every
/// write that changes a credential or an organization takes its audit event and commits
/// both in one transaction.
#[async_trait]
pub trait Store:
    OrganizationStore
    + CredentialStore
    + RuleStore
    + RoleStore
    + UsageStore
    + OAuthStore
    + MemberStore
    + AuditStore
    + WebhookStore
    + NoticeStore
    + 'static
{
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
