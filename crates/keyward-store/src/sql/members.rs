//! Dashboard members and their sessions.

use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::clock::to_millis;
use keyward_core::digest::LookupDigest;
use keyward_core::member::{Invitation, Member, MemberRole, Session};
use keyward_core::typeid::{OrganizationId, UserId};
use time::OffsetDateTime;

use super::SqlStore;
use super::audit::insert_event;
use super::errors::map_error;
use super::rows;
use super::writer::job;
use crate::error::{Conflict, StoreError};
use crate::traits::MemberStore;

/// `SELECT` of `$before` (which ends in a comma, or is empty) and every member column
/// (aliased `m`) in the order `rows::member_from_row` reads them, followed by `$rest`.
macro_rules! select_members {
    ($before:literal, $rest:literal) => {
        concat!(
            "SELECT ",
            $before,
            " m.id, m.organization_id, m.email, m.password_hash, m.created_at, \
             m.password_changed_at, m.role, m.last_login_at, \
             CAST(CASE WHEN m.totp_secret IS NULL THEN 0 ELSE 1 END AS BIGINT) ",
            $rest
        )
    };
}

/// `SELECT` of every invitation column in the order `rows::invitation_from_row` reads them.
macro_rules! select_invitations {
    () => {
        "SELECT digest, organization_id, role, created_by, created_at, expires_at \
         FROM member_invitations"
    };
}

