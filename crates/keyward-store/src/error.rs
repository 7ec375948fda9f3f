//! [`StoreError`] and [`Conflict`]: the few failures callers of the store must tell apart.

/// A store failure, as callers need to distinguish them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (or belongs to another organization).
    #[error("not found")]
    NotFound,
    /// A uniqueness or concurrency rule was broken; the [`Conflict`] says which.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The database cannot be reached or did not answer; retrying later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database answered something this code cannot read, or refused a statement.
    #[error("store failure: {0}")]
    Internal(String),
}

/// Which rule a refused write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// Another write changed the object since it was read (its version moved, or, for IP
    /// rules, the organization's rules changed): read again and re-apply.
    #[error("the object changed since it was read")]
    Version,
    /// A value that must be unique is taken (an id, a role name, an email, a signing key's
    /// generation, the first-run claim).
    #[error("a unique value is taken")]
    Unique,
    /// The write names an object that does not exist.
    #[error("a referenced object does not exist")]
    ForeignKey,
    /// The organization has as many IP rules as it may.
    #[error("the organization has its most IP rules")]
    RuleLimit,
    /// The organization has as many webhook endpoints as it may.
    #[error("the organization has its most webhook endpoints")]
    WebhookLimit,
    /// The change would leave the organization without an owner.
    #[error("the organization would have no owner")]
    LastOwner,
}

impl From<Conflict> for StoreError {
    fn from(conflict: Conflict) -> Self {
        StoreError::Conflict(conflict)
    }
}
