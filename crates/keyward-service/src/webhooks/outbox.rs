//! The outbox as the delivery worker works it: claiming due messages, recording each
//! attempt and what follows it, and disabling an endpoint that is gone or has failed for
//! too long. Sending is the worker's (`keyward-delivery`): this side decides.
//!
//! What follows an attempt: a 2xx answer delivers the message; a 410 fails it and disables
//! the endpoint; anything else (another status, a redirect, a timeout, a refused
//! connection, a target resolving inward) is retried after the next wait of the schedule,
//! until the schedule is spent. An endpoint failing for longer than `disable_after` is
//! disabled.

use std::time::Duration;

use keyward_store::{AttemptRecord, AttemptResult, DueDelivery, NextStep};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::Webhooks;
use crate::error::ServiceError;

/// What one attempt met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When it was made.
    pub attempted_at: OffsetDateTime,
    /// How long it took.
    pub duration: Duration,
    /// The answer's status; none when no answer came.
    pub status: Option<u16>,
    /// Why no answer came (never the URL, which may hold a token of the receiver's).
    pub error: Option<String>,
    /// The answer body's first bytes, as text.
    pub excerpt: Option<String>,
}

impl Webhooks<'_> {
    /// Claims up to `limit` messages due now for `owner`, for as long as `lease`: no other
    /// node attempts them meanwhile, unless `owner` records its attempt first.
    pub async fn claim_due(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<DueDelivery>, ServiceError> {
        let now = self.0.clock.now();
        let until = now + time::Duration::try_from(lease).unwrap_or(time::Duration::HOUR);
        Ok(self
            .0
            .store
            .claim_deliveries(now, until, owner, limit)
            .await?)
    }

    /// The secrets that sign for `webhook` at `now`: the current one, and the previous
    /// one during its overlap. Ones that cannot be opened (another master key) are left
    /// out.
    pub fn signing_secrets(
        &self,
        webhook: &keyward_core::webhook::Webhook,
        now: OffsetDateTime,
    ) -> Vec<Zeroizing<Vec<u8>>> {
        let key = &self.0.config.signing.master_key;
        let aad = webhook.id.as_str();
        let mut secrets: Vec<_> = key.open(aad, &webhook.sealed_secret).into_iter().collect();
        if let Some((sealed, until)) = &webhook.previous_secret
            && *until > now
            && let Some(previous) = key.open(aad, sealed)
        {
            secrets.push(previous);
        }
        secrets
    }

    /// Records `owner`'s attempts and what follows each (see the module's documentation),
    /// in one write; an endpoint gone or failing too long is disabled. An attempt whose claim
    /// ran out meanwhile (another node took the message) is not recorded. Returns what
    /// follows each attempt, in order.
    pub async fn record_attempts(
        &self,
        owner: &str,
        attempts: &[(DueDelivery, Attempt)],
    ) -> Result<Vec<NextStep>, ServiceError> {
        let config = self.config();
        let mut results = Vec::with_capacity(attempts.len());
        for (delivery, attempt) in attempts {
            let next = match attempt.status {
                Some(200..=299) => NextStep::Delivered,
                Some(410) => NextStep::Failed,
                _ => match usize::try_from(delivery.attempts)
                    .ok()
                    .and_then(|done| config.retry_schedule.get(done))
                {
                    Some(wait) => NextStep::RetryAt(attempt.attempted_at + jittered(*wait)),
                    None => NextStep::Failed,
                },
            };
            results.push(AttemptResult {
                message_id: delivery.message_id.clone(),
                webhook_id: delivery.webhook.id.clone(),
                lease_owner: owner.to_owned(),
                attempt: AttemptRecord {
                    attempt: delivery.attempts + 1,
                    attempted_at: attempt.attempted_at,
                    duration_ms: i64::try_from(attempt.duration.as_millis()).unwrap_or(i64::MAX),
                    response_status: attempt.status,
                    error: attempt.error.clone(),
                    response_excerpt: attempt.excerpt.clone(),
                },
                next,
            });
        }
        let failing = self.0.store.finish_deliveries(&results).await?;
        let limit = time::Duration::try_from(config.disable_after).unwrap_or(time::Duration::MAX);
        let now = self.0.clock.now();
        for (id, since) in failing {
            let Some((delivery, _)) = attempts.iter().find(|(d, _)| d.webhook.id == id) else {
                continue;
            };
            let gone = attempts
                .iter()
                .any(|(d, a)| d.webhook.id == id && a.status == Some(410));
            let reason = if gone {
                Some("gone")
            } else {
                since
                    .filter(|since| now - *since >= limit)
                    .map(|_| "failing")
            };
            if let Some(reason) = reason {
                self.disable(&delivery.webhook, reason).await?;
            }
        }
        Ok(results.into_iter().map(|r| r.next).collect())
    }

    /// Deletes delivered and failed messages older than the retention.
    pub async fn prune(&self) -> Result<(), ServiceError> {
        let keep =
            time::Duration::try_from(self.config().retention).unwrap_or(time::Duration::DAY * 30);
        Ok(self
            .0
            .store
            .prune_deliveries(self.0.clock.now() - keep)
            .await?)
    }
}

/// `wait`, moved by up to a fifth either way.
fn jittered(wait: Duration) -> time::Duration {
    let mut bytes = [0u8; 2];
    keyward_core::secret::fill_random(&mut bytes);
    let unit = f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX); // 0 to 1
    time::Duration::try_from(wait.mul_f64(0.8 + 0.4 * unit)).unwrap_or(time::Duration::DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_vary_by_at_most_a_fifth() {
        for _ in 0..1_000 {
            let wait = jittered(Duration::from_secs(100));
            assert!(wait >= time::Duration::seconds(80) && wait <= time::Duration::seconds(120));
        }
    }
}
