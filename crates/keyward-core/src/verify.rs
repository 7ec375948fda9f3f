//! The verification decision: given a credential found by its secret, is this request
//! allowed? Pure and synchronous, so the HTTP endpoints, the tower layer and the
//! management API's own authentication all decide the same way.

use std::fmt;
use std::net::IpAddr;

use crate::clock::to_millis;
use crate::credential::{Credential, Environment, Status, ip_allowed};
use crate::ip_rule::{IpRule, evaluate};
use crate::scope::{Scope, ScopeIndex, ScopeSet};

/// The outcome of a check, with its stable code (docs/api.md lists them).
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
    /// The outcome of a stable code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|outcome| outcome.code() == code)
    }

    /// Every outcome.
    pub const ALL: [Outcome; 12] = [
        Outcome::Valid,
        Outcome::Missing,
        Outcome::Malformed,
        Outcome::NotFound,
        Outcome::Disabled,
        Outcome::Revoked,
        Outcome::Expired,
        Outcome::NotYetValid,
        Outcome::IpDenied,
        Outcome::InsufficientScope,
        Outcome::EnvironmentMismatch,
        Outcome::RateLimited,
    ];

    /// The stable code, e.g. `VALID`.
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

    /// The outcome for a person reading a chart: `Accepted`, `Rate limited`, ….
    pub fn in_words(self) -> &'static str {
        match self {
            Outcome::Valid => "Accepted",
            Outcome::Missing => "No key sent",
            Outcome::Malformed => "Not a key",
            Outcome::NotFound => "Unknown key",
            Outcome::Disabled => "Disabled",
            Outcome::Revoked => "Revoked",
            Outcome::Expired => "Expired",
            Outcome::NotYetValid => "Not yet valid",
            Outcome::IpDenied => "Address refused",
            Outcome::InsufficientScope => "Missing scope",
            Outcome::EnvironmentMismatch => "Wrong environment",
            Outcome::RateLimited => "Rate limited",
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
    /// The same scopes as bits of the [`ScopeIndex`] the credential's [`Profile`] was made
    /// with; `None` compares them one by one.
    pub scope_bits: Option<u128>,
    /// The environment the credential must belong to.
    pub environment: Option<Environment>,
    /// The client's address, checked against the credential's allowlist and the
    /// organization's rules. Unknown (`None`) fails any such restriction: a restricted
    /// credential is never accepted from an address nobody checked.
    pub client_ip: Option<IpAddr>,
    /// Skip the address checks: for a question about a credential itself, not about a
    /// request from somewhere (token introspection).
    pub any_address: bool,
    /// The IP access rules of the credential's organization.
    pub org_rules: &'a [IpRule],
}

/// What the decision reads of a credential, made once when the credential is cached:
/// status, validity window in milliseconds, environment, whether it has an allowlist, and
/// its effective scopes as bits. Small and flat, so a check of a cached credential reads
/// one or two cache lines of it rather than the strings and lists of the whole record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The effective scopes as bits of a [`ScopeIndex`] (meaningful with `indexed`).
    scope_bits: u128,
    /// Milliseconds since the epoch; `i64::MAX` when it never expires.
    expires_at: i64,
    /// Milliseconds since the epoch; `i64::MIN` when valid from the start.
    not_before: i64,
    status: Status,
    environment: Environment,
    /// Whether the credential has an IP allowlist.
    restricted: bool,
    /// Whether `scope_bits` holds the scopes.
    indexed: bool,
}

impl Profile {
    /// The profile of `credential` holding `scopes` (its permissions and its role's), with
    /// the scopes as bits of `index` when there is one.
    pub fn new(credential: &Credential, scopes: &ScopeSet, index: Option<&ScopeIndex>) -> Self {
        let settings = &credential.settings;
        Self {
            scope_bits: index.map_or(0, |index| index.granted(scopes)),
            indexed: index.is_some(),
            expires_at: settings.expires_at.map_or(i64::MAX, to_millis),
            not_before: settings.not_before.map_or(i64::MIN, to_millis),
            status: credential.status,
            environment: credential.environment,
            restricted: !settings.ip_allowlist.is_empty(),
        }
    }
}

/// A credential as the decision sees it: its [`Profile`], and the record and scopes behind it,
/// read only when the profile cannot answer alone (an allowlist, a scope outside the index).
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The compact part.
    pub profile: &'a Profile,
    /// The credential the profile was made of.
    pub credential: &'a Credential,
    /// Its effective scopes (permissions and role).
    pub scopes: &'a ScopeSet,
}

