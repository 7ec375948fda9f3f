//! The keys that sign access tokens: generated through aws-lc-rs, kept sealed at rest
//! under the deployment's master key, published as a JWKS, and rotated without downtime.
//!
//! A key goes through four states: **published** (in the JWKS, not signing yet, for
//! `publish_lead` after it is made, so every node and every resource server that caches
//! the JWKS knows it before its first token), **signing**, **retired** (a newer key signs;
//! its private half is erased from the store at once, its public half stays published
//! until the last token it signed has expired) and **gone**.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use keyward_store::{SigningKeyRecord, Store, StoreError};
use serde_json::{Value, json};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::oauth::OAuthConfig;
use crate::oauth::token::{self, AccessTokenClaims, TokenRejection};

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

/// The deployment's key-encryption key: seals signing keys at rest (AES-256-GCM, the key
/// id as associated data). Shared by every node of a deployment.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

/// A master key that is not 32 bytes of standard base64.
#[derive(Debug, thiserror::Error)]
#[error("the master key must be 32 bytes in standard base64")]
pub struct BadMasterKey;

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        keyward_core::secret::fill_random(bytes.as_mut());
        Self(bytes)
    }

    /// Reads a master key written by [`MasterKey::to_base64`].
    pub fn from_base64(text: &str) -> Result<Self, BadMasterKey> {
        let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| BadMasterKey)?);
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| BadMasterKey)?;
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// The key as standard base64, for its file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    fn aead(&self) -> LessSafeKey {
        // 32 bytes is always a valid AES-256 key.
        let key = UnboundKey::new(&AES_256_GCM, self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("a 32-byte key"));
        LessSafeKey::new(key)
    }

    fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        keyward_core::secret::fill_random(&mut nonce);
        let mut sealed = Zeroizing::new(plaintext.to_vec());
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut *sealed,
            )
            .map_err(|_| StoreError::Internal("could not seal a signing key".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    fn open(&self, kid: &str, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
        let bytes = STANDARD.decode(sealed).ok()?;
        let (nonce, ciphertext) = bytes.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buffer)
            .ok()?
            .to_vec();
        Some(Zeroizing::new(plain))
    }
}

/// A private key, parsed once, that signs JWS signing inputs.
enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl Signer {
    fn from_pkcs8(alg: SigningAlgorithm, der: &[u8]) -> Option<Self> {
        Some(match alg {
            SigningAlgorithm::Es256 => {
                Signer::Ecdsa(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).ok()?)
            }
            SigningAlgorithm::EdDsa => Signer::Ed25519(Ed25519KeyPair::from_pkcs8(der).ok()?),
            SigningAlgorithm::Rs256 => Signer::Rsa(RsaKeyPair::from_pkcs8(der).ok()?),
        })
    }

    fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let rng = SystemRandom::new();
        match self {
            Signer::Ecdsa(key) => {
                let mut signature = key.sign(&rng, message).ok()?.as_ref().to_vec();
                low_s(&mut signature);
                Some(signature)
            }
            Signer::Ed25519(key) => Some(key.sign(message).as_ref().to_vec()),
            Signer::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .ok()?;
                Some(signature)
            }
        }
    }
}

/// The order of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
/// Half of it, rounded down: the largest `s` of a low-S signature.
const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Turns an ES256 signature (`r ‖ s`, 64 bytes) into its low-S form, `s ≤ n/2`, by
/// replacing `s` with `n − s`: both verify, so an issuer that signs only low-S and a
/// checker that accepts only low-S leave one valid string per token (ECDSA is malleable).
fn low_s(signature: &mut [u8]) {
    let Some(s) = signature.get_mut(32..64) else {
        return;
    };
    if *s > P256_HALF_ORDER[..] {
        let mut borrow = 0u16;
        for i in (0..32).rev() {
            let difference = u16::from(P256_ORDER[i])
                .wrapping_sub(u16::from(s[i]))
                .wrapping_sub(borrow);
            borrow = u16::from(u16::from(P256_ORDER[i]) < u16::from(s[i]) + borrow);
            s[i] = (difference & 0xff) as u8;
        }
    }
}

