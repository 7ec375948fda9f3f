//! Sends the webhook messages the service's outbox holds, at least once each, signed per
//! Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
//!
//! A node claims due messages for a lease (the store makes each claim exclusive across
//! nodes), sends them with at most `max_in_flight_per_endpoint` in flight to one endpoint,
//! and hands each attempt's result to the service, which decides what follows (see
//! `keyward_service::webhooks::outbox`). A node that dies mid-attempt leaves its claims to
//! run out; the messages are then due again, with the same `webhook-id`, so a receiver that
//! deduplicates by it sees each once.
//!
//! Redirects are not followed, and a host name is resolved here, at every attempt, to the
//! addresses the deployment's target policy allows: a name that resolves only inward is
//! refused, and the connection goes to the very addresses that were checked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use keyward_core::typeid::WebhookId;
use keyward_core::webhook::TargetPolicy;
use keyward_service::Service;
use keyward_service::webhooks::outbox::Attempt;
use keyward_store::{DueDelivery, NextStep};
use time::OffsetDateTime;

/// Most messages one node claims at a time.
const CLAIM_BATCH: u32 = 32;
/// Most bytes of an answer's body kept as its excerpt.
const EXCERPT_BYTES: usize = 256;

/// Sends what the outbox holds; see the crate's documentation.
pub struct Deliverer {
    service: Arc<Service>,
    client: reqwest::Client,
    /// This node's name on its claims.
    owner: String,
}

/// The signature header's value: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` for
/// each secret, separated by spaces.
pub fn signature(secrets: &[impl AsRef<[u8]>], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut header = String::new();
    for secret in secrets {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref());
        let mut context = hmac::Context::with_key(&key);
        context.update(id.as_bytes());
        context.update(b".");
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        header.push_str(&STANDARD.encode(context.sign().as_ref()));
    }
    header
}

/// Makes aws-lc-rs, the crypto the process already uses, the process's default TLS
/// provider, for any TLS client in it that takes the default rather than naming its own (a
/// client built before would find none where two providers are compiled in). Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

