//! The audit log: appended to inside the transaction of every change it records, with
//! the webhook messages its events announce.

use async_trait::async_trait;
use keyward_core::audit::{AuditEvent, Notice};
use keyward_core::clock::{rfc3339, to_millis};
use keyward_core::typeid::{MessageId, OrganizationId};
use sqlx::AnyConnection;

use super::errors::map_error;
use super::rows::audit_event_from_row;
use super::writer::job;
use super::{SqlStore, escape_like};
use crate::error::StoreError;
use crate::records::AuditQuery;
use crate::traits::AuditStore;

pub(super) async fn insert_event(
    conn: &mut AnyConnection,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    let details = serde_json::Value::Object(event.details.clone()).to_string();
    sqlx::query(
        "INSERT INTO audit_events (id, organization_id, occurred_at, action, actor, source_ip, target_id, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(event.id.as_str())
    .bind(event.organization_id.as_str())
    .bind(to_millis(event.occurred_at))
    .bind(event.action.as_str())
    .bind(event.actor.as_str())
    .bind(event.source_ip.map(|ip| ip.to_string()))
    .bind(event.target_id.as_deref())
    .bind(details)
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    if let Some(notice) = &event.notice {
        queue_notice(conn, event, notice).await?;
    }
    Ok(())
}

/// Queues the event's message for every enabled endpoint of its organization that hears
/// its type. The message id is the audit event's with the `msg` prefix, so a delivery
/// and the change that caused it are found from each other.
async fn queue_notice(
    conn: &mut AnyConnection,
    event: &AuditEvent,
    notice: &Notice,
) -> Result<(), StoreError> {
    let suffix = event
        .id
        .as_str()
        .strip_prefix("audit_event_")
        .unwrap_or(event.id.as_str());
    let message_id = format!("{}_{suffix}", MessageId::PREFIX);
    let payload = serde_json::json!({
        "type": notice.event_type,
        "timestamp": rfc3339(event.occurred_at),
        "data": notice.data,
    })
    .to_string();
    // `_` is a wildcard of LIKE: escaped, so `ip_rule.blocked` matches only itself.
    let pattern = format!("%,{},%", escape_like(notice.event_type));
    sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, webhook_id, organization_id, event_type, \
         payload, created_at, state, attempts, next_attempt_at) \
         SELECT $1, w.id, w.organization_id, $3, $4, $5, 'pending', 0, $5 FROM webhooks w \
         WHERE w.organization_id = $2 AND w.enabled = 1 \
         AND (w.events = '*' OR w.events LIKE $6 ESCAPE '\\')",
    )
    .bind(message_id)
    .bind(event.organization_id.as_str())
    .bind(notice.event_type)
    .bind(payload)
    .bind(to_millis(event.occurred_at))
    .bind(pattern)
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let write = job(event.clone(), |conn, event| {
            Box::pin(async move { insert_event(conn, &event).await })
        });
        self.writer.write(write).await
    }

    async fn list_audit_events(
        &self,
        org: &OrganizationId,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        // `_` and `%` in a prefix are LIKE wildcards: escaped, so `ip_rule.` is literal.
        let (exact, prefix) = match query.action.as_deref() {
            Some(action) if action.ends_with('.') => {
                (None, Some(format!("{}%", escape_like(action))))
            }
            other => (other.map(str::to_owned), None),
        };
        macro_rules! listing {
            ($order:literal) => {
                concat!(
                    "SELECT id, organization_id, occurred_at, action, actor, source_ip, \
                     target_id, details FROM audit_events WHERE organization_id = $1 \
                     AND ($2 IS NULL OR action = $2) \
                     AND ($3 IS NULL OR action LIKE $3 ESCAPE '\\') \
                     AND ($4 IS NULL OR actor = $4) \
                     AND ($5 IS NULL OR target_id = $5) \
                     AND ($6 IS NULL OR occurred_at >= $6) \
                     AND ($7 IS NULL OR occurred_at < $7) \
                     AND ($8 IS NULL OR id < $8) \
                     AND ($9 IS NULL OR id > $9) \
                     ORDER BY id ",
                    $order,
                    " LIMIT $10"
                )
            };
        }
        let sql = if query.after.is_some() {
            listing!("ASC")
        } else {
            listing!("DESC")
        };
        let rows = sqlx::query(sql)
            .bind(org.as_str())
            .bind(exact)
            .bind(prefix)
            .bind(query.actor.as_deref())
            .bind(query.target_id.as_deref())
            .bind(query.since.map(to_millis))
            .bind(query.until.map(to_millis))
            .bind(query.before.as_ref().map(|id| id.as_str()))
            .bind(query.after.as_ref().map(|id| id.as_str()))
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        rows.iter().map(audit_event_from_row).collect()
    }
}