#[async_trait]
impl MemberStore for SqlStore {
    async fn insert_member(&self, member: &Member, event: &AuditEvent) -> Result<(), StoreError> {
        let write = job((member.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (member, event) = &*data;
                insert_member(conn, member).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn member_by_email(&self, email: &str) -> Result<Option<Member>, StoreError> {
        let row = sqlx::query(select_members!("", "FROM members m WHERE m.email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(|row| rows::member_from_row(&row, 0)).transpose()
    }

    async fn set_member_password(
        &self,
        id: &UserId,
        password_hash: &str,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (id.clone(), password_hash.to_owned(), at, event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (id, hash, at, event) = &*data;
                let changed = sqlx::query(
                    "UPDATE members SET password_hash = $1, password_changed_at = $2 WHERE id = $3",
                )
                .bind(hash.as_str())
                .bind(to_millis(*at))
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if changed.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                sqlx::query("DELETE FROM member_sessions WHERE user_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        let write = job(session.clone(), |conn, session| {
            Box::pin(async move {
                sqlx::query("DELETE FROM member_sessions WHERE user_id = $1 AND expires_at <= $2")
                    .bind(session.user_id.as_str())
                    .bind(to_millis(session.created_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                sqlx::query("UPDATE members SET last_login_at = $1 WHERE id = $2")
                    .bind(to_millis(session.created_at))
                    .bind(session.user_id.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                sqlx::query(
                    "INSERT INTO member_sessions (digest, user_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(session.digest.as_bytes().to_vec())
                .bind(session.user_id.as_str())
                .bind(to_millis(session.created_at))
                .bind(to_millis(session.expires_at))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn session(
        &self,
        digest: &LookupDigest,
    ) -> Result<Option<(Session, Member)>, StoreError> {
        let row = sqlx::query(select_members!(
            "s.digest, s.user_id, s.created_at, s.expires_at,",
            "FROM member_sessions s JOIN members m ON m.id = s.user_id WHERE s.digest = $1"
        ))
        .bind(digest.as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(|row| {
            Ok((
                rows::session_from_row(&row)?,
                rows::member_from_row(&row, 4)?,
            ))
        })
        .transpose()
    }

    async fn delete_session(&self, digest: &LookupDigest) -> Result<(), StoreError> {
        let write = job(*digest, |conn, digest| {
            Box::pin(async move {
                sqlx::query("DELETE FROM member_sessions WHERE digest = $1")
                    .bind(digest.as_bytes().to_vec())
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn members(&self, org: &OrganizationId) -> Result<Vec<Member>, StoreError> {
        let found = sqlx::query(select_members!(
            "",
            "FROM members m WHERE m.organization_id = $1 ORDER BY m.email"
        ))
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found
            .iter()
            .map(|row| rows::member_from_row(row, 0))
            .collect()
    }

    async fn member_totp(&self, id: &UserId) -> Result<Option<(String, Option<i64>)>, StoreError> {
        let row = sqlx::query("SELECT totp_secret, totp_last_step FROM members WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: Option<String> = sqlx::Row::try_get(&row, 0).map_err(map_error)?;
        let last: Option<i64> = sqlx::Row::try_get(&row, 1).map_err(map_error)?;
        Ok(sealed.map(|sealed| (sealed, last)))
    }

    async fn set_member_totp(
        &self,
        id: &UserId,
        sealed: Option<&str>,
        recovery_codes: &[LookupDigest],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (
            id.clone(),
            sealed.map(str::to_owned),
            recovery_codes.to_vec(),
            event.clone(),
        );
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (id, sealed, codes, event) = &*data;
                let changed = sqlx::query(
                    "UPDATE members SET totp_secret = $1, totp_last_step = NULL WHERE id = $2",
                )
                .bind(sealed.as_deref())
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if changed.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                sqlx::query("DELETE FROM member_recovery_codes WHERE user_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                for digest in codes {
                    sqlx::query(
                        "INSERT INTO member_recovery_codes (digest, user_id) VALUES ($1, $2)",
                    )
                    .bind(digest.as_bytes().to_vec())
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn use_totp_step(&self, id: &UserId, step: i64) -> Result<bool, StoreError> {
        let used = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let data = (id.clone(), step, used.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (id, step, used) = &*data;
                let changed = sqlx::query(
                    "UPDATE members SET totp_last_step = $1 WHERE id = $2 \
                     AND totp_secret IS NOT NULL \
                     AND (totp_last_step IS NULL OR totp_last_step < $1)",
                )
                .bind(*step)
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                used.store(
                    changed.rows_affected() == 1,
                    std::sync::atomic::Ordering::Relaxed,
                );
                Ok(())
            })
        });
        self.writer.write(write).await?;
        Ok(used.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn use_recovery_code(
        &self,
        id: &UserId,
        digest: &LookupDigest,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let used = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let data = (id.clone(), *digest, at, used.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (id, digest, at, used) = &*data;
                let changed = sqlx::query(
                    "UPDATE member_recovery_codes SET used_at = $1 \
                     WHERE digest = $2 AND user_id = $3 AND used_at IS NULL",
                )
                .bind(to_millis(*at))
                .bind(digest.as_bytes().to_vec())
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                used.store(
                    changed.rows_affected() == 1,
                    std::sync::atomic::Ordering::Relaxed,
                );
                Ok(())
            })
        });
        self.writer.write(write).await?;
        Ok(used.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn recovery_codes_left(&self, id: &UserId) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM member_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(id.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(map_error)?;
        sqlx::Row::try_get(&row, 0).map_err(map_error)
    }

    async fn member(
        &self,
        org: &OrganizationId,
        id: &UserId,
    ) -> Result<Option<Member>, StoreError> {
        let row = sqlx::query(select_members!(
            "",
            "FROM members m WHERE m.organization_id = $1 AND m.id = $2"
        ))
        .bind(org.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(|row| rows::member_from_row(&row, 0)).transpose()
    }

    async fn set_member_role(
        &self,
        org: &OrganizationId,
        id: &UserId,
        role: MemberRole,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (org.clone(), id.clone(), role, event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (org, id, role, event) = &*data;
                lock_members(conn, org).await?;
                let changed = sqlx::query(
                    "UPDATE members SET role = $1 WHERE organization_id = $2 AND id = $3",
                )
                .bind(role.as_str())
                .bind(org.as_str())
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if changed.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                keep_an_owner(conn, org).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn delete_member(
        &self,
        org: &OrganizationId,
        id: &UserId,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (org.clone(), id.clone(), event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (org, id, event) = &*data;
                lock_members(conn, org).await?;
                sqlx::query(
                    "DELETE FROM member_recovery_codes WHERE user_id IN \
                     (SELECT id FROM members WHERE organization_id = $1 AND id = $2)",
                )
                .bind(org.as_str())
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                sqlx::query(
                    "DELETE FROM member_sessions WHERE user_id IN \
                     (SELECT id FROM members WHERE organization_id = $1 AND id = $2)",
                )
                .bind(org.as_str())
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                let deleted =
                    sqlx::query("DELETE FROM members WHERE organization_id = $1 AND id = $2")
                        .bind(org.as_str())
                        .bind(id.as_str())
                        .execute(&mut *conn)
                        .await
                        .map_err(map_error)?;
                if deleted.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                keep_an_owner(conn, org).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn insert_invitation(
        &self,
        invitation: &Invitation,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = job((invitation.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (invitation, event) = &*data;
                sqlx::query(
                    "INSERT INTO member_invitations (digest, organization_id, role, created_by, \
                     created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(invitation.digest.as_bytes().to_vec())
                .bind(invitation.organization_id.as_str())
                .bind(invitation.role.as_str())
                .bind(invitation.created_by.as_str())
                .bind(to_millis(invitation.created_at))
                .bind(to_millis(invitation.expires_at))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn invitations(&self, org: &OrganizationId) -> Result<Vec<Invitation>, StoreError> {
        let found = sqlx::query(concat!(
            select_invitations!(),
            " WHERE organization_id = $1 ORDER BY created_at DESC"
        ))
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        found.iter().map(rows::invitation_from_row).collect()
    }

    async fn invitation(&self, digest: &LookupDigest) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(concat!(select_invitations!(), " WHERE digest = $1"))
            .bind(digest.as_bytes().to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(rows::invitation_from_row).transpose()
    }

    async fn delete_invitation(
        &self,
        org: &OrganizationId,
        digest: &LookupDigest,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = job((org.clone(), *digest, event.clone()), |conn, data| {
            Box::pin(async move {
                let (org, digest, event) = &*data;
                let deleted = sqlx::query(
                    "DELETE FROM member_invitations WHERE organization_id = $1 AND digest = $2",
                )
                .bind(org.as_str())
                .bind(digest.as_bytes().to_vec())
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

    async fn accept_invitation(
        &self,
        digest: &LookupDigest,
        now: OffsetDateTime,
        member: &Member,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (*digest, now, member.clone(), event.clone());
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (digest, now, member, event) = &*data;
                let used = sqlx::query(
                    "DELETE FROM member_invitations WHERE digest = $1 AND organization_id = $2 \
                     AND role = $3 AND expires_at > $4",
                )
                .bind(digest.as_bytes().to_vec())
                .bind(member.organization_id.as_str())
                .bind(member.role.as_str())
                .bind(to_millis(*now))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if used.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                insert_member(conn, member).await?;
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }
}

async fn insert_member(conn: &mut sqlx::AnyConnection, member: &Member) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO members (id, organization_id, email, password_hash, created_at, \
         password_changed_at, role) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(member.id.as_str())
    .bind(member.organization_id.as_str())
    .bind(member.email.as_str())
    .bind(member.password_hash.as_str())
    .bind(to_millis(member.created_at))
    .bind(to_millis(member.password_changed_at))
    .bind(member.role.as_str())
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    Ok(())
}

/// Serializes the writes that change who owns `org`: on PostgreSQL, a lock on the
/// organization's row until the transaction ends (SQLite has one writer already), so two
/// owners demoting each other at once cannot both succeed.
async fn lock_members(
    conn: &mut sqlx::AnyConnection,
    org: &OrganizationId,
) -> Result<(), StoreError> {
    let locked = sqlx::query("UPDATE organizations SET change_seq = change_seq WHERE id = $1")
        .bind(org.as_str())
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
    if locked.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Refuses, rolling the transaction back, if `org` has no owner left.
async fn keep_an_owner(
    conn: &mut sqlx::AnyConnection,
    org: &OrganizationId,
) -> Result<(), StoreError> {
    let row =
        sqlx::query("SELECT COUNT(*) FROM members WHERE organization_id = $1 AND role = 'owner'")
            .bind(org.as_str())
            .fetch_one(&mut *conn)
            .await
            .map_err(map_error)?;
    let owners: i64 = sqlx::Row::try_get(&row, 0).map_err(map_error)?;
    if owners == 0 {
        return Err(Conflict::LastOwner.into());
    }
    Ok(())
}
