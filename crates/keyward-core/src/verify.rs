//! The verification decision: given a credential found by its secret, is this request
//! allowed? Pure and synchronous, so the HTTP endpoints, the tower layer and the
//! management API's own authentication all decide the same way.

use std::fmt;
use std::net::IpAddr;

use time::OffsetDateTime;

use crate::credential::{Credential, Environment, Status, ip_allowed};
use crate::scope::{Scope, ScopeSet};

/// The outcome of a check, with the stable code of SPEC R-AUTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Allowed.
    Valid,
    /// No credential was presented.
    Missing,
    /// Something was presented but it is not a well-formed credential (bad shape or checksum).
    Malformed,
    /// Well-formed, but no such credential exists.
    NotFound,
    /// The credential is disabled.
    Disabled,
    /// The credential, or this secret of it, is revoked.
    Revoked,
    /// The credential, or this secret after a rotation's grace period, has expired.
    Expired,
    /// The credential's `not_before` lies in the future.
    NotYetValid,
    /// The client address is not allowed.
    IpDenied,
    /// The credential lacks a required scope.
    InsufficientScope,
    /// The credential belongs to the other environment.
    EnvironmentMismatch,
    /// The credential's rate limit is exhausted.
    RateLimited,
}

impl Outcome {
    /// The stable code, e.g. `NOT_FOUND`.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Valid => "VALID",
            Outcome::Missing => "MISSING",
            Outcome::Malformed => "MALFORMED",
            Outcome::NotFound => "NOT_FOUND",
            Outcome::Disabled => "DISABLED",
            Outcome::Revoked => "REVOKED",
            Outcome::Expired => "EXPIRED",
            Outcome::NotYetValid => "NOT_YET_VALID",
            Outcome::IpDenied => "IP_DENIED",
            Outcome::InsufficientScope => "INSUFFICIENT_SCOPE",
            Outcome::EnvironmentMismatch => "ENVIRONMENT_MISMATCH",
            Outcome::RateLimited => "RATE_LIMITED",
        }
    }

    /// Whether the failure is about who the caller is (401) rather than what it may do
    /// (403) or how often (429).
    pub fn is_authentication_failure(self) -> bool {
        matches!(
            self,
            Outcome::Missing
                | Outcome::Malformed
                | Outcome::NotFound
                | Outcome::Disabled
                | Outcome::Revoked
                | Outcome::Expired
                | Outcome::NotYetValid
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What a check demands beyond a live credential.
#[derive(Debug, Clone, Default)]
pub struct Requirements<'a> {
    /// Scopes the credential must all hold.
    pub scopes: &'a [Scope],
    /// The environment the credential must belong to.
    pub environment: Option<Environment>,
    /// The client's address, checked against the credential's allowlist.
    pub client_ip: Option<IpAddr>,
}

/// Decides a check of a credential whose secret matched.
///
/// `secret_expires_at` is the end of a rotated-out secret's grace period; `scopes` are the
/// credential's effective scopes (its permissions and its role's). Status comes first, then
/// time, then address, environment and scopes: a dead credential never reveals whether
/// the rest would have passed.
pub fn decide(
    credential: &Credential,
    secret_expires_at: Option<OffsetDateTime>,
    scopes: &ScopeSet,
    requirements: &Requirements<'_>,
    now: OffsetDateTime,
) -> Outcome {
    match credential.status {
        Status::Revoked => return Outcome::Revoked,
        Status::Disabled => return Outcome::Disabled,
        Status::Active => {}
    }
    let settings = &credential.settings;
    if settings.expires_at.is_some_and(|t| t <= now) || secret_expires_at.is_some_and(|t| t <= now)
    {
        return Outcome::Expired;
    }
    if settings.not_before.is_some_and(|t| t > now) {
        return Outcome::NotYetValid;
    }
    if let Some(ip) = requirements.client_ip
        && !ip_allowed(&settings.ip_allowlist, ip)
    {
        return Outcome::IpDenied;
    }
    if requirements
        .environment
        .is_some_and(|env| env != credential.environment)
    {
        return Outcome::EnvironmentMismatch;
    }
    if !requirements.scopes.iter().all(|s| scopes.grants(s)) {
        return Outcome::InsufficientScope;
    }
    Outcome::Valid
}
