//! The audit log as the organization reads it.

use std::collections::{HashMap, HashSet};

use keyward_core::audit::AuditEvent;
use keyward_core::typeid::{CredentialId, UserId};
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

    /// What to call the actors of `events` in the organization, by actor id: a member's
    /// email, a credential's name; ids it cannot name (removed members, the operator) are
    /// left out. Reading names needs no permission beyond the log's own: whoever reads the
    /// log sees who acted.
    pub async fn actor_names(
        &self,
        permit: &Permit<'_, ReadAuditLog>,
        events: &[AuditEvent],
    ) -> Result<HashMap<String, String>, ServiceError> {
        let store = &self.0.store;
        let organization = permit.organization();
        let mut names = HashMap::new();
        let ids: HashSet<&str> = events.iter().map(|e| e.actor.as_str()).collect();
        if ids.iter().any(|id| UserId::parse(id).is_ok()) {
            for member in store.members(organization).await? {
                if ids.contains(member.id.as_str()) {
                    names.insert(member.id.to_string(), member.email);
                }
            }
        }
        for id in ids {
            if let Ok(credential) = CredentialId::parse(id)
                && let Some(found) = store.credential(organization, &credential).await?
            {
                names.insert(id.to_owned(), found.settings.name);
            }
        }
        Ok(names)
    }
}
