//! What time alone announces, found by a scan every node runs on a schedule:
//! `key.expiring` seven days and one day before a credential's expiry, `key.expired` when
//! it has passed, and `ip_rule.blocked` for a rule that refused requests (at most once per
//! rule and interval).
//!
//! Each notice is recorded together with its audit event (and so its message) in one
//! transaction that refuses a repeat, so scans repeated after a restart, or run by several
//! nodes at once, send each notice once. A credential that reaches a threshold late (made
//! with less than a day to live, or a node down for a while) gets the narrowest notice
//! that applies, not every one it missed; a changed expiry gets notices of its own.

use std::sync::Arc;

use keyward_core::audit::Actor;
use keyward_core::clock::rfc3339;
use keyward_store::{Conflict as StoreConflict, StoreError};
use serde_json::{Value, json};
use time::Duration;

use crate::error::ServiceError;
use crate::records::{CredentialRecord, IpRuleRecord};
use crate::service::Service;
use crate::writes::object;

/// Most credentials one scan looks at; the next scan takes the rest.
const SCAN_BATCH: u32 = 1_000;

/// What one scan sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scanned {
    /// `key.expiring` and `key.expired` notices.
    pub expiries: usize,
    /// `ip_rule.blocked` notices.
    pub blocks: usize,
}

impl Service {
    /// Runs the scans once.
    pub async fn scan_notices(&self) -> Result<Scanned, ServiceError> {
        Ok(Scanned {
            expiries: self.scan_expiries().await?,
            blocks: self.scan_blocks().await?,
        })
    }

    /// Runs the scans every `scan_interval` until the task is aborted.
    pub fn spawn_notice_scan(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(service.config.webhooks.scan_interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(error) = service.scan_notices().await {
                    tracing::warn!(%error, "the notice scan failed; it runs again later");
                }
            }
        })
    }

    async fn scan_expiries(&self) -> Result<usize, ServiceError> {
        let now = self.clock.now();
        let actor = Actor::keyward();
        let candidates = self
            .store
            .expiry_candidates(
                now,
                now + Duration::DAY,
                now + Duration::days(7),
                SCAN_BATCH,
            )
            .await?;
        let mut sent = 0;
        for credential in &candidates {
            let Some(expires_at) = credential.settings.expires_at else {
                continue;
            };
            // The same cut as the store's query, from the same `now`.
            let (kind, action, threshold) = if expires_at <= now {
                ("expired", "key.expired", None)
            } else if expires_at <= now + Duration::DAY {
                ("expiring_1d", "key.expiring", Some("1d"))
            } else {
                ("expiring_7d", "key.expiring", Some("7d"))
            };
            let mut data = json!(CredentialRecord::new(credential, now));
            if let Some(threshold) = threshold {
                data["notice"] = Value::String(threshold.to_owned());
            }
            let event = actor
                .event(
                    &credential.organization_id,
                    now,
                    action,
                    Some(credential.id.as_str()),
                    object(json!({
                        "expires_at": rfc3339(expires_at),
                        "notice": threshold.unwrap_or("expired"),
                    })),
                )
                .with_notice(action, data);
            match self
                .store
                .record_expiry_notice(&credential.id, kind, expires_at, &event)
                .await
            {
                Ok(()) => sent += 1,
                // Another node, or an earlier run, sent it.
                Err(StoreError::Conflict(StoreConflict::Unique)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(sent)
    }

    async fn scan_blocks(&self) -> Result<usize, ServiceError> {
        let now = self.clock.now();
        let interval =
            Duration::try_from(self.config.webhooks.blocked_interval).unwrap_or(Duration::HOUR);
        let actor = Actor::keyward();
        let mut sent = 0;
        for blocked in self.store.blocked_rules(now - interval).await? {
            let rule = &blocked.rule;
            let mut data = json!(IpRuleRecord::from(rule));
            data["blocked_at"] = Value::String(rfc3339(blocked.last_blocked_at));
            let event = actor
                .event(
                    &rule.organization_id,
                    now,
                    "ip_rule.blocked",
                    Some(rule.id.as_str()),
                    object(json!({
                        "ip_network": rule.network.to_string(),
                        "blocked_at": rfc3339(blocked.last_blocked_at),
                    })),
                )
                .with_notice("ip_rule.blocked", data);
            match self.store.record_block_notice(&blocked, now, &event).await {
                Ok(()) => sent += 1,
                Err(StoreError::Conflict(StoreConflict::Version)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(sent)
    }
}
