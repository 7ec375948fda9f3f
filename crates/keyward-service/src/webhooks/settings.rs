//! [`WebhookConfig`]: how webhooks are delivered, and which targets they may have.

use std::time::Duration;

use keyward_core::webhook::TargetPolicy;

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Which targets endpoints may have.
    pub targets: TargetPolicy,
    /// The waits between attempts: after the first attempt fails, the first wait, and so
    /// on; when they are spent the message has failed. Each wait varies by up to a fifth
    /// either way, so that the retries of many messages spread out.
    pub retry_schedule: Vec<Duration>,
    /// How long an attempt may take, from connecting to the end of the answer's head.
    pub timeout: Duration,
    /// Most attempts in flight to one endpoint at once (per node).
    pub max_in_flight_per_endpoint: usize,
    /// How long the previous secret still signs after a rotation.
    pub secret_overlap: Duration,
    /// An endpoint whose every attempt has failed for this long is disabled.
    pub disable_after: Duration,
    /// At most one `ip_rule.blocked` per rule in this interval.
    pub blocked_interval: Duration,
    /// How often the scheduled scans (expiries, blocked requests) run.
    pub scan_interval: Duration,
    /// How often a node looks for due messages when it has none in hand.
    pub poll_interval: Duration,
    /// How long delivered and failed messages are kept for the deliveries listing.
    pub retention: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self {
            targets: TargetPolicy::default(),
            // Standard Webhooks' suggested schedule: about a day and a quarter in all.
            retry_schedule: vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(300),
                minutes(600),
                minutes(600),
            ],
            timeout: Duration::from_secs(15),
            max_in_flight_per_endpoint: 4,
            secret_overlap: Duration::from_secs(24 * 3600),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            blocked_interval: Duration::from_secs(3600),
            scan_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}
