//! What is stored in place of a secret.
//!
//! Two digests per secret:
//! - the [`LookupDigest`], SHA-256 of the whole secret, under a unique index: it finds the
//!   row in O(1). Unsalted is safe here because every secret carries ≥ 190 random bits, so
//!   no table of guesses can cover it (crates.io and Unkey do the same);
//! - the [`SaltedHash`], SHA-256 over a per-secret 16-byte random salt and the secret, which
//!   is compared in constant time once the row is found.
//!
//! Fast hashes are right for random secrets; argon2 is for human passwords only.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::random::fill_random;

/// Lower-case hexadecimal text of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    text
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// SHA-256 of a whole secret: the key of the store's unique index.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LookupDigest([u8; 32]);

/// A digest's first 8 bytes are already uniformly random: a map hashes those (with its own
/// seed) instead of all 32. Equality still compares all of them.
impl std::hash::Hash for LookupDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(head));
    }
}

impl LookupDigest {
    /// The lookup digest of a presented secret.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Wraps 32 stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for LookupDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LookupDigest({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// A salted SHA-256 of a secret: `SHA-256(salt ‖ secret)`.
///
/// WARNING: the layout (salt first, then the secret's UTF-8 bytes) is what every stored
/// hash was computed with; changing it makes every issued secret fail verification.
///
/// It has no `PartialEq`: its hash can only be compared with [`SaltedHash::matches`], in
/// constant time, so no `==` can creep in and leak through its timing how much of a
/// guess was right.
#[derive(Clone)]
pub struct SaltedHash {
    /// The 16 random bytes drawn for this secret.
    pub salt: [u8; 16],
    /// SHA-256 over the salt and the secret.
    pub hash: HashBytes,
}

/// The 32 bytes of a salted hash: readable (to store them), comparable only in constant
/// time ([`ConstantTimeEq`]), never with `==`.
#[derive(Clone)]
pub struct HashBytes(pub [u8; 32]);

impl ConstantTimeEq for HashBytes {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl SaltedHash {
    /// Hashes a secret with a fresh random salt.
    pub fn new(secret: &str) -> Self {
        let mut salt = [0u8; 16];
        fill_random(&mut salt);
        Self {
            salt,
            hash: Self::compute(&salt, secret),
        }
    }

    /// Whether `secret` is the one hashed here, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        Self::compute(&self.salt, secret).ct_eq(&self.hash).into()
    }

    fn compute(salt: &[u8; 16], secret: &str) -> HashBytes {
        let mut hasher = Sha256::new();
        hasher.update(salt);
        hasher.update(secret.as_bytes());
        HashBytes(hasher.finalize().into())
    }
}

impl fmt::Debug for SaltedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SaltedHash([redacted])")
    }
}

/// Both digests of one secret, as stored.
#[derive(Debug, Clone)]
pub struct SecretDigests {
    /// Finds the row.
    pub lookup: LookupDigest,
    /// Confirms the secret.
    pub salted: SaltedHash,
}

impl SecretDigests {
    /// Computes both digests of a secret.
    pub fn new(secret: &str) -> Self {
        Self {
            lookup: LookupDigest::of(secret),
            salted: SaltedHash::new(secret),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_salted_hash_matches_only_its_secret() {
        let hash = SaltedHash::new("kw_live_secret");
        assert!(hash.matches("kw_live_secret"));
        assert!(!hash.matches("kw_live_secreT"));
        assert!(!hash.matches(""));
    }

    #[test]
    fn two_hashes_of_one_secret_differ_by_their_salt() {
        let a = SaltedHash::new("same");
        let b = SaltedHash::new("same");
        assert_ne!(a.salt, b.salt);
        assert!(!bool::from(a.hash.ct_eq(&b.hash)));
        assert_eq!(LookupDigest::of("same"), LookupDigest::of("same"));
    }

    #[test]
    fn the_lookup_digest_is_plain_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(to_hex(LookupDigest::of("abc").as_bytes()), expected);
    }
}