/// Whether an ES256 signature is in low-S form (see [`low_s`]).
pub fn is_low_s(signature: &[u8]) -> bool {
    signature.len() == 64 && signature[32..] <= P256_HALF_ORDER[..]
}

/// A fresh key pair of `alg`: its PKCS#8 document and its public JWK (without `kid`).
fn generate(alg: SigningAlgorithm) -> Result<(Zeroizing<Vec<u8>>, Value), StoreError> {
    let failed = |_| StoreError::Internal("could not generate a signing key".into());
    let rng = SystemRandom::new();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    match alg {
        SigningAlgorithm::Es256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(failed)?;
            let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                .map_err(|_| failed(aws_lc_rs::error::Unspecified))?;
            // An uncompressed point: 0x04, then x and y of 32 bytes each.
            let point = key.public_key().as_ref();
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
            Ok((Zeroizing::new(doc.as_ref().to_vec()), jwk))
        }
        SigningAlgorithm::EdDsa => {
            // PKCS#8 v1: the form JWK tooling reads back (v2 adds the public key).
            let doc = Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(failed)?;
            let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(doc.as_ref())
                .map_err(|_| failed(aws_lc_rs::error::Unspecified))?;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().as_ref())});
            Ok((Zeroizing::new(doc.as_ref().to_vec()), jwk))
        }
        SigningAlgorithm::Rs256 => {
            use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
            let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let der: Pkcs8V1Der<'_> = key.as_der().map_err(failed)?;
            let public = key.public_key();
            let jwk = json!({
                "kty": "RSA",
                "n": b64(public.modulus().big_endian_without_leading_zero()),
                "e": b64(public.exponent().big_endian_without_leading_zero()),
            });
            Ok((Zeroizing::new(der.as_ref().to_vec()), jwk))
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
    jwk: Value,
}

impl PublishedKey {
    /// The key checking signatures of this key's tokens.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The algorithm as `jsonwebtoken` names it.
    pub fn jwt_algorithm(&self) -> Algorithm {
        self.algorithm.jwt()
    }
}

/// The key that signs now.
pub struct ActiveKey {
    /// Its key id.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: SigningAlgorithm,
    signer: Signer,
}

impl ActiveKey {
    /// The signature of a JWS signing input.
    pub fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        self.signer.sign(message)
    }
}

/// What the ring knew at its last read of the store.
pub struct RingState {
    published: Vec<PublishedKey>,
    /// Keys that may sign, newest first, with when they start.
    signers: Vec<(OffsetDateTime, Arc<ActiveKey>)>,
    jwks: Arc<str>,
    read_at: Instant,
    /// The next scheduled change (a key starts signing, is unpublished, or is due to be
    /// made): the state is stale from then on.
    next_change: Option<OffsetDateTime>,
}

impl RingState {
    /// The published key `kid`.
    pub fn key(&self, kid: &str) -> Option<&PublishedKey> {
        self.published.iter().find(|key| key.kid == kid)
    }