impl Deliverer {
    /// A deliverer for `service`'s outbox.
    pub fn new(service: Arc<Service>) -> Result<Self, reqwest::Error> {
        let config = service.webhooks().config();
        install_tls_provider();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve targets itself, past the guard.
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .dns_resolver(Arc::new(GuardedResolver(config.targets)))
            .user_agent(concat!("Keyward-Webhooks/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(config.max_in_flight_per_endpoint)
            .build()?;
        let owner = format!("node_{}", keyward_core::typeid::MessageId::generate());
        Ok(Self {
            service,
            client,
            owner,
        })
    }

    /// Sends messages as they fall due until the task is aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let poll = self.service.webhooks().config().poll_interval;
            let mut last_prune = Instant::now();
            loop {
                match self.run_once().await {
                    Ok(0) => tokio::time::sleep(poll).await,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "could not claim webhook messages");
                        tokio::time::sleep(poll).await;
                    }
                }
                if last_prune.elapsed() > Duration::from_secs(3600) {
                    last_prune = Instant::now();
                    if let Err(error) = self.service.webhooks().prune().await {
                        tracing::warn!(%error, "could not prune webhook deliveries");
                    }
                }
            }
        })
    }

    /// Claims the messages due now and makes one attempt at each; how many it claimed.
    pub async fn run_once(&self) -> Result<usize, keyward_service::ServiceError> {
        let webhooks = self.service.webhooks();
        let config = webhooks.config();
        let bound = config.max_in_flight_per_endpoint.max(1);
        // Long enough for every claimed attempt to run in turn behind the per-endpoint bound,
        // and one timeout more.
        let rounds = u32::try_from(CLAIM_BATCH as usize / bound).unwrap_or(u32::MAX);
        let lease = config.timeout.saturating_mul(rounds.saturating_add(2));
        let due = webhooks.claim_due(&self.owner, CLAIM_BATCH, lease).await?;
        let claimed = due.len();
        let mut per_endpoint: HashMap<WebhookId, Vec<DueDelivery>> = HashMap::new();
        for delivery in due {
            per_endpoint
                .entry(delivery.webhook.id.clone())
                .or_default()
                .push(delivery);
        }
        let endpoints = per_endpoint.into_values().map(|deliveries| async move {
            futures_util::stream::iter(deliveries)
                .map(|delivery| self.attempt(delivery))
                .buffer_unordered(bound)
                .collect::<Vec<_>>()
                .await
        });
        // The batch's results in one write: one commit, not one a message. A node that dies
        // before it leaves its claims to run out, and the messages are sent again.
        let attempts: Vec<(DueDelivery, Attempt)> = futures_util::future::join_all(endpoints)
            .await
            .into_iter()
            .flatten()
            .collect();
        match webhooks.record_attempts(&self.owner, &attempts).await {
            Ok(steps) => {
                for next in steps {
                    metrics::counter!(
                        "keyward_webhook_attempts_total",
                        "result" => match next {
                            NextStep::Delivered => "delivered",
                            NextStep::RetryAt(_) => "retry",
                            NextStep::Failed => "failed",
                        }
                    )
                    .increment(1);
                }
            }
            Err(error) => tracing::warn!(%error, "could not record webhook attempts"),
        }
        Ok(claimed)
    }

    /// One attempt at one message.
    async fn attempt(&self, delivery: DueDelivery) -> (DueDelivery, Attempt) {
        let started = Instant::now();
        let attempted_at = self.service.clock().now();
        let (status, error, excerpt) = match self.send(&delivery, attempted_at).await {
            Ok((status, excerpt)) => (Some(status), None, excerpt),
            Err(why) => (None, Some(why), None),
        };
        let attempt = Attempt {
            attempted_at,
            duration: started.elapsed(),
            status,
            error,
            excerpt,
        };
        (delivery, attempt)
    }

    /// Sends the message: the answer's status and excerpt, or why none came.
    async fn send(
        &self,
        delivery: &DueDelivery,
        now: OffsetDateTime,
    ) -> Result<(u16, Option<String>), String> {
        let webhook = &delivery.webhook;
        let policy = self.service.webhooks().config().targets;
        let url = policy.check_url(&webhook.url).map_err(|e| e.message)?;
        let secrets = self.service.webhooks().signing_secrets(webhook, now);
        if secrets.is_empty() {
            return Err("its signing secret cannot be opened with this master key".into());
        }
        let timestamp = now.unix_timestamp();
        let body = delivery.payload.as_bytes();
        let signed = signature(&secrets, delivery.message_id.as_str(), timestamp, body);
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", delivery.message_id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        Ok((status, excerpt(response).await))
    }
}

/// The first bytes of an answer's body, as text; none if it is empty or cannot be read in
/// time.
async fn excerpt(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (!text.is_empty()).then_some(text)
}

/// What went wrong with a request that got no answer, without the URL (which may hold a
/// token of the receiver's).
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let mut cause = error.source();
    let mut innermost = None;
    while let Some(next) = cause {
        innermost = Some(next.to_string());
        cause = next.source();
    }
    match innermost {
        Some(why) => format!("{what}: {why}"),
        None => what.to_owned(),
    }
}

/// Resolves host names to the addresses the target policy allows: a name that resolves
/// only inward is refused here, at every attempt, and the connection is made to the very
/// addresses that were checked.
struct GuardedResolver(TargetPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|address| policy.check_address(address.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                return Err(
                    "the host resolves only to addresses inside this deployment's \
                            network"
                        .into(),
                );
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signatures_match_the_reference_example() {
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let header = signature(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_secret_signs_during_a_rotation() {
        let header = signature(&[b"one".as_slice(), b"two".as_slice()], "msg_x", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }
}
