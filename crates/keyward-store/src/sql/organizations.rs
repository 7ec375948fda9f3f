//! Organizations with their change counter and first-run claim, and what belongs to an
//! organization as a whole: its IP access rules and its custom roles.

use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::clock::to_millis;
use keyward_core::credential::Organization;
use keyward_core::ip_rule::IpRule;
use keyward_core::scope::CustomRole;
use keyward_core::typeid::{IpRuleId, OrganizationId};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use super::audit::insert_event;
use super::errors::map_error;
use super::rows;
use super::writer::job;
use super::{SqlStore, bump_change_seq};
use crate::error::{Conflict, StoreError};
use crate::traits::{OrganizationStore, RoleStore, RuleStore};

/// The rules as a change to them was judged: each rule's id and version, sorted, so the
/// comparison does not depend on the order a caller kept them in.
fn rule_versions(rules: &[IpRule]) -> Vec<(String, i64)> {
    let mut versions: Vec<(String, i64)> = rules
        .iter()
        .map(|rule| (rule.id.as_str().to_owned(), rule.version))
        .collect();
    versions.sort_unstable();
    versions
}

/// Locks the organization for a change to its rules and checks they are still `seen`:
/// moves its change counter first (on PostgreSQL that holds the organization's row until
/// the transaction ends, so rule changes are applied one at a time and each reads what
/// the one before it committed), then compares the rules' ids and versions with those the
/// change was judged against. Another rule change since: [`StoreError::Conflict`]
/// (`"version"`); a change to a credential or a role is not one.
async fn lock_unchanged_rules(
    conn: &mut AnyConnection,
    org: &OrganizationId,
    seen: &[(String, i64)],
) -> Result<(), StoreError> {
    bump_change_seq(conn, org).await?;
    let rows = sqlx::query("SELECT id, version FROM ip_rules WHERE organization_id = $1")
        .bind(org.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_error)?;
    let mut now = rows
        .iter()
        .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(map_error)?;
    // Sorted in Rust as `seen` is: a database's collation plays no part.
    now.sort_unstable();
    if now != seen {
        return Err(StoreError::Conflict(Conflict::Version));
    }
    Ok(())
}

