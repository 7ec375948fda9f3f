//! Organizations: the first one of a fresh deployment, and more made by the operator.

use keyward_core::credential::{Organization, validate_name};
use keyward_core::typeid::OrganizationId;
use serde_json::json;

use crate::credentials::Issued;
use crate::error::ServiceError;
use crate::principal::Operator;
use crate::service::Service;
use crate::writes::object;

/// The deployment's organizations.
#[derive(Clone, Copy)]
pub struct Organizations<'a>(pub(crate) &'a Service);

impl Service {
    /// Organizations.
    pub fn organizations(&self) -> Organizations<'_> {
        Organizations(self)
    }
}

impl Organizations<'_> {
    /// Creates an organization and its bootstrap credential, holding every scope (`*`).
    pub async fn init(
        &self,
        operator: &Operator,
        name: &str,
    ) -> Result<(Organization, Issued), ServiceError> {
        let service = self.0;
        let actor = operator.actor();
        let now = service.clock.now();
        let organization = Organization {
            id: OrganizationId::generate(),
            name: validate_name(name)?,
            created_at: now,
        };
        let event = actor.event(
            &organization.id,
            now,
            "organization.created",
            Some(organization.id.as_str()),
            object(json!({ "name": organization.name })),
        );
        service
            .store
            .insert_organization(&organization, &event)
            .await?;
        let issued = service
            .credentials()
            .bootstrap(operator.in_organization(&organization.id))
            .await?;
        Ok((organization, issued))
    }

    /// Every organization, oldest first.
    pub async fn list(&self, _: &Operator) -> Result<Vec<Organization>, ServiceError> {
        Ok(self.0.store.organizations().await?)
    }

    /// Whether the organization exists.
    pub async fn exists(&self, _: &Operator, id: &OrganizationId) -> Result<bool, ServiceError> {
        Ok(self.0.store.organization(id).await?.is_some())
    }

    /// Whether this process is the one to set up a fresh deployment: `true` for exactly
    /// one caller on a database without organizations, however many nodes start together.
    pub async fn claim_first_run(&self, _: &Operator) -> Result<bool, ServiceError> {
        let store = &self.0.store;
        Ok(store.organization_count().await? == 0
            && store.claim_bootstrap(self.0.clock.now()).await?)
    }
}
