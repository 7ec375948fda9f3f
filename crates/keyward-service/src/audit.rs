//! The audit log as the organization reads it.

use keyward_core::audit::AuditEvent;
/// Filters and page of an audit log listing, newest first.
pub use keyward_store::AuditQuery;

use crate::error::ServiceError;
use crate::principal::{Permit, ReadAuditLog};
use crate::service::Service;

/// The audit log of an organization.
#[derive(Clone, Copy)]
pub struct Audit<'a>(pub(crate) &'a Service);

impl Service {
    /// The audit log.
    pub fn audit(&self) -> Audit<'_> {
        Audit(self)
    }
}

impl Audit<'_> {
    /// The organization's events, newest first, filtered and paged by `query`.
    pub async fn list(
        &self,
        permit: &Permit<'_, ReadAuditLog>,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, ServiceError> {
        Ok(self
            .0
            .store
            .list_audit_events(permit.organization(), query)
            .await?)
    }
}
