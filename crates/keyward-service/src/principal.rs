//! Who may do what. Every management operation is called with a [`Permit`] for the one
//! [`Permission`] it needs; a principal gets a permit only if its authority grants that
//! permission, so an interface cannot call an operation for a principal that may not
//! make it. Within an operation, [`Authority`] refuses any change that would give a
//! credential more than the principal's own credential holds (no escalation).
//!
//! The HTTP API's principals are credentials, bounded by their scopes; the dashboard's
//! signed-in members (and the API called with their session) are bounded by their role;
//! the CLI on the server's machine acts without bound in an organization
//! ([`Authority::Unlimited`]). What concerns the deployment rather than one
//! organization — making organizations and members, setting passwords, rotating signing
//! keys — takes the [`Operator`], which only the binary makes.

use std::marker::PhantomData;

use keyward_core::audit::Actor;
use keyward_core::credential::{Credential, Environment};
use keyward_core::member::{MEMBERS_RESOURCE, MemberRole};
use keyward_core::scope::{Scope, ScopeSet};
use keyward_core::typeid::OrganizationId;
use keyward_engine::{Identity, RateLimits};

use crate::error::{Forbidden, ServiceError};

/// Who asks the service to act.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    /// The organization it acts in: the only one whose objects it sees.
    pub organization: &'a OrganizationId,
    /// How the audit log records it.
    pub actor: &'a Actor,
    /// How far it may reach.
    pub authority: Authority<'a>,
}

/// How far a principal may reach.
#[derive(Debug, Clone, Copy)]
pub enum Authority<'a> {
    /// The operator on the machine (CLI, first run).
    Unlimited,
    /// A signed-in member, bounded by its role. Within what the role allows, a member is not
    /// bounded by scopes: a developer may issue a credential holding every scope.
    Member(MemberRole),
    /// A caller of the API, bounded by its credential.
    Credential(&'a Identity),
}

/// The operator of the deployment: the CLI on the server's machine and the first run. It
/// acts in the audit log as `cli`, in any organization.
#[derive(Debug, Clone)]
pub struct Operator {
    actor: Actor,
}

impl Operator {
    /// The operator. Only the binary makes one: an interface facing clients acts for a
    /// principal of an organization instead.
    pub fn new() -> Self {
        Self {
            actor: Actor::cli(),
        }
    }

    /// How the audit log records the operator.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The operator acting in `organization`, without bound.
    pub fn in_organization<'a>(&'a self, organization: &'a OrganizationId) -> Principal<'a> {
        Principal {
            organization,
            actor: &self.actor,
            authority: Authority::Unlimited,
        }
    }
}

impl Default for Operator {
    fn default() -> Self {
        Self::new()
    }
}

/// A permission of the management API, and the scope a credential needs for it.
pub trait Permission {
    /// The scope's resource, e.g. `keys`.
    const RESOURCE: &'static str;
    /// The scope's action, e.g. `write`.
    const ACTION: &'static str;
}

macro_rules! permissions {
    ($($(#[$doc:meta])* $name:ident = $resource:literal : $action:literal;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl Permission for $name {
                const RESOURCE: &'static str = $resource;
                const ACTION: &'static str = $action;
            }
        )*
    };
}

permissions! {
    /// Read credentials and their usage (`keys:read`).
    ReadKeys = "keys":"read";
    /// Create, change, disable, enable, revoke and rotate credentials (`keys:write`).
    WriteKeys = "keys":"write";
    /// Read the organization's IP access rules (`ip_rules:read`).
    ReadIpRules = "ip_rules":"read";
    /// Add and change IP access rules (`ip_rules:write`).
    WriteIpRules = "ip_rules":"write";
    /// Remove IP access rules (`ip_rules:delete`).
    DeleteIpRules = "ip_rules":"delete";
    /// Read the organization's roles (`roles:read`).
    ReadRoles = "roles":"read";
    /// Define roles (`roles:write`).
    WriteRoles = "roles":"write";
    /// Read the organization's webhook endpoints and their deliveries (`webhooks:read`).
    ReadWebhooks = "webhooks":"read";
    /// Add, change, remove and test webhook endpoints, and rotate their secrets
    /// (`webhooks:write`).
    WriteWebhooks = "webhooks":"write";
    /// Read the audit log (`audit_log:read`).
    ReadAuditLog = "audit_log":"read";
    /// Ask whether other credentials of the organization may be used: verification and
    /// token introspection (`keys:verify`).
    VerifyKeys = "keys":"verify";
    /// See the organization's members and invitations. No credential holds it.
    ReadMembers = "members":"read";
    /// Invite, change and remove members. No credential holds it.
    ManageMembers = "members":"write";
}

/// Proof that a principal holds permission `P`: the first argument of every operation
/// that needs it.
#[derive(Debug, Clone, Copy)]
pub struct Permit<'a, P> {
    principal: Principal<'a>,
    permission: PhantomData<P>,
}

impl<'a, P> Permit<'a, P> {
    /// The organization acted in.
    pub fn organization(&self) -> &'a OrganizationId {
        self.principal.organization
    }

    /// How the audit log records the principal.
    pub fn actor(&self) -> &'a Actor {
        self.principal.actor
    }

    /// How far the principal may reach.
    pub fn authority(&self) -> Authority<'a> {
        self.principal.authority
    }

    /// The same principal's permit for another permission it holds.
    pub fn permit<Q: Permission>(&self) -> Result<Permit<'a, Q>, ServiceError> {
        self.principal.permit()
    }
}

