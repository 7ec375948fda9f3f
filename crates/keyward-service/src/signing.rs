//! The keys that sign access tokens: generated through aws-lc-rs, kept sealed at rest
//! under the deployment's master key, published as a JWKS, and rotated without downtime.
//!
//! A key goes through four states: **published** (in the JWKS, not signing yet, for
//! `publish_lead` after it is made, so every node and every resource server that caches
//! the JWKS knows it before its first token), **signing**, **retired** (a newer key signs;
//! its private half is erased from the store at once, its public half stays published
//! until the last token it signed has expired) and **gone**.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyward_core::clock::Clock;
use keyward_engine::tokens::{
    KeyCache, KeyRead, KeySource, P256_HALF_ORDER, PublicKeys, SigningAlgorithm, TokenRules,
};
use keyward_store::{OAuthStore, SigningKeyRecord, StoreError};
use serde_json::{Value, json};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// How access tokens are signed: how long a token lives, and how signing keys are made,
/// sealed and rotated. Whom tokens name, and the leeway on their expiry, are the engine's
/// [`TokenRules`], which a node checks its own tokens by too.
#[derive(Debug, Clone)]
pub struct SigningConfig {
    /// How long an access token lives.
    pub token_lifetime: Duration,
    /// The algorithm of keys made from now on.
    pub algorithm: SigningAlgorithm,
    /// How often a new signing key is made.
    pub rotation_interval: Duration,
    /// How long a new key is published before it signs: longer than clients cache the JWKS
    /// plus the rules' `key_refresh_interval`, so every cache has it before its first token.
    pub publish_lead: Duration,
    /// Seals signing keys at rest.
    pub master_key: MasterKey,
}

impl Default for SigningConfig {
    /// The defaults, with a random master key that lives as long as the process (the
    /// binary always sets one from its file or environment).
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(3600),
            algorithm: SigningAlgorithm::Es256,
            rotation_interval: Duration::from_secs(30 * 24 * 3600),
            publish_lead: Duration::from_secs(600),
            master_key: MasterKey::generate(),
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