    /// The key that signs at `now`: the newest one already active.
    pub fn signer(&self, now: OffsetDateTime) -> Option<Arc<ActiveKey>> {
        self.signers
            .iter()
            .find(|(from, _)| *from <= now)
            .map(|(_, key)| key.clone())
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Arc<str> {
        self.jwks.clone()
    }
}

/// Why a node neither makes nor retires signing keys.
const MASTER_KEY_MISMATCH: &str = "the master key does not open the stored signing keys: \
     every node (and the CLI) needs the deployment's one master key; this node will not make, \
     retire or sign with keys until it has it";

/// The shortest time between two reads of the keys forced by unknown key ids.
const MIN_FORCED_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The signing keys as this node knows them, re-read from the store every
/// `key_refresh_interval`, and the schedule that makes, retires and drops them.
pub struct KeyRing {
    config: OAuthConfig,
    state: RwLock<Option<Arc<RingState>>>,
    reading: tokio::sync::Mutex<()>,
}

impl KeyRing {
    /// A ring that reads its keys on first use.
    pub fn new(config: OAuthConfig) -> Self {
        Self {
            config,
            state: RwLock::new(None),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The last read state; with `fresh_at`, only if it is still fresh at that time.
    fn cached(&self, fresh_at: Option<OffsetDateTime>) -> Option<Arc<RingState>> {
        let state = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let fresh = |now: OffsetDateTime| {
            state.read_at.elapsed() < self.config.key_refresh_interval
                && state.next_change.is_none_or(|change| now < change)
        };
        fresh_at.is_none_or(fresh).then_some(state)
    }

    /// The keys, re-read if the last read is older than `key_refresh_interval`.
    pub async fn current(
        &self,
        store: &Arc<dyn Store>,
        now: OffsetDateTime,
    ) -> Result<Arc<RingState>, StoreError> {
        if let Some(state) = self.cached(Some(now)) {
            return Ok(state);
        }
        let _reading = self.reading.lock().await;
        if let Some(state) = self.cached(Some(now)) {
            return Ok(state);
        }
        self.reload(store, now).await
    }

    /// Re-reads the keys for a token whose `kid` is not known yet, unless they were read
    /// less than a second ago: made-up key ids cannot make every check read the store.
    pub async fn refresh(
        &self,
        store: &Arc<dyn Store>,
        now: OffsetDateTime,
    ) -> Result<Arc<RingState>, StoreError> {
        let _reading = self.reading.lock().await;
        match self.cached(None) {
            Some(state) if state.read_at.elapsed() < MIN_FORCED_REFRESH => Ok(state),
            _ => self.reload(store, now).await,
        }
    }

    /// Keeps the schedule (a new key every `rotation_interval`, retirement, removal) by
    /// reading the keys every `key_refresh_interval` until the handle is aborted.
    pub fn spawn_schedule(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        clock: Arc<dyn keyward_core::clock::Clock>,
    ) -> tokio::task::JoinHandle<()> {
        let ring = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(ring.config.key_refresh_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(error) = ring.current(&store, clock.now()).await {
                    tracing::warn!(%error, "could not read the signing keys; will retry");
                }
            }
        })
    }

    /// The claims of `presented` if it is an access token signed by one of our keys,
    /// expired or not (the caller decides what expiry means); the keys are re-read once for
    /// a `kid` not known yet. `None` for anything else.
    pub async fn authentic_claims(
        &self,
        store: &Arc<dyn Store>,
        now: OffsetDateTime,
        presented: &str,
    ) -> Result<Option<AccessTokenClaims>, StoreError> {
        let ring = self.current(store, now).await?;
        let verified = match token::verify(presented, &ring, &self.config) {
            Err(TokenRejection::UnknownKey) => {
                let ring = self.refresh(store, now).await?;
                token::verify(presented, &ring, &self.config)
            }
            other => other,
        };
        Ok(match verified {
            Ok(claims) => Some(claims),
            Err(TokenRejection::Expired(claims)) => Some(*claims),
            Err(_) => None,
        })
    }

    /// Makes a new key that starts signing `publish_lead` from now (at once when there is
    /// no key at all).
    pub async fn rotate(
        &self,
        store: &Arc<dyn Store>,
        now: OffsetDateTime,
    ) -> Result<SigningKeyRecord, StoreError> {
        let keys = store.signing_keys().await?;
        if !self.opens_all(&keys) {
            return Err(StoreError::Internal(MASTER_KEY_MISMATCH.into()));
        }
        let record = self.make_key(&keys, now)?;
        store.insert_signing_key(&record).await?;
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(record)
    }

    /// Whether this node's master key opens every sealed key in `keys`.
    fn opens_all(&self, keys: &[SigningKeyRecord]) -> bool {
        keys.iter().all(|key| {
            key.sealed_private_key
                .as_ref()
                .is_none_or(|sealed| self.config.master_key.open(&key.kid, sealed).is_some())
        })
    }

