//! Roles: named bundles of scopes. Keyward's own built-in roles, and the roles an
//! organization defines, which cannot be changed once made, so a credential's scopes never
//! grow behind its back.

use keyward_core::credential::{ValidationError, validate_description};
use keyward_core::scope::{
    CustomRole, ScopeCatalogue, ScopeSet, builtin_roles, validate_role_name,
};
use keyward_store::StoreError;
use serde_json::json;

use crate::error::{Conflict, ServiceError};
use crate::principal::{Permit, ReadRoles, WriteRoles};
use crate::service::Service;

/// A role to define.
#[derive(Debug, Clone)]
pub struct NewRole {
    /// 1–50 lowercase letters, digits or `_`, starting with a letter; not a built-in name.
    pub name: String,
    /// A note for people.
    pub description: Option<String>,
    /// The scopes it grants, as written.
    pub scopes: Vec<String>,
}

/// The roles of an organization, and the scope catalogue they draw from.
#[derive(Clone, Copy)]
pub struct Roles<'a>(pub(crate) &'a Service);

impl Service {
    /// Roles and the scope catalogue.
    pub fn roles(&self) -> Roles<'_> {
        Roles(self)
    }
}

impl Roles<'_> {
    /// The scopes credentials may hold.
    pub fn catalogue(&self) -> &ScopeCatalogue {
        &self.0.engine.config().catalogue
    }

    /// Keyward's own roles that this deployment's catalogue has, with their scopes.
    pub fn builtin(&self) -> Vec<(&'static str, ScopeSet)> {
        builtin_roles(self.catalogue()).collect()
    }

    /// The organization's own roles, by name.
    pub async fn custom(
        &self,
        permit: &Permit<'_, ReadRoles>,
    ) -> Result<Vec<CustomRole>, ServiceError> {
        Ok(self.0.store.roles(permit.organization()).await?)
    }

    /// The names a credential's role may take: the built-in ones, then the organization's.
    pub async fn names(&self, permit: &Permit<'_, ReadRoles>) -> Result<Vec<String>, ServiceError> {
        let mut names: Vec<String> = builtin_roles(self.catalogue())
            .map(|(name, _)| name.to_owned())
            .collect();
        names.extend(self.custom(permit).await?.into_iter().map(|r| r.name));
        Ok(names)
    }

    /// Defines a role; its scopes must be within the principal's own.
    pub async fn create(
        &self,
        permit: &Permit<'_, WriteRoles>,
        new: NewRole,
    ) -> Result<CustomRole, ServiceError> {
        let service = self.0;
        validate_role_name(&new.name)?;
        let scopes = self
            .catalogue()
            .parse_set(&new.scopes)
            .map_err(|e| ValidationError::new("scopes", e.to_string()))?;
        permit.authority().permit_scopes(&scopes)?;
        let org = permit.organization();
        let now = service.clock.now();
        let role = CustomRole {
            organization_id: org.clone(),
            name: new.name,
            description: validate_description(new.description.as_deref())?,
            scopes,
            created_at: now,
            created_by: permit.actor().id.clone(),
        };
        let details = json!({"name": role.name, "scopes": role.scopes.to_strings()});
        let event = permit.actor().event(
            org,
            now,
            "role.created",
            Some(&role.name),
            details.as_object().cloned().unwrap_or_default(),
        );
        match service.store.insert_role(&role, &event).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(Conflict::RoleExists {
                    name: role.name.clone(),
                }
                .into());
            }
            Err(error) => return Err(error.into()),
        }
        service.engine.forget_organization(org);
        Ok(role)
    }
}
