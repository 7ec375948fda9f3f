//! Access tokens as a check reads them: JWTs (RFC 9068) whose signature is checked against
//! the published public keys, and whose claims name the credential they were issued to.
//! Signing them, and the private keys that do, are the management side's; the engine only
//! ever holds public keys.
//!
//! - [`AccessTokenClaims`] and [`verify`]: a token's claims, once its header, signature
//!   and claims check out.
//! - [`PublicKeys`]: the published keys of one read of the store, with the JWKS document.
//! - [`KeySource`]: where a [`Verifier`](crate::Verifier) gets the published keys.
//!   [`StoredKeys`] reads them from the store; a node that also signs hands the engine its
//!   signing ring instead, so the two never disagree.
//! - [`KeyCache`]: the one caching rule of both: re-read every `key_refresh_interval`,
//!   at the next scheduled change, and for a key id not known yet at most once a second.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use keyward_store::{OAuthStore, SigningKeyRecord, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The `typ` of an access token's header.
pub const TOKEN_TYPE: &str = "at+jwt";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer.
    pub iss: String,
    /// The credential id.
    pub sub: String,
    /// The organization id (the OAuth client id).
    pub client_id: String,
    /// The API the token is for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// The token's id, for revocation, carrying its generation ([`token_id`]).
    pub jti: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The credential's environment, `live` or `test`.
    pub env: String,
}

impl AccessTokenClaims {
    /// The generation of the credential's tokens this one belongs to ([`token_id`]).
    pub fn generation(&self) -> i64 {
        self.jti
            .rsplit_once('.')
            .and_then(|(_, generation)| generation.parse().ok())
            .unwrap_or(0)
    }
}

/// A fresh token id (`jti`): 128 random bits in base64url, a `.`, and `generation`, the
/// `set_at` (milliseconds since the epoch) of the credential's token cutoff when the token
/// was minted, or 0 when it had none. A cutoff set later ends the token; one that was
/// already in force does not. A token id without a generation reads as 0.
pub fn token_id(generation: i64) -> String {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    keyward_core::secret::fill_random(&mut bytes);
    let mut id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    id.push('.');
    id.push_str(&generation.to_string());
    id
}

/// Which access tokens a check accepts, and how often it re-reads the published keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    /// The `iss` a token must name: this deployment's public URL.
    pub issuer: String,
    /// The `aud` a token must name: the API the tokens are for.
    pub audience: String,
    /// Clock skew tolerated on `exp`.
    pub leeway: Duration,
    /// How often a node re-reads the published keys.
    pub key_refresh_interval: Duration,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".to_owned(),
            audience: "keyward".to_owned(),
            leeway: Duration::from_secs(30),
            key_refresh_interval: Duration::from_secs(10),
        }
    }
}

/// The JWS algorithms Keyward signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlgorithm {
    /// ECDSA over P-256 with SHA-256 (the default).
    #[default]
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    Rs256,
}

impl SigningAlgorithm {
    /// The JWS name: `ES256`, `EdDSA` or `RS256`.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::EdDsa => "EdDSA",
            SigningAlgorithm::Rs256 => "RS256",
        }
    }

    /// The algorithm named `name` (as in the configuration and the JWS header).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Es256, Self::EdDsa, Self::Rs256]
            .into_iter()
            .find(|alg| alg.name() == name)
    }

    fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::Es256 => Algorithm::ES256,
            SigningAlgorithm::EdDsa => Algorithm::EdDSA,
            SigningAlgorithm::Rs256 => Algorithm::RS256,
        }
    }
}

/// A key in the JWKS, ready to check signatures.
pub struct PublishedKey {
    /// Its key id.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: SigningAlgorithm,
    decoding: DecodingKey,
}

/// The published keys of one read of the store, and the JWKS document listing them.
pub struct PublicKeys {
    published: Vec<PublishedKey>,
    jwks: Arc<str>,
    /// The next change of what is published at the time of the read (a key starts
    /// signing, or is unpublished): the keys are stale from then on.
    next_change: Option<OffsetDateTime>,
}