/// Whether an address passes both the credential's allowlist and the organization's rules.
fn address_permitted(allowlist: &[ipnet::IpNet], rules: &[IpRule], ip: Option<IpAddr>) -> bool {
    if allowlist.is_empty() && rules.is_empty() {
        return true;
    }
    ip.is_some_and(|ip| ip_allowed(allowlist, ip) && evaluate(rules, ip).allows())
}

/// Decides a check of a credential whose secret matched, at `now` (milliseconds since the
/// epoch).
///
/// `secret_expires_at` is the end of a rotated-out secret's grace period (milliseconds).
/// Status comes first, then time, then address, environment and scopes: a dead credential
/// never reveals whether the rest would have passed.
pub fn decide(
    subject: Subject<'_>,
    secret_expires_at: Option<i64>,
    requirements: &Requirements<'_>,
    now: i64,
) -> Outcome {
    let profile = subject.profile;
    match profile.status {
        Status::Revoked => return Outcome::Revoked,
        Status::Disabled => return Outcome::Disabled,
        Status::Active => {}
    }
    if profile.expires_at <= now || secret_expires_at.is_some_and(|t| t <= now) {
        return Outcome::Expired;
    }
    if profile.not_before > now {
        return Outcome::NotYetValid;
    }
    if !requirements.any_address
        && (profile.restricted || !requirements.org_rules.is_empty())
        && !address_permitted(
            &subject.credential.settings.ip_allowlist,
            requirements.org_rules,
            requirements.client_ip,
        )
    {
        return Outcome::IpDenied;
    }
    if requirements
        .environment
        .is_some_and(|env| env != profile.environment)
    {
        return Outcome::EnvironmentMismatch;
    }
    let granted = match requirements.scope_bits {
        Some(needed) if profile.indexed => profile.scope_bits & needed == needed,
        _ => requirements
            .scopes
            .iter()
            .all(|scope| subject.scopes.grants(scope)),
    };
    if !granted {
        return Outcome::InsufficientScope;
    }
    Outcome::Valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{CredentialSettings, parse_ip_allowlist};
    use crate::ip_rule::{RuleKind, RulePolicy};
    use crate::scope::ScopeCatalogue;
    use crate::typeid::{CredentialId, IpRuleId, OrganizationId};
    use time::OffsetDateTime;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn credential(settings: CredentialSettings) -> Credential {
        Credential {
            id: CredentialId::generate(),
            organization_id: OrganizationId::generate(),
            environment: Environment::Live,
            settings,
            status: Status::Active,
            prefix: "kw_live_".into(),
            hint: "abcd".into(),
            created_at: NOW,
            created_by: "cli".into(),
            updated_at: NOW,
            revoked_at: None,
            last_used_at: None,
            last_used_ip: None,
            version: 1,
            token_cutoff: None,
            exposed_at: None,
        }
    }

    fn rule(net: &str, kind: RuleKind) -> IpRule {
        IpRule {
            id: IpRuleId::generate(),
            organization_id: OrganizationId::generate(),
            network: RulePolicy::default().parse_network(net).unwrap(),
            kind,
            description: None,
            created_at: NOW,
            created_by: "cli".into(),
            last_matched_at: None,
            version: 1,
        }
    }

    /// Decides with the profile indexed (required bits worked out) and without, and checks
    /// that both agree.
    fn decide_both(
        c: &Credential,
        secret_expires_at: Option<OffsetDateTime>,
        requirements: &Requirements<'_>,
        now: OffsetDateTime,
    ) -> Outcome {
        let scopes = c.settings.permissions.clone();
        let index = ScopeIndex::new(&ScopeCatalogue::default()).unwrap();
        let secret_end = secret_expires_at.map(to_millis);
        let plain = Profile::new(c, &scopes, None);
        let subject = |profile| Subject {
            profile,
            credential: c,
            scopes: &scopes,
        };
        let compared = decide(subject(&plain), secret_end, requirements, to_millis(now));
        let indexed = Profile::new(c, &scopes, Some(&index));
        let with_bits = Requirements {
            scope_bits: index.required(requirements.scopes),
            ..requirements.clone()
        };
        let by_bits = decide(subject(&indexed), secret_end, &with_bits, to_millis(now));
        assert_eq!(compared, by_bits, "the index changes no decision");
        compared
    }

    fn check(c: &Credential, requirements: &Requirements<'_>) -> Outcome {
        decide_both(c, None, requirements, NOW)
    }

    #[test]
    fn status_comes_before_everything_else() {
        let mut c = credential(CredentialSettings {
            expires_at: Some(NOW),
            ..Default::default()
        });
        c.status = Status::Revoked;
        let demanding = Requirements {
            environment: Some(Environment::Test),
            ..Default::default()
        };
        assert_eq!(check(&c, &demanding), Outcome::Revoked);
        c.status = Status::Disabled;
        assert_eq!(check(&c, &demanding), Outcome::Disabled);
        c.status = Status::Active;
        assert_eq!(check(&c, &demanding), Outcome::Expired);
    }

    #[test]
    fn a_rotated_out_secret_expires_at_its_grace_end() {
        let c = credential(CredentialSettings::default());
        assert_eq!(
            decide_both(&c, Some(NOW), &Requirements::default(), NOW),
            Outcome::Expired
        );
        assert_eq!(
            decide_both(
                &c,
                Some(NOW + time::Duration::SECOND),
                &Requirements::default(),
                NOW
            ),
            Outcome::Valid
        );
    }

    #[test]
    fn environment_and_scopes_are_checked_after_the_address() {
        let catalogue = ScopeCatalogue::default();
        let c = credential(CredentialSettings {
            permissions: catalogue.parse_set(&["dns:*"]).unwrap(),
            ..Default::default()
        });
        let dns_write = [Scope::exact("dns", "write")];
        let keys_read = [Scope::exact("keys", "read")];
        assert_eq!(
            check(
                &c,
                &Requirements {
                    scopes: &dns_write,
                    ..Default::default()
                }
            ),
            Outcome::Valid
        );
        assert_eq!(
            check(
                &c,
                &Requirements {
                    scopes: &keys_read,
                    ..Default::default()
                }
            ),
            Outcome::InsufficientScope
        );
        let test_only = Requirements {
            environment: Some(Environment::Test),
            scopes: &dns_write,
            ..Default::default()
        };
        assert_eq!(check(&c, &test_only), Outcome::EnvironmentMismatch);
    }

    #[test]
    fn the_allowlist_and_the_organization_rules_must_both_pass() {
        let c = credential(CredentialSettings {
            ip_allowlist: parse_ip_allowlist(&["192.0.2.0/24"]).unwrap(),
            ..Default::default()
        });
        let inside: IpAddr = "192.0.2.10".parse().unwrap();
        let outside: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            check(
                &c,
                &Requirements {
                    client_ip: Some(inside),
                    ..Default::default()
                }
            ),
            Outcome::Valid
        );
        assert_eq!(
            check(
                &c,
                &Requirements {
                    client_ip: Some(outside),
                    ..Default::default()
                }
            ),
            Outcome::IpDenied
        );
        let deny = [rule("192.0.2.8/29", RuleKind::Deny)];
        assert_eq!(
            check(
                &c,
                &Requirements {
                    client_ip: Some(inside),
                    org_rules: &deny,
                    ..Default::default()
                }
            ),
            Outcome::IpDenied
        );
        let open = credential(CredentialSettings::default());
        let allow = [rule("198.51.100.0/25", RuleKind::Allow)];
        assert_eq!(
            check(
                &open,
                &Requirements {
                    client_ip: Some(outside),
                    org_rules: &allow,
                    ..Default::default()
                }
            ),
            Outcome::Valid
        );
        assert_eq!(
            check(
                &open,
                &Requirements {
                    client_ip: Some(inside),
                    org_rules: &allow,
                    ..Default::default()
                }
            ),
            Outcome::IpDenied
        );
    }

    #[test]
    fn an_unknown_address_fails_every_restriction_and_only_those() {
        let restricted = credential(CredentialSettings {
            ip_allowlist: parse_ip_allowlist(&["192.0.2.0/24"]).unwrap(),
            ..Default::default()
        });
        assert_eq!(
            check(&restricted, &Requirements::default()),
            Outcome::IpDenied
        );
        let open = credential(CredentialSettings::default());
        assert_eq!(check(&open, &Requirements::default()), Outcome::Valid);
        let deny = [rule("192.0.2.8/29", RuleKind::Deny)];
        assert_eq!(
            check(
                &open,
                &Requirements {
                    org_rules: &deny,
                    ..Default::default()
                }
            ),
            Outcome::IpDenied
        );
    }
}