    fn make_key(
        &self,
        existing: &[SigningKeyRecord],
        now: OffsetDateTime,
    ) -> Result<SigningKeyRecord, StoreError> {
        let generation = existing.iter().map(|k| k.generation).max().unwrap_or(0) + 1;
        let algorithm = self.config.algorithm;
        let (pkcs8, jwk) = generate(algorithm)?;
        let mut id = [0u8; 12];
        keyward_core::secret::fill_random(&mut id);
        let kid = format!("kw{generation}-{}", URL_SAFE_NO_PAD.encode(id));
        let lead = if existing.iter().any(|k| k.sealed_private_key.is_some()) {
            self.config.publish_lead
        } else {
            std::time::Duration::ZERO
        };
        Ok(SigningKeyRecord {
            sealed_private_key: Some(self.config.master_key.seal(&kid, &pkcs8)?),
            kid,
            generation,
            algorithm: algorithm.name().to_owned(),
            public_jwk: jwk.to_string(),
            created_at: now,
            activates_at: now + lead,
            retired_at: None,
            published_until: None,
        })
    }

    /// Reads the keys, making the first one, the scheduled next one, and retiring those a
    /// newer key has replaced, as due at `now`.
    async fn reload(
        &self,
        store: &Arc<dyn Store>,
        now: OffsetDateTime,
    ) -> Result<Arc<RingState>, StoreError> {
        let mut keys = store.signing_keys().await?;
        // A node whose master key does not open the stored keys makes and retires nothing:
        // a key it made could not be opened by the others, and retiring theirs would leave
        // no key anyone can sign with.
        let master_key_fits = self.opens_all(&keys);
        if !master_key_fits {
            tracing::error!("{MASTER_KEY_MISMATCH}");
        }
        let newest_made = keys.iter().map(|k| k.created_at).max();
        if master_key_fits
            && newest_made.is_none_or(|made| made + self.config.rotation_interval <= now)
        {
            let record = self.make_key(&keys, now)?;
            match store.insert_signing_key(&record).await {
                // Another node made it first; read what it made.
                Ok(()) | Err(StoreError::Conflict { .. }) => {}
                Err(error) => return Err(error),
            }
            keys = store.signing_keys().await?;
        }
        let active_generation = keys
            .iter()
            .filter(|k| k.activates_at <= now && k.sealed_private_key.is_some())
            .map(|k| k.generation)
            .max();
        if master_key_fits
            && let Some(active) = active_generation
            && keys
                .iter()
                .any(|k| k.generation < active && k.retired_at.is_none())
        {
            let until = now + self.config.token_lifetime + self.config.leeway;
            store.retire_signing_keys(active, now, until).await?;
            store.prune_oauth(now).await?;
            keys = store.signing_keys().await?;
        }
        let state = Arc::new(self.build(&keys, now));
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Some(state.clone());
        Ok(state)
    }

    fn build(&self, keys: &[SigningKeyRecord], now: OffsetDateTime) -> RingState {
        let mut published = Vec::new();
        let mut signers = Vec::new();
        for record in keys {
            if record.published_until.is_some_and(|until| until < now) {
                continue;
            }
            let Some(algorithm) = SigningAlgorithm::parse(&record.algorithm) else {
                tracing::warn!(kid = %record.kid, "a signing key of an unknown algorithm is skipped");
                continue;
            };
            let Some(decoding) = serde_json::from_str::<Value>(&record.public_jwk)
                .ok()
                .and_then(|jwk| decoding_key(&jwk))
            else {
                tracing::warn!(kid = %record.kid, "an unreadable public signing key is skipped");
                continue;
            };
            if let Some(sealed) = &record.sealed_private_key {
                match self
                    .config
                    .master_key
                    .open(&record.kid, sealed)
                    .and_then(|der| Signer::from_pkcs8(algorithm, &der))
                {
                    Some(signer) => signers.push((
                        record.activates_at,
                        Arc::new(ActiveKey {
                            kid: record.kid.clone(),
                            algorithm,
                            signer,
                        }),
                    )),
                    None => tracing::error!(
                        kid = %record.kid,
                        "a signing key cannot be opened with this node's master key; \
                         every node must share one"
                    ),
                }
            }
            let mut jwk = serde_json::from_str::<Value>(&record.public_jwk).unwrap_or_default();
            jwk["kid"] = json!(record.kid);
            jwk["alg"] = json!(algorithm.name());
            jwk["use"] = json!("sig");
            published.push(PublishedKey {
                kid: record.kid.clone(),
                algorithm,
                decoding,
                jwk,
            });
        }
        signers.reverse();
        let next_change = keys
            .iter()
            .flat_map(|k| [Some(k.activates_at), k.published_until])
            .flatten()
            .chain(
                keys.iter()
                    .map(|k| k.created_at)
                    .max()
                    .map(|made| made + self.config.rotation_interval),
            )
            .filter(|t| *t > now)
            .min();
        let jwks = json!({ "keys": published.iter().map(|k| &k.jwk).collect::<Vec<_>>() });
        RingState {
            published,
            signers,
            jwks: jwks.to_string().into(),
            read_at: Instant::now(),
            next_change,
        }
    }
}

fn decoding_key(jwk: &Value) -> Option<DecodingKey> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    match field("kty")? {
        "EC" => DecodingKey::from_ec_components(field("x")?, field("y")?).ok(),
        "OKP" => DecodingKey::from_ed_components(field("x")?).ok(),
        "RSA" => DecodingKey::from_rsa_components(field("n")?, field("e")?).ok(),
        _ => None,
    }
}