impl PublicKeys {
    /// The keys of `records` still published at `now`; one of an unknown algorithm or with
    /// an unreadable public key is left out, with a warning.
    pub fn from_records(records: &[SigningKeyRecord], now: OffsetDateTime) -> Self {
        let mut published = Vec::new();
        let mut jwks = Vec::new();
        for record in records {
            if record.published_until.is_some_and(|until| until < now) {
                continue;
            }
            let Some(algorithm) = SigningAlgorithm::parse(&record.algorithm) else {
                tracing::warn!(kid = %record.kid, "a signing key of an unknown algorithm is skipped");
                continue;
            };
            let jwk = serde_json::from_str::<Value>(&record.public_jwk).ok();
            let Some((mut jwk, decoding)) =
                jwk.and_then(|jwk| decoding_key(&jwk).map(|key| (jwk, key)))
            else {
                tracing::warn!(kid = %record.kid, "an unreadable public signing key is skipped");
                continue;
            };
            jwk["kid"] = json!(record.kid);
            jwk["alg"] = json!(algorithm.name());
            jwk["use"] = json!("sig");
            jwks.push(jwk);
            published.push(PublishedKey {
                kid: record.kid.clone(),
                algorithm,
                decoding,
            });
        }
        let next_change = records
            .iter()
            .flat_map(|k| [Some(k.activates_at), k.published_until])
            .flatten()
            .filter(|t| *t > now)
            .min();
        Self {
            published,
            jwks: json!({ "keys": jwks }).to_string().into(),
            next_change,
        }
    }

    /// The published key `kid`.
    pub fn key(&self, kid: &str) -> Option<&PublishedKey> {
        self.published.iter().find(|key| key.kid == kid)
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Arc<str> {
        self.jwks.clone()
    }

    /// When what is published next changes, as of the read.
    pub fn next_change(&self) -> Option<OffsetDateTime> {
        self.next_change
    }
}

/// The key a JWK describes, for checking signatures.
fn decoding_key(jwk: &Value) -> Option<DecodingKey> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    match field("kty")? {
        "EC" => DecodingKey::from_ec_components(field("x")?, field("y")?).ok(),
        "OKP" => DecodingKey::from_ed_components(field("x")?).ok(),
        "RSA" => DecodingKey::from_rsa_components(field("n")?, field("e")?).ok(),
        _ => None,
    }
}

/// Why a presented token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not a JWS of ours at all: bad shape, header, `typ` or algorithm.
    Malformed,
    /// Signed by no key we publish, or its signature or claims are wrong.
    Invalid,
    /// Signed by an unknown `kid`: the keys may need a fresh read.
    UnknownKey,
    /// Authentic, but expired beyond the leeway.
    Expired(Box<AccessTokenClaims>),
}

/// Whether `presented` has the shape of a compact JWS (three base64url parts).
pub fn looks_like_jwt(presented: &str) -> bool {
    presented.starts_with("eyJ") && presented.bytes().filter(|b| *b == b'.').count() == 2
}

/// Checks a token's header, signature and claims against the published `keys`.
pub fn verify(
    presented: &str,
    keys: &PublicKeys,
    rules: &TokenRules,
) -> Result<AccessTokenClaims, TokenRejection> {
    let header = decode_header(presented).map_err(|_| TokenRejection::Malformed)?;
    let typ_ok = header.typ.as_deref().is_some_and(|typ| {
        typ.eq_ignore_ascii_case(TOKEN_TYPE) || typ.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenRejection::Malformed);
    }
    let kid = header.kid.as_deref().ok_or(TokenRejection::Malformed)?;
    let key = keys.key(kid).ok_or(TokenRejection::UnknownKey)?;
    let algorithm = key.algorithm.jwt();
    if header.alg != algorithm {
        return Err(TokenRejection::Invalid);
    }
    if key.algorithm == SigningAlgorithm::Es256 {
        let signature = presented
            .rsplit('.')
            .next()
            .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
            .ok_or(TokenRejection::Invalid)?;
        if !is_low_s(&signature) {
            // The malleable twin of a token: only the form Keyward issued is accepted.
            return Err(TokenRejection::Invalid);
        }
    }
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&rules.issuer]);
    validation.set_audience(&[&rules.audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = rules.leeway.as_secs();
    match decode::<AccessTokenClaims>(presented, &key.decoding, &validation) {
        Ok(data) => Ok(data.claims),
        Err(error) if matches!(error.kind(), ErrorKind::ExpiredSignature) => {
            // The signature was checked before the claims: an authentic, expired token.
            let claims = jsonwebtoken::dangerous::insecure_decode::<AccessTokenClaims>(presented)
                .map_err(|_| TokenRejection::Invalid)?
                .claims;
            Err(TokenRejection::Expired(Box::new(claims)))
        }
        Err(_) => Err(TokenRejection::Invalid),
    }
}

/// Half the order of the P-256 group, rounded down: the largest `s` of a low-S signature.
pub const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Whether an ES256 signature (`r ‖ s`, 64 bytes) is in low-S form, `s ≤ n/2`. ECDSA is
/// malleable (`n − s` verifies too): an issuer that signs only low-S and a checker that
/// accepts only low-S leave one valid string per token.
pub fn is_low_s(signature: &[u8]) -> bool {
    signature.len() == 64 && signature[32..] <= P256_HALF_ORDER[..]
}

/// Where a check gets the published keys.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The published keys, re-read when the last read is stale.
    async fn public_keys(&self, now: OffsetDateTime) -> Result<Arc<PublicKeys>, StoreError>;

    /// The published keys re-read for a token whose `kid` is not known yet, unless they
    /// were read less than a second ago: made-up key ids cannot make every check read the
    /// store.
    async fn refresh_public_keys(&self, now: OffsetDateTime)
    -> Result<Arc<PublicKeys>, StoreError>;
}

