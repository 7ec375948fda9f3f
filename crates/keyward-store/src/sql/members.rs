//! Dashboard members and their sessions.

use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::clock::to_millis;
use keyward_core::digest::LookupDigest;
use keyward_core::member::{Member, Session};
use keyward_core::typeid::UserId;
use time::OffsetDateTime;

use super::SqlStore;
use super::audit::insert_event;
use super::errors::map_error;
use super::rows;
use super::writer::job;
use crate::error::StoreError;
use crate::traits::MemberStore;

/// `SELECT` of `$before` (which ends in a comma, or is empty) and every member column
/// (aliased `m`) in the order `rows::member_from_row` reads them, followed by `$rest`.
macro_rules! select_members {
    ($before:literal, $rest:literal) => {
        concat!(
            "SELECT ",
            $before,
            " m.id, m.organization_id, m.email, m.password_hash, m.created_at, \
             m.password_changed_at ",
            $rest
        )
    };
}

#[async_trait]
impl MemberStore for SqlStore {
    async fn insert_member(&self, member: &Member, event: &AuditEvent) -> Result<(), StoreError> {
        let write = job((member.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (member, event) = &*data;
                sqlx::query(
                    "INSERT INTO members (id, organization_id, email, password_hash, created_at, \
                     password_changed_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(member.id.as_str())
                .bind(member.organization_id.as_str())
                .bind(member.email.as_str())
                .bind(member.password_hash.as_str())
                .bind(to_millis(member.created_at))
                .bind(to_millis(member.password_changed_at))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
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
}
