//! Who a valid credential is: what the API behind Keyward learns about its caller.

use std::any::Any;
use std::sync::OnceLock;

use keyward_core::credential::Credential;
use keyward_core::scope::{ScopeIndex, ScopeSet};
use keyward_core::verify::Profile;

use crate::tokens::AccessTokenClaims;

/// A credential that passed a check, with everything its checks and answers read, made
/// once when it is cached and shared by every check of it while it is.
///
/// `repr(C)` keeps the [`Profile`] first, on the cache line of the reference counts that a
/// check touches anyway: a check of a cached credential reads the profile and nothing else
/// of the record.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Identity {
    profile: Profile,
    /// The credential.
    pub credential: Credential,
    /// Its permissions together with its role's scopes.
    pub scopes: ScopeSet,
    /// The scopes as one space-separated text, formatted once per cache fill.
    scopes_text: String,
    /// The access token's claims, when the credential was presented as one.
    pub token: Option<AccessTokenClaims>,
    memo: Memo,
}

impl Identity {
    /// The identity of `credential` holding `scopes`, its profile made with `index`.
    pub fn new(credential: Credential, scopes: ScopeSet, index: Option<&ScopeIndex>) -> Self {
        let profile = Profile::new(&credential, &scopes, index);
        Self {
            profile,
            scopes_text: scopes.to_strings().join(" "),
            credential,
            scopes,
            token: None,
            memo: Memo::default(),
        }
    }

    /// What the decision reads of the credential.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The scopes, space-separated (as in an OAuth `scope`).
    pub fn scopes_text(&self) -> &str {
        &self.scopes_text
    }

    /// The slot where the interface answering for this identity keeps what it derives from
    /// it (the HTTP server: its answer headers), for as long as the identity is cached.
    pub fn memo(&self) -> &Memo {
        &self.memo
    }
}

/// One value derived from an [`Identity`], made by whoever needs it first and kept with
/// the identity: an answer made once per cache fill instead of once per request. The engine
/// never looks inside.
#[derive(Default)]
pub struct Memo(OnceLock<Box<dyn Any + Send + Sync>>);

impl Memo {
    /// The value kept, made by `make` if there is none yet; `None` when a value of another
    /// type was kept first.
    pub fn get_or_init<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(make())).downcast_ref()
    }
}

/// A copy starts empty: what was derived belongs to the original.
impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}
