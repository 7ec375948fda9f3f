//! What the HTTP server derives once from a cached credential and reuses in every answer
//! about it while it stays cached: the identity headers of an admitting `/v1/authorize`
//! answer, and the credential's members of a valid `/v1/keys/verify` answer. They are
//! kept in the engine's per-identity slot ([`Identity::memo`]), made by the first answer
//! that needs them.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use keyward_engine::Identity;
use keyward_gate::headers::{LIMIT_HEADER, REMAINING_HEADER, RESET_HEADER};

/// Response headers naming the admitted credential, for the API behind the gate.
pub const KEY_ID_HEADER: HeaderName = HeaderName::from_static("x-keyward-key-id");
/// The credential's organization.
pub const ORGANIZATION_HEADER: HeaderName = HeaderName::from_static("x-keyward-organization");
/// `live` or `test`.
pub const ENVIRONMENT_HEADER: HeaderName = HeaderName::from_static("x-keyward-environment");
/// Every scope held, space-separated.
pub const SCOPES_HEADER: HeaderName = HeaderName::from_static("x-keyward-scopes");
/// The end customer's id, when the credential has one.
pub const OWNER_HEADER: HeaderName = HeaderName::from_static("x-keyward-owner-id");

/// The answers kept for one identity.
#[derive(Debug, Default)]
struct Kept {
    headers: OnceLock<HeaderMap>,
    verify_members: OnceLock<Box<str>>,
}

/// `read` applied to what is kept for `identity`, or to a fresh set when the slot holds
/// something else (then nothing is kept).
fn with_kept<R>(identity: &Identity, read: impl FnOnce(&Kept) -> R) -> R {
    match identity.memo().get_or_init(Kept::default) {
        Some(kept) => read(kept),
        None => read(&Kept::default()),
    }
}

/// The headers of an answer admitting `identity`: its identity (`X-Keyward-Key-Id`,
/// `-Organization`, `-Environment`, `-Scopes`, and `-Owner-Id` when it has one), then the
/// three `RateLimit-*` names, whose values each answer fills in. An answer clones the map,
/// so its names are hashed once per cache fill, not once per request. A value a header
/// cannot carry is left out.
pub fn admitting_headers(identity: &Identity) -> HeaderMap {
    with_kept(identity, |kept| {
        kept.headers
            .get_or_init(|| identity_headers(identity))
            .clone()
    })
}

fn identity_headers(identity: &Identity) -> HeaderMap {
    let credential = &identity.credential;
    // Room for the request id the middleware adds too.
    let mut headers = HeaderMap::with_capacity(10);
    let mut put = |name: HeaderName, text: Option<&str>| {
        if let Some(value) = text.and_then(|text| HeaderValue::from_str(text).ok()) {
            headers.insert(name, value);
        }
    };
    put(KEY_ID_HEADER, Some(credential.id.as_str()));
    put(
        ORGANIZATION_HEADER,
        Some(credential.organization_id.as_str()),
    );
    put(ENVIRONMENT_HEADER, Some(credential.environment.as_str()));
    put(SCOPES_HEADER, Some(identity.scopes_text()));
    put(OWNER_HEADER, credential.settings.owner_id.as_deref());
    for name in [LIMIT_HEADER, REMAINING_HEADER, RESET_HEADER] {
        headers.insert(name, HeaderValue::from_static("0"));
    }
    headers
}

/// `make`'s text of `identity`'s members in a valid verify answer, made once per cache
/// fill, handed to `write`.
pub fn with_verify_members<R>(
    identity: &Identity,
    make: impl FnOnce() -> Box<str>,
    write: impl FnOnce(&str) -> R,
) -> R {
    with_kept(identity, |kept| {
        write(kept.verify_members.get_or_init(make))
    })
}