/// One read of the keys, as a [`KeyCache`] keeps it.
pub trait KeyRead: Send + Sync {
    /// When the read was made.
    fn read_at(&self) -> Instant;
    /// When what was read is next due to change: stale from then on.
    fn next_change(&self) -> Option<OffsetDateTime>;
}

/// The shortest time between two reads of the keys forced by unknown key ids.
const MIN_FORCED_REFRESH: Duration = Duration::from_secs(1);

/// The last read of the keys, and the rule of when to read them again: every
/// `refresh_interval`, at the read's next scheduled change, and on demand (a key id not
/// known yet) at most once a second. One read at a time.
pub struct KeyCache<R> {
    state: RwLock<Option<Arc<R>>>,
    reading: tokio::sync::Mutex<()>,
    refresh_interval: Duration,
}

impl<R: KeyRead> KeyCache<R> {
    /// A cache that reads on first use.
    pub fn new(refresh_interval: Duration) -> Self {
        Self {
            state: RwLock::new(None),
            reading: tokio::sync::Mutex::new(()),
            refresh_interval,
        }
    }

    /// The last read; with `fresh_at`, only if it is still fresh at that time.
    fn cached(&self, fresh_at: Option<OffsetDateTime>) -> Option<Arc<R>> {
        let state = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let fresh = |now: OffsetDateTime| {
            state.read_at().elapsed() < self.refresh_interval
                && state.next_change().is_none_or(|change| now < change)
        };
        fresh_at.is_none_or(fresh).then_some(state)
    }

    /// The last read if it is fresh at `now`, else what `read` reads (kept for the next
    /// callers).
    pub async fn current<F, Fut>(&self, now: OffsetDateTime, read: F) -> Result<Arc<R>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, StoreError>>,
    {
        if let Some(state) = self.cached(Some(now)) {
            return Ok(state);
        }
        let _reading = self.reading.lock().await;
        if let Some(state) = self.cached(Some(now)) {
            return Ok(state);
        }
        self.read_and_keep(read).await
    }

    /// What `read` reads, unless the last read is less than a second old.
    pub async fn refresh<F, Fut>(&self, read: F) -> Result<Arc<R>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, StoreError>>,
    {
        let _reading = self.reading.lock().await;
        match self.cached(None) {
            Some(state) if state.read_at().elapsed() < MIN_FORCED_REFRESH => Ok(state),
            _ => self.read_and_keep(read).await,
        }
    }

    /// Forgets the last read: the next caller reads again.
    pub fn clear(&self) {
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    async fn read_and_keep<F, Fut>(&self, read: F) -> Result<Arc<R>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, StoreError>>,
    {
        let state = Arc::new(read().await?);
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Some(state.clone());
        Ok(state)
    }
}

/// A read of the published keys alone.
struct Published {
    keys: Arc<PublicKeys>,
    read_at: Instant,
}

impl KeyRead for Published {
    fn read_at(&self) -> Instant {
        self.read_at
    }

    fn next_change(&self) -> Option<OffsetDateTime> {
        self.keys.next_change()
    }
}

/// The published keys read from the store: the key source of a node that checks tokens
/// but does not sign them (an API with Keyward's tower layer). It never makes, retires or
/// erases a key.
pub struct StoredKeys {
    store: Arc<dyn OAuthStore>,
    cache: KeyCache<Published>,
}

impl StoredKeys {
    /// Keys read from `store`, again every `refresh_interval`.
    pub fn new(store: Arc<dyn OAuthStore>, refresh_interval: Duration) -> Self {
        Self {
            store,
            cache: KeyCache::new(refresh_interval),
        }
    }

    async fn read(&self, now: OffsetDateTime) -> Result<Published, StoreError> {
        let records = self.store.signing_keys().await?;
        Ok(Published {
            keys: Arc::new(PublicKeys::from_records(&records, now)),
            read_at: Instant::now(),
        })
    }
}

#[async_trait]
impl KeySource for StoredKeys {
    async fn public_keys(&self, now: OffsetDateTime) -> Result<Arc<PublicKeys>, StoreError> {
        let read = self.cache.current(now, || self.read(now)).await?;
        Ok(read.keys.clone())
    }

    async fn refresh_public_keys(
        &self,
        now: OffsetDateTime,
    ) -> Result<Arc<PublicKeys>, StoreError> {
        let read = self.cache.refresh(|| self.read(now)).await?;
        Ok(read.keys.clone())
    }
}
