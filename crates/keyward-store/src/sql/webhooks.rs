//! Webhook endpoints, the outbox of their messages, and the notices of the scheduled scans.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::clock::{from_millis, to_millis};
use keyward_core::credential::Credential;
use keyward_core::typeid::{CredentialId, MessageId, OrganizationId, WebhookId};
use keyward_core::webhook::{Subscription, Webhook};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::audit::insert_event;
use super::credentials::select_credentials;
use super::errors::map_error;
use super::rows::{corrupt, credential_from_row, get, ip_rule_from_row, parsed, time_at};
use super::writer::job;
use super::{Dialect, SqlStore};
use crate::error::{Conflict, StoreError};
use crate::records::{
    AttemptRecord, AttemptResult, BlockedRule, DeliveryRecord, DeliveryState, DueDelivery, NextStep,
};
use crate::traits::{NoticeStore, WebhookStore};

/// `$head` followed by every endpoint column (aliased `w`), in the order
/// [`webhook_from_row`] reads them, followed by `$rest`; built at compile time.
macro_rules! with_webhook_columns {
    ($head:literal, $rest:literal) => {
        concat!(
            $head,
            " w.id, w.organization_id, w.url, w.events, w.description, w.enabled, \
             w.disabled_reason, w.sealed_secret, w.sealed_previous_secret, \
             w.previous_secret_until, w.failing_since, w.created_at, w.created_by, \
             w.updated_at, w.version ",
            $rest
        )
    };
}

/// Claims due messages; `{lock}` is the dialect's row lock.
macro_rules! claim_statement {
    ($lock:literal) => {
        concat!(
            "UPDATE webhook_deliveries SET lease_until = $1, lease_owner = $2 \
             WHERE (message_id, webhook_id) IN (\
               SELECT d.message_id, d.webhook_id FROM webhook_deliveries d \
               JOIN webhooks w ON w.id = d.webhook_id \
               WHERE d.state = 'pending' AND d.next_attempt_at <= $3 \
               AND (d.lease_until IS NULL OR d.lease_until < $3) AND w.enabled = 1 \
               ORDER BY d.next_attempt_at, d.message_id LIMIT $4 ",
            $lock,
            ") RETURNING message_id, webhook_id"
        )
    };
}

/// Reads the endpoint columns of `with_webhook_columns!` from column `at` on.
fn webhook_from_row(row: &AnyRow, at: usize) -> Result<Webhook, StoreError> {
    let previous = match (get::<Option<String>>(row, at + 8)?, time_at(row, at + 9)?) {
        (Some(sealed), Some(until)) => Some((sealed, until)),
        _ => None,
    };
    Ok(Webhook {
        id: parsed(&get::<String>(row, at)?, "webhook id", |t| {
            WebhookId::parse(t).ok()
        })?,
        organization_id: parsed(&get::<String>(row, at + 1)?, "organization id", |t| {
            OrganizationId::parse(t).ok()
        })?,
        url: get(row, at + 2)?,
        events: Subscription::from_stored(&get::<String>(row, at + 3)?),
        description: get(row, at + 4)?,
        enabled: get::<i64>(row, at + 5)? != 0,
        disabled_reason: get(row, at + 6)?,
        sealed_secret: get(row, at + 7)?,
        previous_secret: previous,
        failing_since: time_at(row, at + 10)?,
        created_at: from_millis(get(row, at + 11)?),
        created_by: get(row, at + 12)?,
        updated_at: from_millis(get(row, at + 13)?),
        version: get(row, at + 14)?,
    })
}