#[async_trait]
impl OrganizationStore for SqlStore {
    async fn insert_organization(
        &self,
        org: &Organization,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = job((org.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (org, event) = &*data;
                sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(org.id.as_str())
                    .bind(org.name.as_str())
                    .bind(to_millis(org.created_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn organization(&self, id: &OrganizationId) -> Result<Option<Organization>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(|row| rows::organization_from_row(&row)).transpose()
    }

    async fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        let rows = sqlx::query("SELECT id, name, created_at FROM organizations ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        rows.iter().map(rows::organization_from_row).collect()
    }

    async fn organization_change_seq(&self, org: &OrganizationId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT change_seq FROM organizations WHERE id = $1")
            .bind(org.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(|row| row.try_get::<i64, _>(0).map_err(map_error))
            .transpose()
            .map(|seq| seq.unwrap_or(0))
    }

    async fn organization_count(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM organizations")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        let count: i64 = row.try_get(0).map_err(map_error)?;
        Ok(count.max(0) as u64)
    }

    async fn claim_bootstrap(&self, at: OffsetDateTime) -> Result<bool, StoreError> {
        let write = job(to_millis(at), |conn, at| {
            Box::pin(async move {
                sqlx::query("INSERT INTO bootstrap_claim (id, claimed_at) VALUES (1, $1)")
                    .bind(*at)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                Ok(())
            })
        });
        match self.writer.write(write).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(Conflict::Unique)) => Ok(false),
            Err(error) => Err(error),
        }
    }
}

#[async_trait]
impl RuleStore for SqlStore {
    async fn ip_rules(&self, org: &OrganizationId) -> Result<Vec<IpRule>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, organization_id, ip_network, kind, description, created_at, created_by, last_matched_at, version \
             FROM ip_rules WHERE organization_id = $1 ORDER BY id",
        )
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(rows::ip_rule_from_row).collect()
    }

    async fn insert_ip_rule(
        &self,
        rule: &IpRule,
        max_rules: usize,
        seen: &[IpRule],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (
            rule.clone(),
            i64::try_from(max_rules).unwrap_or(i64::MAX),
            rule_versions(seen),
            event.clone(),
        );
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (rule, max_rules, seen, event) = &*data;
                // The organization's row stays locked, serialising concurrent inserts on
                // PostgreSQL: the count cannot be raced past the limit.
                lock_unchanged_rules(conn, &rule.organization_id, seen).await?;
                let inserted = sqlx::query(
                    "INSERT INTO ip_rules (id, organization_id, ip_network, kind, description, created_at, created_by, last_matched_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, NULL \
                     WHERE (SELECT COUNT(*) FROM ip_rules WHERE organization_id = $2) < $8",
                )
                .bind(rule.id.as_str())
                .bind(rule.organization_id.as_str())
                .bind(rule.network.to_string())
                .bind(rule.kind.as_str())
                .bind(rule.description.as_deref())
                .bind(to_millis(rule.created_at))
                .bind(rule.created_by.as_str())
                .bind(*max_rules)
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if inserted.rows_affected() == 0 {
                    return Err(StoreError::Conflict(Conflict::RuleLimit));
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn update_ip_rule(
        &self,
        rule: &IpRule,
        seen: &[IpRule],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (rule.clone(), rule_versions(seen), event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (rule, seen, event) = &*data;
                lock_unchanged_rules(conn, &rule.organization_id, seen).await?;
                let updated = sqlx::query(
                    "UPDATE ip_rules SET ip_network = $1, kind = $2, description = $3, version = version + 1 \
                     WHERE id = $4 AND organization_id = $5 AND version = $6",
                )
                .bind(rule.network.to_string())
                .bind(rule.kind.as_str())
                .bind(rule.description.as_deref())
                .bind(rule.id.as_str())
                .bind(rule.organization_id.as_str())
                .bind(rule.version)
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if updated.rows_affected() == 0 {
                    let exists = sqlx::query(
                        "SELECT 1 FROM ip_rules WHERE id = $1 AND organization_id = $2",
                    )
                    .bind(rule.id.as_str())
                    .bind(rule.organization_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_error)?;
                    return Err(if exists.is_some() {
                        StoreError::Conflict(Conflict::Version)
                    } else {
                        StoreError::NotFound
                    });
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn delete_ip_rule(
        &self,
        org: &OrganizationId,
        id: &IpRuleId,
        seen: &[IpRule],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (org.clone(), id.clone(), rule_versions(seen), event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (org, id, seen, event) = &*data;
                lock_unchanged_rules(conn, org, seen).await?;
                let deleted =
                    sqlx::query("DELETE FROM ip_rules WHERE id = $1 AND organization_id = $2")
                        .bind(id.as_str())
                        .bind(org.as_str())
                        .execute(&mut *conn)
                        .await
                        .map_err(map_error)?;
                if deleted.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }
}

#[async_trait]
impl RoleStore for SqlStore {
    async fn roles(&self, org: &OrganizationId) -> Result<Vec<CustomRole>, StoreError> {
        let rows = sqlx::query(
            "SELECT organization_id, name, description, scopes, created_at, created_by \
             FROM roles WHERE organization_id = $1",
        )
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        // Sorted here, not by ORDER BY: PostgreSQL's collation and SQLite's byte order differ.
        let mut roles: Vec<CustomRole> = rows
            .iter()
            .map(rows::role_from_row)
            .collect::<Result<_, _>>()?;
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(roles)
    }

    async fn insert_role(&self, role: &CustomRole, event: &AuditEvent) -> Result<(), StoreError> {
        let write = job((role.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (role, event) = &*data;
                sqlx::query(
                    "INSERT INTO roles (organization_id, name, description, scopes, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(role.organization_id.as_str())
                .bind(role.name.as_str())
                .bind(role.description.as_deref())
                .bind(rows::json_text(&role.scopes.to_strings()))
                .bind(to_millis(role.created_at))
                .bind(role.created_by.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                bump_change_seq(conn, &role.organization_id).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }
}
