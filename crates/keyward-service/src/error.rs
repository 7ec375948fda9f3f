//! [`ServiceError`]: every way a management request can fail, in the service's own words.
//! Each interface says it in its own: the HTTP server as problem+json, the CLI as a line
//! on standard error, the dashboard as a page.

use std::net::IpAddr;

use keyward_core::credential::ValidationError;
use keyward_store::StoreError;

/// A management request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A value is not acceptable; the error names the field.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such object in the principal's organization (or one that cannot exist: an
    /// id of the wrong form reads as missing, like another organization's).
    #[error("not found")]
    NotFound,
    /// The principal may not do this.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The object's state, or another write, forbids the change.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The change would shut out `ip`, the address making it, and was not confirmed.
    #[error("this change would shut out {ip}, the address making it, unless confirmed")]
    Lockout {
        /// The address that would be shut out.
        ip: IpAddr,
    },
    /// The address asked too often; it may try again after this long.
    #[error("too many requests from this address; retry later")]
    Throttled(time::Duration),
    /// The store cannot be reached; retrying later may work. The cause is for the
    /// operator (it was logged when it was met); interfaces facing clients say nothing of it.
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] StoreError),
    /// A fault of Keyward's, with its cause, as for [`ServiceError::Unavailable`].
    #[error("internal error")]
    Internal(#[source] StoreError),
}

/// Why a principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    /// Its credential lacks this scope (`resource:action`), which the operation needs.
    #[error("the credential lacks the scope {0}")]
    MissingScope(String),
    /// The change would give a credential more than the principal's own credential holds;
    /// the text says in what way.
    #[error("privilege escalation refused: {0}")]
    Escalation(String),
    /// The member's role does not allow this; `scope` names what it would need.
    #[error("a member with the role {role} may not do this (it needs {scope})")]
    Role {
        /// The member's role.
        role: keyward_core::member::MemberRole,
        /// What the operation needs, as a scope (`keys:write`, `members:write for owners`).
        scope: String,
    },
    /// A signed report's signature does not verify with the key it names (or names no
    /// key this deployment trusts).
    #[error("the report's signature does not verify")]
    BadSignature,
}

/// Why a change could not be made to an object as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The credential is revoked, which cannot be undone.
    #[error("the credential is revoked; revocation cannot be undone")]
    CredentialRevoked,
    /// A credential with the id chosen beforehand exists already (the same form sent
    /// twice).
    #[error("a credential with this id exists already")]
    CredentialExists,
    /// The credential changed since the version the change was meant for.
    #[error("the credential changed since this form was shown")]
    CredentialChanged,
    /// Other writes kept changing the object while this one was applied.
    #[error("the object changed while this request was applied; retry")]
    ConcurrentUpdate,
    /// The organization has as many IP rules as it may.
    #[error("an organization can have at most {max} IP rules; remove one first")]
    RuleLimit {
        /// Most rules an organization may have.
        max: usize,
    },
    /// The organization has a rule of this kind for this range already.
    #[error("a {kind} rule for {network} exists already")]
    RuleExists {
        /// The range, as stored.
        network: String,
        /// `allow` or `deny`.
        kind: &'static str,
    },
    /// A role of this name exists.
    #[error("a role named `{name}` exists")]
    RoleExists {
        /// The name.
        name: String,
    },
    /// The organization has as many webhook endpoints as it may.
    #[error("an organization can have at most {0} webhook endpoints; remove one first")]
    WebhookLimit(usize),
    /// A value that must be unique is taken.
    #[error("the request conflicts with an existing object")]
    Duplicate,
    /// The change would leave the organization without an owner.
    #[error("the organization must keep at least one owner; make another member owner first")]
    LastOwner,
}

impl From<StoreError> for ServiceError {
    /// A store failure as the service reports it; the cause of a 5xx-kind failure is
    /// logged here, once, and goes no further.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Conflict(keyward_store::Conflict::Version) => {
                Conflict::ConcurrentUpdate.into()
            }
            StoreError::Conflict(keyward_store::Conflict::LastOwner) => Conflict::LastOwner.into(),
            StoreError::Conflict(_) => Conflict::Duplicate.into(),
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                ServiceError::Unavailable(StoreError::Unavailable(cause))
            }
            StoreError::Internal(cause) => {
                tracing::error!(error = %cause, "store failure");
                ServiceError::Internal(StoreError::Internal(cause))
            }
        }
    }
}
