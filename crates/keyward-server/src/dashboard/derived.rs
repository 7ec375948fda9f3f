//! [`Derived`]: a value derived from a session cookie (a CSRF token, a submission mark),
//! compared with what a request presents only in constant time.

use keyward_core::digest::to_hex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A value derived from a session cookie instead of stored beside it (a CSRF token, a
/// submission mark), in hex. It has no `PartialEq`: what a request presents is compared
/// with it only by [`Derived::matches`], in constant time.
#[derive(Clone)]
pub struct Derived(String);

impl Derived {
    /// SHA-256 over `label` and `parts`.
    pub fn new(label: &[u8], parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(label);
        for part in parts {
            hasher.update(part);
        }
        Self(to_hex(&hasher.finalize()))
    }

    /// Whether `presented` is this value, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Written into the page (a hidden field, a header a script sends).
impl std::fmt::Display for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived(..)")
    }
}