    pub(crate) fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<String, StoreError> {
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

    pub(crate) fn open(&self, kid: &str, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
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
                to_low_s(&mut signature);
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
/// Turns an ES256 signature into its low-S form (which the engine checks: ECDSA is malleable, and a token must have one valid string) by replacing `s` with
/// `n − s` when it is high.
fn to_low_s(signature: &mut [u8]) {
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
    /// The published keys, for checking tokens and for the JWKS.
    public: Arc<PublicKeys>,
    /// Keys that may sign, newest first, with when they start.
    signers: Vec<(OffsetDateTime, Arc<ActiveKey>)>,
    read_at: Instant,
    /// The next scheduled change (a key starts signing, is unpublished, or is due to be
    /// made): the state is stale from then on.
    next_change: Option<OffsetDateTime>,
}

impl RingState {
    /// The key that signs at `now`: the newest one already active.
    pub fn signer(&self, now: OffsetDateTime) -> Option<Arc<ActiveKey>> {
        self.signers
            .iter()
            .find(|(from, _)| *from <= now)
            .map(|(_, key)| key.clone())
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Arc<str> {
        self.public.jwks()
    }
}

impl KeyRead for RingState {
    fn read_at(&self) -> Instant {
        self.read_at
    }

    fn next_change(&self) -> Option<OffsetDateTime> {
        self.next_change
    }
}

/// Why a node neither makes nor retires signing keys.
const MASTER_KEY_MISMATCH: &str = "the master key does not open the stored signing keys: \
     every node (and the CLI) needs the deployment's one master key; this node will not make, \
     retire or sign with keys until it has it";

/// The signing keys as this node knows them, re-read from the store every
/// `key_refresh_interval`, and the schedule that makes, retires and drops them. It is
/// also the engine's source of published keys on a node that signs, so what this node
/// signs with and what it accepts are one read of the store.
pub struct KeyRing {
    config: SigningConfig,
    rules: TokenRules,
    store: Arc<dyn OAuthStore>,
    cache: KeyCache<RingState>,
}

impl KeyRing {
    /// A ring over `store` that reads its keys on first use, signing as `config` says
    /// tokens that `rules` accept.
    pub fn new(config: SigningConfig, rules: TokenRules, store: Arc<dyn OAuthStore>) -> Self {
        Self {
            cache: KeyCache::new(rules.key_refresh_interval),
            config,
            rules,
            store,
        }
    }

    /// The keys, re-read if the last read is older than `key_refresh_interval` or a
    /// scheduled change has come; a read makes and retires keys as the schedule says.
    pub async fn current(&self, now: OffsetDateTime) -> Result<Arc<RingState>, StoreError> {
        self.cache.current(now, || self.reload(now)).await
    }

    /// Keeps the schedule (a new key every `rotation_interval`, retirement, removal) by
    /// reading the keys every `key_refresh_interval` until the handle is aborted.
    pub fn spawn_schedule(self: &Arc<Self>, clock: Arc<dyn Clock>) -> tokio::task::JoinHandle<()> {
        let ring = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(ring.rules.key_refresh_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(error) = ring.current(clock.now()).await {
                    tracing::warn!(%error, "could not read the signing keys; will retry");
                }
            }
        })
    }

    /// Makes a new key that starts signing `publish_lead` from now (at once when there is
    /// no key at all).
    pub async fn rotate(&self, now: OffsetDateTime) -> Result<SigningKeyRecord, StoreError> {
        let keys = self.store.signing_keys().await?;
        if !self.opens_all(&keys) {
            return Err(StoreError::Internal(MASTER_KEY_MISMATCH.into()));
        }
        let record = self.make_key(&keys, now)?;
        self.store.insert_signing_key(&record).await?;
        self.cache.clear();
        Ok(record)
    }

    /// The keys as stored, published or not yet, oldest first.
    pub async fn records(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.store.signing_keys().await
    }

    /// How the ring signs.
    pub fn config(&self) -> &SigningConfig {
        &self.config
    }

    /// Which tokens the ring's tokens are checked by: whom they name.
    pub fn rules(&self) -> &TokenRules {
        &self.rules
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
    async fn reload(&self, now: OffsetDateTime) -> Result<RingState, StoreError> {
        let store = &self.store;
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
                Ok(()) | Err(StoreError::Conflict(_)) => {}
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
            let until = now + self.config.token_lifetime + self.rules.leeway;
            store.retire_signing_keys(active, now, until).await?;
            store.prune_oauth(now).await?;
            keys = store.signing_keys().await?;
        }
        Ok(self.build(&keys, now))
    }

    fn build(&self, keys: &[SigningKeyRecord], now: OffsetDateTime) -> RingState {
        let public = Arc::new(PublicKeys::from_records(keys, now));
        let mut signers = Vec::new();
        // A key signs only if it is published: the keys that check its tokens must exist.
        for record in keys.iter().filter(|k| public.key(&k.kid).is_some()) {
            let (Some(sealed), Some(algorithm)) = (
                &record.sealed_private_key,
                SigningAlgorithm::parse(&record.algorithm),
            ) else {
                continue;
            };
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
        signers.reverse();
        let next_made = keys
            .iter()
            .map(|k| k.created_at)
            .max()
            .map(|made| made + self.config.rotation_interval)
            .filter(|t| *t > now);
        let next_change = public.next_change().into_iter().chain(next_made).min();
        RingState {
            public,
            signers,
            read_at: Instant::now(),
            next_change,
        }
    }
}

#[async_trait]
impl KeySource for KeyRing {
    async fn public_keys(&self, now: OffsetDateTime) -> Result<Arc<PublicKeys>, StoreError> {
        Ok(self.current(now).await?.public.clone())
    }

    async fn refresh_public_keys(
        &self,
        now: OffsetDateTime,
    ) -> Result<Arc<PublicKeys>, StoreError> {
        let ring = self.cache.refresh(|| self.reload(now)).await?;
        Ok(ring.public.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_engine::tokens::is_low_s;

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
            let record = SigningKeyRecord {
                kid: "k".into(),
                generation: 1,
                algorithm: alg.name().into(),
                public_jwk: jwk.to_string(),
                sealed_private_key: None,
                created_at: OffsetDateTime::UNIX_EPOCH,
                activates_at: OffsetDateTime::UNIX_EPOCH,
                retired_at: None,
                published_until: None,
            };
            let published = PublicKeys::from_records(&[record], OffsetDateTime::UNIX_EPOCH);
            assert!(published.key("k").is_some(), "{alg:?}: {jwk}");
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
    fn high_s_signatures_become_low_s_and_low_ones_stay() {
        let mut high = [0u8; 64];
        high[32..].copy_from_slice(&P256_ORDER);
        high[63] -= 1; // n − 1: the highest s
        assert!(!is_low_s(&high));
        to_low_s(&mut high);
        assert!(is_low_s(&high));
        assert_eq!(high[63], 1, "n − (n − 1) = 1");
        let mut low = [0u8; 64];
        low[32..].copy_from_slice(&P256_HALF_ORDER);
        to_low_s(&mut low);
        assert_eq!(low[32..], P256_HALF_ORDER[..], "the largest low s stays");
        assert!(!is_low_s(&low[..63]), "the wrong length is not a signature");
    }

    #[test]
    fn a_master_key_round_trips_through_base64() {
        let master = MasterKey::generate();
        let again = MasterKey::from_base64(&master.to_base64()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(master.0.as_ref(), again.0.as_ref());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
