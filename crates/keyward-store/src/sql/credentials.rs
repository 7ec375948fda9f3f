//! Credentials and the digests of their secrets.

use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::clock::to_millis;
use keyward_core::credential::Credential;
use keyward_core::digest::LookupDigest;
use keyward_core::typeid::{CredentialId, OrganizationId};
use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::audit::insert_event;
use super::errors::map_error;
use super::rows::{self, CredentialRow, credential_from_row};
use super::writer::job;
use super::{SqlStore, bump_change_seq, escape_like};
use crate::error::{Conflict, StoreError};
use crate::records::{CredentialQuery, NewSecret, SecretMatch};
use crate::traits::CredentialStore;

/// `SELECT` of every credential column (aliased `c`), in the order
/// [`credential_from_row`] reads them, followed by `$rest`; built at compile time.
macro_rules! select_credentials {
    ($rest:literal) => {
        concat!(
            "SELECT c.id, c.organization_id, c.environment, c.name, c.description, \
             c.permissions, c.role, c.ip_allowlist, c.rate_limit_override, c.not_before, c.expires_at, \
             c.metadata, c.owner_id, c.status, c.prefix, c.hint, c.created_at, c.created_by, c.updated_at, \
             c.revoked_at, c.last_used_at, c.last_used_ip, c.version, c.tokens_cut_at, c.tokens_end_at, \
             c.exposed_at ",
            $rest
        )
    };
}

pub(super) use select_credentials;

async fn insert_secrets(
    conn: &mut AnyConnection,
    credential_id: &CredentialId,
    secrets: &[NewSecret],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for secret in secrets {
        sqlx::query(
            "INSERT INTO credential_secrets (lookup_digest, credential_id, kind, salt, salted_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(secret.digests.lookup.as_bytes().to_vec())
        .bind(credential_id.as_str())
        .bind(secret.kind.storage_name())
        .bind(secret.digests.salted.salt.to_vec())
        .bind(secret.digests.salted.hash.0.to_vec())
        .bind(to_millis(now))
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
    }
    Ok(())
}

/// Binds the columns a credential's changes touch, as `$1`…`$18` in the order of the
/// `UPDATE` and `INSERT` statements that use it.
fn bind_mutable_columns<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    row: CredentialRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(row.name)
        .bind(row.description)
        .bind(row.permissions)
        .bind(row.role)
        .bind(row.ip_allowlist)
        .bind(row.rate_limit_override)
        .bind(row.not_before)
        .bind(row.expires_at)
        .bind(row.metadata)
        .bind(row.owner_id)
        .bind(row.status)
        .bind(row.prefix)
        .bind(row.hint)
        .bind(row.updated_at)
        .bind(row.revoked_at)
        .bind(row.tokens_cut_at)
        .bind(row.tokens_end_at)
        .bind(row.exposed_at)
}

/// Writes every mutable column of a credential if its version is still the one read.
async fn write_credential(
    conn: &mut AnyConnection,
    credential: &Credential,
) -> Result<(), StoreError> {
    let result = bind_mutable_columns(
        sqlx::query(
            "UPDATE credentials SET name = $1, description = $2, permissions = $3, role = $4, \
             ip_allowlist = $5, rate_limit_override = $6, not_before = $7, expires_at = $8, metadata = $9, \
             owner_id = $10, status = $11, prefix = $12, hint = $13, updated_at = $14, revoked_at = $15, \
             tokens_cut_at = $16, tokens_end_at = $17, exposed_at = $18, version = version + 1 \
             WHERE id = $19 AND organization_id = $20 AND version = $21",
        ),
        CredentialRow::from(credential),
    )
    .bind(credential.id.as_str())
    .bind(credential.organization_id.as_str())
    .bind(credential.version)
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    if result.rows_affected() == 1 {
        return bump_change_seq(conn, &credential.organization_id).await;
    }
    let exists = sqlx::query("SELECT 1 FROM credentials WHERE id = $1 AND organization_id = $2")
        .bind(credential.id.as_str())
        .bind(credential.organization_id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_error)?;
    Err(if exists.is_some() {
        StoreError::Conflict(Conflict::Version)
    } else {
        StoreError::NotFound
    })
}

