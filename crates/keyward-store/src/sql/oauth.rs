//! The keys that sign access tokens, and tokens revoked before their expiry.

use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::clock::to_millis;
use time::OffsetDateTime;

use super::audit::insert_event;
use super::errors::map_error;
use super::rows;
use super::writer::job;
use super::{SqlStore, bump_change_seq};
use crate::error::StoreError;
use crate::records::{RevokedToken, SigningKeyRecord};
use crate::traits::OAuthStore;

#[async_trait]
impl OAuthStore for SqlStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, generation, algorithm, public_jwk, sealed_private_key, created_at, \
             activates_at, retired_at, published_until FROM signing_keys ORDER BY generation",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(rows::signing_key_from_row).collect()
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let write = job(key.clone(), |conn, key| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, generation, algorithm, public_jwk, \
                     sealed_private_key, created_at, activates_at, retired_at, published_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(key.kid.as_str())
                .bind(key.generation)
                .bind(key.algorithm.as_str())
                .bind(key.public_jwk.as_str())
                .bind(key.sealed_private_key.as_deref())
                .bind(to_millis(key.created_at))
                .bind(to_millis(key.activates_at))
                .bind(key.retired_at.map(to_millis))
                .bind(key.published_until.map(to_millis))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn retire_signing_keys(
        &self,
        below: i64,
        at: OffsetDateTime,
        published_until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let write = job(
            (below, to_millis(at), to_millis(published_until)),
            |conn, data| {
                Box::pin(async move {
                    let (below, at, until) = *data;
                    sqlx::query(
                        "UPDATE signing_keys SET sealed_private_key = NULL, retired_at = $1, \
                         published_until = $2 WHERE generation < $3 AND retired_at IS NULL",
                    )
                    .bind(at)
                    .bind(until)
                    .bind(below)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                    Ok(())
                })
            },
        );
        self.writer.write(write).await
    }

    async fn prune_oauth(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        let write = job(to_millis(now), |conn, now| {
            Box::pin(async move {
                sqlx::query("DELETE FROM signing_keys WHERE published_until < $1")
                    .bind(*now)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                    .bind(*now)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn revoke_token(
        &self,
        token: &RevokedToken,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = job((token.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (token, event) = &*data;
                let inserted = sqlx::query(
                    "INSERT INTO revoked_tokens (jti, organization_id, credential_id, expires_at, \
                     revoked_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(token.jti.as_str())
                .bind(token.organization_id.as_str())
                .bind(token.credential_id.as_str())
                .bind(to_millis(token.expires_at))
                .bind(to_millis(token.revoked_at))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if inserted.rows_affected() == 0 {
                    return Ok(());
                }
                bump_change_seq(conn, &token.organization_id).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.is_some())
    }
}
