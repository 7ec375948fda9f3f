//! What the store reads and writes besides the domain's own types: secrets to store, a
//! secret found, usage rows, signing keys, revoked tokens, webhook deliveries and the
//! notices the scheduled scans send, and the queries of listings.

use keyward_core::credential::{Credential, DisplayStatus, Environment};
use keyward_core::digest::{SaltedHash, SecretDigests};
use keyward_core::ip_rule::IpRule;
use keyward_core::secret::SecretKind;
use keyward_core::typeid::{
    AuditEventId, CredentialId, IpRuleId, MessageId, OrganizationId, WebhookId,
};
use keyward_core::webhook::Webhook;
use time::OffsetDateTime;

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
    /// Which of the credential's secrets it is.
    pub kind: SecretKind,
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
    /// Only credentials whose id or owner id is this text, or whose name holds it (letters
    /// of ASCII compared without case; `%` and `_` are themselves).
    pub search: Option<String>,
    /// Leave revoked credentials out (when `status` is not `revoked`).
    pub hide_revoked: bool,
    /// Only credentials never used.
    pub unused: bool,
    /// Only credentials that expire after `now` and before this time, soonest first.
    pub expiring_before: Option<OffsetDateTime>,
    /// At most this many.
    pub limit: u32,
    /// The time that decides `expired`.
    pub now: OffsetDateTime,
}

/// Filters and page of an audit log listing: newest first, or, with `after`, the oldest
/// events newer than `after` first (a page back towards the present).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only events of this action, e.g. `key.revoked`; or, ending in `.`, of every action
    /// it begins (`key.`).
    pub action: Option<String>,
    /// Only events by this actor (a credential or member id, `cli`, `keyward`).
    pub actor: Option<String>,
    /// Only events about this object.
    pub target_id: Option<String>,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
    /// Only events older than this one (the cursor of the next page).
    pub before: Option<AuditEventId>,
    /// Only events newer than this one, oldest first (the cursor of the previous page).
    pub after: Option<AuditEventId>,
    /// At most this many.
    pub limit: u32,
}

/// Where a message stands with one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not delivered yet: an attempt is due at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed, or the endpoint is gone.
    Failed,
}

impl DeliveryState {
    /// `pending`, `delivered` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    /// Reads what [`DeliveryState::as_str`] wrote.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// One attempt to deliver a message to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub attempt: i64,
    /// When it was made.
    pub attempted_at: OffsetDateTime,
    /// How long it took, until the answer's head and excerpt or the failure.
    pub duration_ms: i64,
    /// The answer's status code; none when no answer came.
    pub response_status: Option<u16>,
    /// Why it failed without an answer (timeout, refused connection, refused address).
    pub error: Option<String>,
    /// The answer body's first bytes, as text.
    pub response_excerpt: Option<String>,
}

/// A message and its attempts at one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The `webhook-id` every attempt carries.
    pub message_id: MessageId,
    /// The endpoint.
    pub webhook_id: WebhookId,
    /// The event type.
    pub event_type: String,
    /// When the event happened and the message was queued.
    pub created_at: OffsetDateTime,
    /// Where it stands.
    pub state: DeliveryState,
    /// The next attempt, while pending.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The attempts made, oldest first.
    pub attempts: Vec<AttemptRecord>,
}

/// A message claimed for an attempt by one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The `webhook-id`.
    pub message_id: MessageId,
    /// The endpoint, as it is now.
    pub webhook: Webhook,
    /// The event type.
    pub event_type: String,
    /// The body to send: `{"type", "timestamp", "data"}`.
    pub payload: String,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// What follows an attempt for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered: no more attempts.
    Delivered,
    /// Try again at this time.
    RetryAt(OffsetDateTime),
    /// No more attempts: the schedule is spent or the endpoint is gone.
    Failed,
}

/// An attempt's result, written by the node that holds the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// The message.
    pub message_id: MessageId,
    /// The endpoint.
    pub webhook_id: WebhookId,
    /// The node that claimed it: a result of a claim lost meanwhile is not written.
    pub lease_owner: String,
    /// The attempt.
    pub attempt: AttemptRecord,
    /// What follows.
    pub next: NextStep,
}

/// An IP rule that refused a request since its last announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedRule {
    /// The rule.
    pub rule: IpRule,
    /// When it last refused a request.
    pub last_blocked_at: OffsetDateTime,
    /// When that was last announced; none if never.
    pub noticed_at: Option<OffsetDateTime>,
}

/// When an IP rule last decided a request, and when it last refused one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// The rule.
    pub rule: IpRuleId,
    /// Its last decision.
    pub matched_at: OffsetDateTime,
    /// Its last refusal, if it refused one since the last write.
    pub blocked_at: Option<OffsetDateTime>,
}