/// A fresh random token id (`jti`): 128 bits, base64url.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    keyward_core::secret::fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_master_key_and_kid() {
        let master = MasterKey::generate();
        let sealed = master.seal("kid-1", b"private").unwrap_or_default();
        assert_eq!(
            master.open("kid-1", &sealed).as_deref().map(Vec::as_slice),
            Some(&b"private"[..])
        );
        assert!(
            master.open("kid-2", &sealed).is_none(),
            "the kid is bound in"
        );
        assert!(MasterKey::generate().open("kid-1", &sealed).is_none());
        assert!(!sealed.contains("private"));
    }

    #[test]
    fn every_algorithm_generates_a_key_that_signs() {
        for alg in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Rs256,
        ] {
            let (der, jwk) = generate(alg).unwrap_or_else(|e| panic!("{e}"));
            let signer = Signer::from_pkcs8(alg, &der).unwrap_or_else(|| panic!("{alg:?}"));
            assert!(signer.sign(b"input").is_some(), "{alg:?}");
            assert!(decoding_key(&jwk).is_some(), "{alg:?}: {jwk}");
            assert!(jwk.get("d").is_none(), "no private parameter in {jwk}");
        }
    }

    #[test]
    fn es256_signatures_are_low_s_and_still_verify() {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
        let (der, _) = generate(SigningAlgorithm::Es256).unwrap_or_else(|e| panic!("{e}"));
        let signer =
            Signer::from_pkcs8(SigningAlgorithm::Es256, &der).unwrap_or_else(|| panic!("key"));
        let Signer::Ecdsa(pair) = &signer else {
            panic!("ES256")
        };
        let public = UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref().to_vec(),
        );
        // Random nonces: about half of the raw signatures are high-S; all come out low-S.
        for i in 0..64u32 {
            let message = i.to_be_bytes();
            let signature = signer.sign(&message).unwrap_or_default();
            assert!(is_low_s(&signature), "signature {i}");
            assert!(
                public.verify(&message, &signature).is_ok(),
                "signature {i} verifies"
            );
            // Its high-S twin verifies as ECDSA but is not low-S.
            let mut twin = signature.clone();
            let s: Vec<u8> = twin[32..].to_vec();
            let mut borrow = 0i16;
            for j in (0..32).rev() {
                let mut d = i16::from(P256_ORDER[j]) - i16::from(s[j]) - borrow;
                borrow = i16::from(d < 0);
                if d < 0 {
                    d += 256;
                }
                twin[32 + j] = d as u8;
            }
            assert!(public.verify(&message, &twin).is_ok());
            assert!(!is_low_s(&twin));
        }
    }

    #[test]
    fn a_master_key_round_trips_through_base64() {
        let master = MasterKey::generate();
        let again = MasterKey::from_base64(&master.to_base64()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(master.0.as_ref(), again.0.as_ref());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