impl<'a, P> Permit<'a, P> {
    /// A permit the service grants for one operation whose right does not come from the
    /// principal's scopes: a credential revoking itself.
    pub(crate) fn granted(principal: Principal<'a>) -> Self {
        Permit {
            principal,
            permission: PhantomData,
        }
    }
}

impl<'a> Principal<'a> {
    /// Whether the principal holds permission `P` (an interface lists only what it may
    /// do).
    pub fn may<P: Permission>(&self) -> bool {
        self.authority.may::<P>()
    }

    /// A permit for `P`, or [`Forbidden::MissingScope`] naming the scope it needs.
    pub fn permit<P: Permission>(&self) -> Result<Permit<'a, P>, ServiceError> {
        self.authority.require::<P>()?;
        Ok(Permit {
            principal: *self,
            permission: PhantomData,
        })
    }
}

impl Authority<'_> {
    /// Whether this authority grants permission `P`.
    pub fn may<P: Permission>(&self) -> bool {
        match self {
            Authority::Unlimited => true,
            Authority::Member(role) => role.allows(P::RESOURCE, P::ACTION),
            // Whatever a deployment's scope catalogue holds, members manage members.
            Authority::Credential(_) if P::RESOURCE == MEMBERS_RESOURCE => false,
            Authority::Credential(identity) => identity
                .scopes
                .grants(&Scope::exact(P::RESOURCE, P::ACTION)),
        }
    }

    /// Refuses, naming the scope, unless this authority grants permission `P`: a credential
    /// with [`Forbidden::MissingScope`], a member with [`Forbidden::Role`].
    pub fn require<P: Permission>(&self) -> Result<(), ServiceError> {
        if self.may::<P>() {
            return Ok(());
        }
        let scope = format!("{}:{}", P::RESOURCE, P::ACTION);
        Err(match self {
            Authority::Member(role) => Forbidden::Role { role: *role, scope },
            _ => Forbidden::MissingScope(scope),
        }
        .into())
    }

    /// Refuses with [`Forbidden::Role`] unless this authority may give `role` to a member,
    /// or change or remove a member who has it (only an owner touches owners).
    pub fn may_assign(&self, role: MemberRole) -> Result<(), ServiceError> {
        match self {
            Authority::Unlimited => Ok(()),
            Authority::Member(own) if own.may_assign(role) => Ok(()),
            Authority::Member(own) => Err(Forbidden::Role {
                role: *own,
                scope: format!("{MEMBERS_RESOURCE}:write for {role}s"),
            }
            .into()),
            Authority::Credential(_) => {
                Err(Forbidden::MissingScope(format!("{MEMBERS_RESOURCE}:write")).into())
            }
        }
    }

    /// Refuses unless `wanted` is within the principal's scopes.
    pub fn permit_scopes(&self, wanted: &ScopeSet) -> Result<(), ServiceError> {
        match self {
            Authority::Unlimited | Authority::Member(_) => Ok(()),
            Authority::Credential(caller) if caller.scopes.covers_all(wanted) => Ok(()),
            Authority::Credential(_) => Err(Forbidden::Escalation(format!(
                "the credential would hold {:?}, beyond the caller's own scopes",
                wanted.to_strings()
            ))
            .into()),
        }
    }

    /// Refuses unless a credential holding `scopes` is no wider than the principal's in any
    /// way: its scopes, its environment (a test key manages test keys only), its expiry
    /// (not later than the principal's), its addresses (within the principal's allowlist,
    /// when it has one) and its rate limit (not above the principal's own, as `limits`
    /// reckon both). A setting added to credentials that widens what they may do belongs
    /// here too.
    pub fn permit_credential(
        &self,
        credential: &Credential,
        scopes: &ScopeSet,
        limits: &RateLimits,
    ) -> Result<(), ServiceError> {
        self.permit_scopes(scopes)?;
        let Authority::Credential(caller) = self else {
            return Ok(());
        };
        let held = &caller.credential;
        let refuse = |what: &str| {
            Err(
                Forbidden::Escalation(format!("the credential would {what} than the caller's own"))
                    .into(),
            )
        };
        if held.environment == Environment::Test && credential.environment != Environment::Test {
            return refuse("reach further (live rather than test)");
        }
        if let Some(limit) = held.settings.expires_at
            && credential.settings.expires_at.is_none_or(|end| end > limit)
        {
            return refuse("live longer");
        }
        let (theirs, own) = (limits.of(credential), limits.of(held));
        if theirs.per_second > own.per_second || theirs.burst > own.burst {
            return refuse("allow more requests");
        }
        let fences = &held.settings.ip_allowlist;
        if !fences.is_empty() {
            let inside = |net: &ipnet::IpNet| fences.iter().any(|fence| fence.contains(net));
            let allowlist = &credential.settings.ip_allowlist;
            if allowlist.is_empty() || !allowlist.iter().all(inside) {
                return refuse("be usable from more addresses");
            }
        }
        Ok(())
    }
}