#[async_trait]
impl CredentialStore for SqlStore {
    async fn insert_credential(
        &self,
        credential: &Credential,
        secrets: &[NewSecret],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (credential.clone(), secrets.to_vec(), event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (credential, secrets, event) = &*data;
                bind_mutable_columns(
                    sqlx::query(
                        "INSERT INTO credentials (name, description, permissions, role, ip_allowlist, \
                         rate_limit_override, not_before, expires_at, metadata, owner_id, status, prefix, hint, \
                         updated_at, revoked_at, tokens_cut_at, tokens_end_at, exposed_at, id, organization_id, \
                         environment, created_at, created_by, version) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                         $19, $20, $21, $22, $23, $24)",
                    ),
                    CredentialRow::from(credential),
                )
                .bind(credential.id.as_str())
                .bind(credential.organization_id.as_str())
                .bind(credential.environment.as_str())
                .bind(to_millis(credential.created_at))
                .bind(credential.created_by.as_str())
        .bind(credential.version)
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
                insert_secrets(conn, &credential.id, secrets, credential.created_at).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn credential(
        &self,
        org: &OrganizationId,
        id: &CredentialId,
    ) -> Result<Option<Credential>, StoreError> {
        let row = sqlx::query(select_credentials!(
            "FROM credentials c WHERE c.id = $1 AND c.organization_id = $2"
        ))
        .bind(id.as_str())
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(|row| credential_from_row(&row)).transpose()
    }

    async fn credential_by_secret(
        &self,
        lookup: &LookupDigest,
    ) -> Result<Option<SecretMatch>, StoreError> {
        let row = sqlx::query(select_credentials!(
            ", s.kind, s.salt, s.salted_hash, s.expires_at, o.change_seq \
             FROM credential_secrets s JOIN credentials c ON c.id = s.credential_id \
             JOIN organizations o ON o.id = c.organization_id \
             WHERE s.lookup_digest = $1"
        ))
        .bind(lookup.as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(|row| rows::secret_match_from_row(&row)).transpose()
    }

    async fn list_credentials(
        &self,
        org: &OrganizationId,
        query: &CredentialQuery,
    ) -> Result<Vec<Credential>, StoreError> {
        let rows = sqlx::query(select_credentials!(
            "FROM credentials c WHERE c.organization_id = $1 \
             AND ($2 IS NULL OR c.environment = $2) \
             AND ($3 IS NULL OR c.owner_id = $3) \
             AND ($4 IS NULL OR c.id < $4) \
             AND ($5 IS NULL \
                  OR ($5 = 'expired' AND c.status = 'active' AND c.expires_at IS NOT NULL AND c.expires_at <= $6) \
                  OR ($5 = 'active' AND c.status = 'active' AND (c.expires_at IS NULL OR c.expires_at > $6)) \
                  OR ($5 IN ('disabled', 'revoked') AND c.status = $5)) \
             AND ($8 IS NULL OR c.id = $8 OR c.owner_id = $8 \
                  OR LOWER(c.name) LIKE LOWER($9) ESCAPE '\\') \
             AND ($10 IS NULL OR c.status <> 'revoked') \
             AND ($11 IS NULL OR c.last_used_at IS NULL) \
             AND ($12 IS NULL OR (c.expires_at > $6 AND c.expires_at < $12)) \
             ORDER BY CASE WHEN $12 IS NULL THEN 0 ELSE c.expires_at END, c.id DESC LIMIT $7"
        ))
        .bind(org.as_str())
        .bind(query.environment.map(|e| e.as_str()))
        .bind(query.owner_id.as_deref())
        .bind(query.before.as_ref().map(|id| id.as_str()))
        .bind(query.status.map(|s| s.as_str()))
        .bind(to_millis(query.now))
        .bind(i64::from(query.limit))
        .bind(query.search.as_deref())
        .bind(query.search.as_deref().map(|text| {
            // Both sides lowered by the database, so that they agree on what case is.
            format!("%{}%", escape_like(text))
        }))
        .bind(query.hide_revoked.then_some(1_i64))
        .bind(query.unused.then_some(1_i64))
        .bind(query.expiring_before.map(to_millis))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(credential_from_row).collect()
    }

    async fn update_credential(
        &self,
        credential: &Credential,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = job((credential.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (credential, event) = &*data;
                write_credential(conn, credential).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn previous_secrets_until(
        &self,
        credential: &CredentialId,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(expires_at) FROM credential_secrets \
             WHERE credential_id = $1 AND expires_at > $2",
        )
        .bind(credential.as_str())
        .bind(to_millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(map_error)?;
        rows::time_at(&row, 0)
    }

    async fn rotate_credential(
        &self,
        credential: &Credential,
        new_secrets: &[NewSecret],
        old_until: Option<OffsetDateTime>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (
            credential.clone(),
            new_secrets.to_vec(),
            old_until,
            event.clone(),
        );
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (credential, new_secrets, old_until, event) = &*data;
                write_credential(conn, credential).await?;
                // The old secrets stop at `old_until`, or now; their hashes stay, so a client
                // still presenting one is told apart from a guess (a replaced secret, not an
                // unknown one) and does not count towards its address's brute-force block.
                let until = old_until.unwrap_or(credential.updated_at);
                sqlx::query(
                    "UPDATE credential_secrets SET expires_at = $2 \
                     WHERE credential_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(credential.id.as_str())
                .bind(to_millis(until))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                insert_secrets(conn, &credential.id, new_secrets, credential.updated_at).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }
}
