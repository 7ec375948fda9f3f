//! Access tokens as the engine checks them (`tokens::verify`): header, signature and
//! claims, against published keys that never change here.
//!
//! Input: the first byte chooses what the rest is (its value modulo 3, so the inputs in
//! `corpus/access_token` start with `0`, `1` or `2`):
//! - `0`: a presented token, read lossily as UTF-8;
//! - `1`: a header and claims, JSON, separated by the first line break, signed here with
//!   the fixed Ed25519 key, so that arbitrary claims reach the checks behind the signature;
//! - `2`: the same, signed with the fixed P-256 key in low-S form as Keyward signs, and
//!   checked again in its high-S twin.

#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward_engine::tokens::{
    AccessTokenClaims, P256_HALF_ORDER, PublicKeys, TokenRejection, TokenRules, verify,
};
use keyward_store::SigningKeyRecord;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use time::OffsetDateTime;

/// The Ed25519 private key (RFC 8032's 32 bytes). The tokens in `corpus/access_token` are
/// signed with it, and with the P-256 key below.
const EDDSA_KEY: &[u8; 32] = b"keyward fuzz target: eddsa key..";
/// The P-256 key's private scalar, big-endian (below the group order, as it starts with a
/// byte under 0xff).
const ES256_SCALAR: &[u8; 32] = b"keyward fuzz target: es256 key..";
/// The order of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

struct Keys {
    eddsa: Ed25519KeyPair,
    es256: EcdsaKeyPair,
    published: PublicKeys,
    rules: TokenRules,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let eddsa = Ed25519KeyPair::from_seed_unchecked(EDDSA_KEY).expect("a 32-byte key");
    // RFC 5915 ECPrivateKey: version 1, the scalar, and the curve (prime256v1); the public
    // key is derived from the scalar.
    let mut der = vec![0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20];
    der.extend_from_slice(ES256_SCALAR);
    der.extend_from_slice(&[
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ]);
    let es256 = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
        .expect("a P-256 scalar");
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let point = es256.public_key().as_ref();
    let record = |kid: &str, algorithm: &str, jwk: serde_json::Value| SigningKeyRecord {
        kid: kid.to_owned(),
        generation: 1,
        algorithm: algorithm.to_owned(),
        public_jwk: jwk.to_string(),
        sealed_private_key: None,
        created_at: OffsetDateTime::UNIX_EPOCH,
        activates_at: OffsetDateTime::UNIX_EPOCH,
        retired_at: None,
        published_until: None,
    };
    let records = [
        record(
            "fuzz-eddsa",
            "EdDSA",
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(eddsa.public_key().as_ref())}),
        ),
        record(
            "fuzz-es256",
            "ES256",
            json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
        ),
    ];
    let published = PublicKeys::from_records(&records, OffsetDateTime::now_utc());
    assert!(published.key("fuzz-eddsa").is_some() && published.key("fuzz-es256").is_some());
    Keys {
        eddsa,
        es256,
        published,
        rules: TokenRules {
            issuer: "https://keyward.example".to_owned(),
            audience: "keyward".to_owned(),
            leeway: Duration::from_secs(30),
            key_refresh_interval: Duration::from_secs(10),
        },
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = &*KEYS;
    match mode % 3 {
        0 => {
            check(&String::from_utf8_lossy(rest), None);
        }
        1 => {
            let (signing_input, claims) = signing_input(rest);
            let signature = keys.eddsa.sign(signing_input.as_bytes());
            check(&signed(&signing_input, signature.as_ref()), Some(claims));
        }
        _ => {
            let (signing_input, claims) = signing_input(rest);
            let signature = keys
                .es256
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .expect("signing cannot fail");
            let (low, high) = low_and_high_s(signature.as_ref());
            let accepted = check(&signed(&signing_input, &low), Some(claims));
            // ECDSA is malleable: the twin verifies mathematically, and must still be
            // refused, so that a token has one valid string.
            let twin = verify(&signed(&signing_input, &high), &keys.published, &keys.rules);
            assert!(
                matches!(
                    twin,
                    Err(TokenRejection::Malformed
                        | TokenRejection::UnknownKey
                        | TokenRejection::Invalid)
                ),
                "{twin:?}"
            );
            if accepted {
                assert_eq!(twin, Err(TokenRejection::Invalid));
            }
        }
    }
});

/// `base64url(header) "." base64url(claims)` of `header\nclaims`, and the claims.
fn signing_input(rest: &[u8]) -> (String, &[u8]) {
    let (header, claims) = match rest.iter().position(|b| *b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    (input, claims)
}

fn signed(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// An ES256 signature (`r ‖ s`) in its two forms: `s ≤ n/2`, and `n − s`.
fn low_and_high_s(signature: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut twin = signature.to_vec();
    let s = &signature[32..64];
    let mut borrow = 0u16;
    for i in (0..32).rev() {
        let (n, s) = (u16::from(P256_ORDER[i]), u16::from(s[i]) + borrow);
        twin[32 + i] = (n.wrapping_sub(s) & 0xff) as u8;
        borrow = u16::from(n < s);
    }
    if s <= &P256_HALF_ORDER[..] {
        (signature.to_vec(), twin)
    } else {
        (twin, signature.to_vec())
    }
}

/// Checks `token`, which was signed over `claims` when they are given, and says whether it
/// was accepted (valid, or authentic but expired).
///
/// An accepted token names this deployment as issuer and audience and has not expired
/// beyond the leeway; an expired one has; an authentic one carries exactly the claims
/// signed.
fn check(token: &str, claims: Option<&[u8]>) -> bool {
    let keys = &*KEYS;
    let before = OffsetDateTime::now_utc().unix_timestamp();
    let verified = verify(token, &keys.published, &keys.rules);
    let after = OffsetDateTime::now_utc().unix_timestamp();
    let leeway = keys.rules.leeway.as_secs() as i64;
    let authentic = match &verified {
        Ok(accepted) => {
            assert_eq!(accepted.iss, keys.rules.issuer);
            assert_eq!(accepted.aud, keys.rules.audience);
            assert!(accepted.exp >= before - leeway, "{accepted:?}");
            accepted
        }
        Err(TokenRejection::Expired(expired)) => {
            assert!(expired.exp < after, "{expired:?}");
            expired.as_ref()
        }
        Err(_) => return false,
    };
    let _ = authentic.generation();
    if let Some(claims) = claims {
        let signed: AccessTokenClaims =
            serde_json::from_slice(claims).expect("accepted claims are the claims signed");
        assert_eq!(&signed, authentic);
    }
    true
}