fn message_id(text: &str) -> Result<MessageId, StoreError> {
    parsed(text, "message id", |t| MessageId::parse(t).ok())
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn insert_webhook(
        &self,
        webhook: &Webhook,
        max: usize,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let write = job((webhook.clone(), max, event.clone()), |conn, data| {
            Box::pin(async move {
                let (w, max, event) = &*data;
                let (previous, until) = match &w.previous_secret {
                    Some((sealed, until)) => (Some(sealed.clone()), Some(to_millis(*until))),
                    None => (None, None),
                };
                // The organization's row stays locked to the commit, serialising concurrent
                // inserts on PostgreSQL: the count cannot be raced past the limit.
                sqlx::query("UPDATE organizations SET change_seq = change_seq WHERE id = $1")
                    .bind(w.organization_id.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                let inserted = sqlx::query(
                    "INSERT INTO webhooks (id, organization_id, url, events, description, enabled, \
                     disabled_reason, sealed_secret, sealed_previous_secret, previous_secret_until, \
                     failing_since, created_at, created_by, updated_at, version) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 \
                     WHERE (SELECT COUNT(*) FROM webhooks WHERE organization_id = $2) < $16",
                )
                .bind(w.id.as_str())
                .bind(w.organization_id.as_str())
                .bind(w.url.as_str())
                .bind(w.events.stored())
                .bind(w.description.as_deref())
                .bind(i64::from(w.enabled))
                .bind(w.disabled_reason.as_deref())
                .bind(w.sealed_secret.as_str())
                .bind(previous)
                .bind(until)
                .bind(w.failing_since.map(to_millis))
                .bind(to_millis(w.created_at))
                .bind(w.created_by.as_str())
                .bind(to_millis(w.updated_at))
                .bind(w.version)
                .bind(*max)
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if inserted.rows_affected() == 0 {
                    return Err(Conflict::WebhookLimit.into());
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn webhook(
        &self,
        org: &OrganizationId,
        id: &WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        let row = sqlx::query(with_webhook_columns!(
            "SELECT",
            "FROM webhooks w WHERE w.organization_id = $1 AND w.id = $2"
        ))
        .bind(org.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(|row| webhook_from_row(&row, 0)).transpose()
    }

    async fn webhooks(&self, org: &OrganizationId) -> Result<Vec<Webhook>, StoreError> {
        let rows = sqlx::query(with_webhook_columns!(
            "SELECT",
            "FROM webhooks w WHERE w.organization_id = $1 ORDER BY w.id"
        ))
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(|row| webhook_from_row(row, 0)).collect()
    }

    async fn update_webhook(
        &self,
        webhook: &Webhook,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = job((webhook.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (w, event) = &*data;
                let (previous, until) = match &w.previous_secret {
                    Some((sealed, until)) => (Some(sealed.clone()), Some(to_millis(*until))),
                    None => (None, None),
                };
                let updated = sqlx::query(
                    "UPDATE webhooks SET url = $1, events = $2, description = $3, \
                     failing_since = CASE WHEN enabled = 0 AND $4 = 1 THEN NULL \
                       ELSE failing_since END, \
                     enabled = $4, disabled_reason = $5, sealed_secret = $6, \
                     sealed_previous_secret = $7, previous_secret_until = $8, updated_at = $9, \
                     version = version + 1 \
                     WHERE id = $10 AND organization_id = $11 AND version = $12",
                )
                .bind(w.url.as_str())
                .bind(w.events.stored())
                .bind(w.description.as_deref())
                .bind(i64::from(w.enabled))
                .bind(w.disabled_reason.as_deref())
                .bind(w.sealed_secret.as_str())
                .bind(previous)
                .bind(until)
                .bind(to_millis(w.updated_at))
                .bind(w.id.as_str())
                .bind(w.organization_id.as_str())
                .bind(w.version)
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if updated.rows_affected() == 0 {
                    return Err(Conflict::Version.into());
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn delete_webhook(
        &self,
        org: &OrganizationId,
        id: &WebhookId,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = job((org.clone(), id.clone(), event.clone()), |conn, data| {
            Box::pin(async move {
                let (org, id, event) = &*data;
                // The attempts go with their messages (ON DELETE CASCADE), and those
                // with the endpoint.
                let deleted =
                    sqlx::query("DELETE FROM webhooks WHERE id = $1 AND organization_id = $2")
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

    async fn enqueue_message(
        &self,
        webhook: &Webhook,
        message_id: &MessageId,
        event_type: &str,
        payload: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let data = (
            message_id.clone(),
            webhook.id.clone(),
            webhook.organization_id.clone(),
            event_type.to_owned(),
            payload.to_owned(),
            to_millis(at),
        );
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (message, webhook, org, event_type, payload, at) = &*data;
                sqlx::query(
                    "INSERT INTO webhook_deliveries (message_id, webhook_id, organization_id, \
                     event_type, payload, created_at, state, attempts, next_attempt_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $6)",
                )
                .bind(message.as_str())
                .bind(webhook.as_str())
                .bind(org.as_str())
                .bind(event_type.as_str())
                .bind(payload.as_str())
                .bind(*at)
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                Ok(())
            })
        });
        self.writer.write(write).await
    }

    async fn deliveries(
        &self,
        org: &OrganizationId,
        webhook: &WebhookId,
        before: Option<&MessageId>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT message_id, webhook_id, event_type, created_at, state, next_attempt_at \
             FROM webhook_deliveries WHERE organization_id = $1 AND webhook_id = $2 \
             AND ($3 IS NULL OR message_id < $3) ORDER BY message_id DESC LIMIT $4",
        )
        .bind(org.as_str())
        .bind(webhook.as_str())
        .bind(before.map(MessageId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let state = parsed(
                &get::<String>(row, 4)?,
                "delivery state",
                DeliveryState::parse,
            )?;
            records.push(DeliveryRecord {
                message_id: message_id(&get::<String>(row, 0)?)?,
                webhook_id: webhook.clone(),
                event_type: get(row, 2)?,
                created_at: from_millis(get(row, 3)?),
                next_attempt_at: if state == DeliveryState::Pending {
                    time_at(row, 5)?
                } else {
                    None
                },
                state,
                attempts: Vec::new(),
            });
        }
        if let (Some(newest), Some(oldest)) = (records.first(), records.last()) {
            let attempts = sqlx::query(
                "SELECT message_id, attempt, attempted_at, duration_ms, response_status, error, \
                 response_excerpt FROM webhook_attempts \
                 WHERE webhook_id = $1 AND message_id >= $2 AND message_id <= $3 \
                 ORDER BY message_id, attempt",
            )
            .bind(webhook.as_str())
            .bind(oldest.message_id.as_str())
            .bind(newest.message_id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
            for row in &attempts {
                let id: String = get(row, 0)?;
                let Some(record) = records.iter_mut().find(|r| r.message_id.as_str() == id) else {
                    continue;
                };
                record.attempts.push(AttemptRecord {
                    attempt: get(row, 1)?,
                    attempted_at: from_millis(get(row, 2)?),
                    duration_ms: get(row, 3)?,
                    response_status: get::<Option<i64>>(row, 4)?
                        .map(|s| u16::try_from(s).map_err(|_| corrupt("response status")))
                        .transpose()?,
                    error: get(row, 5)?,
                    response_excerpt: get(row, 6)?,
                });
            }
        }
        Ok(records)
    }

    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        owner: &str,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // PostgreSQL: rows another node is claiming right now are skipped rather than waited
        // for. SQLite has one writer, so its claims never overlap.
        let claim: &'static str = match self.dialect {
            Dialect::Postgres => claim_statement!("FOR UPDATE OF d SKIP LOCKED"),
            Dialect::Sqlite => claim_statement!(""),
        };
        let claimed = Arc::new(AtomicU64::new(0));
        let data = (
            claim,
            to_millis(lease_until),
            owner.to_owned(),
            to_millis(now),
            i64::from(limit),
            claimed.clone(),
        );
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (claim, lease_until, owner, now, limit, claimed) = &*data;
                let rows = sqlx::query(*claim)
                    .bind(*lease_until)
                    .bind(owner.as_str())
                    .bind(*now)
                    .bind(*limit)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(map_error)?;
                // Set, not added: the write runs again if its group fails.
                claimed.store(rows.len() as u64, Ordering::Relaxed);
                Ok(())
            })
        });
        self.writer.write(write).await?;
        if claimed.load(Ordering::Relaxed) == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(with_webhook_columns!(
            "SELECT d.message_id, d.event_type, d.payload, d.created_at, d.attempts,",
            "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.lease_owner = $1 AND d.lease_until = $2 AND d.state = 'pending' \
             ORDER BY d.next_attempt_at, d.message_id"
        ))
        .bind(owner)
        .bind(to_millis(lease_until))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                Ok(DueDelivery {
                    message_id: message_id(&get::<String>(row, 0)?)?,
                    event_type: get(row, 1)?,
                    payload: get(row, 2)?,
                    created_at: from_millis(get(row, 3)?),
                    attempts: get(row, 4)?,
                    webhook: webhook_from_row(row, 5)?,
                })
            })
            .collect()
    }

    async fn finish_deliveries(
        &self,
        results: &[AttemptResult],
    ) -> Result<Vec<(WebhookId, Option<OffsetDateTime>)>, StoreError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let write = job(results.to_vec(), |conn, results| {
            Box::pin(async move {
                for result in results.iter() {
                    finish(conn, result).await?;
                }
                Ok(())
            })
        });
        self.writer.write(write).await?;
        let mut endpoints: Vec<&WebhookId> = results.iter().map(|r| &r.webhook_id).collect();
        endpoints.sort();
        endpoints.dedup();
        let mut failing = Vec::with_capacity(endpoints.len());
        for id in endpoints {
            let row = sqlx::query("SELECT failing_since FROM webhooks WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_error)?;
            let since = match row {
                Some(row) => time_at(&row, 0)?,
                None => None,
            };
            failing.push((id.clone(), since));
        }
        Ok(failing)
    }

    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<(), StoreError> {
        let write = job(to_millis(before), |conn, before| {
            Box::pin(async move {
                sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_at < $1",
                )
                .bind(*before)
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                // Expiry notices stay: without its notice, an expired (still active) key
                // would be announced again.
                Ok(())
            })
        });
        self.writer.write(write).await
    }
}

/// Writes an attempt's result under the claim that made it; nothing if the claim was lost.
async fn finish(conn: &mut AnyConnection, result: &AttemptResult) -> Result<(), StoreError> {
    let (state, next) = match result.next {
        NextStep::Delivered => (DeliveryState::Delivered, None),
        NextStep::RetryAt(at) => (DeliveryState::Pending, Some(to_millis(at))),
        NextStep::Failed => (DeliveryState::Failed, None),
    };
    let updated = sqlx::query(
        "UPDATE webhook_deliveries SET state = $1, attempts = $2, next_attempt_at = $3, \
         lease_until = NULL, lease_owner = NULL \
         WHERE message_id = $4 AND webhook_id = $5 AND lease_owner = $6",
    )
    .bind(state.as_str())
    .bind(result.attempt.attempt)
    .bind(next)
    .bind(result.message_id.as_str())
    .bind(result.webhook_id.as_str())
    .bind(result.lease_owner.as_str())
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    if updated.rows_affected() == 0 {
        return Ok(());
    }
    let a = &result.attempt;
    sqlx::query(
        "INSERT INTO webhook_attempts (message_id, webhook_id, attempt, attempted_at, \
         duration_ms, response_status, error, response_excerpt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(result.message_id.as_str())
    .bind(result.webhook_id.as_str())
    .bind(a.attempt)
    .bind(to_millis(a.attempted_at))
    .bind(a.duration_ms)
    .bind(a.response_status.map(i64::from))
    .bind(a.error.as_deref())
    .bind(a.response_excerpt.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    // The endpoint answers again, or has been failing since this attempt if it was not.
    let endpoint = if result.next == NextStep::Delivered {
        sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = $1")
            .bind(result.webhook_id.as_str())
    } else {
        sqlx::query(
            "UPDATE webhooks SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL",
        )
        .bind(result.webhook_id.as_str())
        .bind(to_millis(a.attempted_at))
    };
    endpoint.execute(&mut *conn).await.map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl NoticeStore for SqlStore {
    async fn expiry_candidates(
        &self,
        now: OffsetDateTime,
        one_day: OffsetDateTime,
        seven_days: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Credential>, StoreError> {
        // Only those whose due notice is missing: the ones already told wait without
        // taking a place in the batch.
        let rows = sqlx::query(select_credentials!(
            "FROM credentials c WHERE c.expires_at IS NOT NULL AND c.expires_at <= $3 \
             AND c.status <> 'revoked' AND NOT EXISTS (SELECT 1 FROM expiry_notices n \
             WHERE n.credential_id = c.id AND n.expires_at = c.expires_at \
             AND n.kind = CASE WHEN c.expires_at <= $1 THEN 'expired' \
               WHEN c.expires_at <= $2 THEN 'expiring_1d' ELSE 'expiring_7d' END) \
             ORDER BY c.expires_at, c.id LIMIT $4"
        ))
        .bind(to_millis(now))
        .bind(to_millis(one_day))
        .bind(to_millis(seven_days))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter().map(credential_from_row).collect()
    }

    async fn record_expiry_notice(
        &self,
        credential: &CredentialId,
        kind: &str,
        expires_at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (
            credential.clone(),
            kind.to_owned(),
            to_millis(expires_at),
            event.clone(),
        );
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (credential, kind, expires_at, event) = &*data;
                let inserted = sqlx::query(
                    "INSERT INTO expiry_notices (credential_id, kind, expires_at, noticed_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(credential.as_str())
                .bind(kind.as_str())
                .bind(*expires_at)
                .bind(to_millis(event.occurred_at))
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if inserted.rows_affected() == 0 {
                    return Err(Conflict::Unique.into());
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }

    async fn blocked_rules(
        &self,
        quiet_since: OffsetDateTime,
    ) -> Result<Vec<BlockedRule>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, organization_id, ip_network, kind, description, created_at, created_by, \
             last_matched_at, version, last_blocked_at, blocked_noticed_at FROM ip_rules \
             WHERE last_blocked_at IS NOT NULL \
             AND (blocked_noticed_at IS NULL OR (blocked_noticed_at < last_blocked_at \
             AND blocked_noticed_at <= $1)) ORDER BY id",
        )
        .bind(to_millis(quiet_since))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                Ok(BlockedRule {
                    rule: ip_rule_from_row(row)?,
                    last_blocked_at: from_millis(get(row, 9)?),
                    noticed_at: time_at(row, 10)?,
                })
            })
            .collect()
    }

    async fn record_block_notice(
        &self,
        rule: &BlockedRule,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let data = (
            rule.rule.id.clone(),
            rule.noticed_at.map(to_millis),
            to_millis(at),
            event.clone(),
        );
        let write = job(data, |conn, data| {
            Box::pin(async move {
                let (id, seen, at, event) = &*data;
                let updated = sqlx::query(
                    "UPDATE ip_rules SET blocked_noticed_at = $1 WHERE id = $2 \
                     AND ((blocked_noticed_at IS NULL AND $3 IS NULL) OR blocked_noticed_at = $3)",
                )
                .bind(*at)
                .bind(id.as_str())
                .bind(*seen)
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                if updated.rows_affected() == 0 {
                    return Err(Conflict::Version.into());
                }
                insert_event(conn, event).await
            })
        });
        self.writer.write(write).await
    }
}
