//! What the store reads and writes besides the domain's own types: secrets to store, a
//! secret found, usage rows, signing keys, revoked tokens, and the queries of listings.

use keyward_core::credential::{Credential, DisplayStatus, Environment};
use keyward_core::digest::{SaltedHash, SecretDigests};
use keyward_core::secret::SecretKind;
use keyward_core::typeid::{AuditEventId, CredentialId, OrganizationId};
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
