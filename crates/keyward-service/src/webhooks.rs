//! An organization's webhook endpoints: added, listed, changed, removed, their signing
//! secrets rotated, a test message sent, and their deliveries read.
//!
//! Messages are never sent from here: a change's audit event carries its notice, and the
//! store queues the message in the change's own transaction; [`outbox`] is how the
//! delivery worker claims and records them, and [`notices`] finds what time alone announces (expiries, rules that refused
//! requests).
//!
//! An endpoint's signing secret is shown once, when it is made, and kept sealed under the
//! deployment's master key: signing needs the secret itself, so it cannot be kept as a
//! hash. After a rotation the previous secret also signs, for the configured overlap, so
//! a receiver can switch without losing a message.

pub mod notices;
pub mod outbox;
pub mod settings;

pub use settings::WebhookConfig;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_core::audit::Actor;
use keyward_core::typeid::{MessageId, WebhookId};
use keyward_core::validation::{TextKind, person_text};
use keyward_core::webhook::{SECRET_BYTES, SECRET_PREFIX, Subscription, TEST_EVENT, Webhook};
use keyward_store::{DeliveryRecord, StoreError};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::{Conflict, ServiceError};
use crate::principal::{Permit, ReadIpRules, ReadKeys, ReadWebhooks, WriteWebhooks};
use crate::service::Service;
use crate::writes::{WRITE_ATTEMPTS, object, written};

/// Longest endpoint description.
pub const DESCRIPTION_MAX_CHARS: usize = 1_000;
/// Most endpoints per organization.
pub const MAX_WEBHOOKS: usize = 20;
/// How long setting a target waits for its host name to resolve.
pub const TARGET_LOOKUP: std::time::Duration = std::time::Duration::from_secs(2);
/// Most deliveries one page lists (one more is read to tell whether another page follows).
pub const MAX_DELIVERIES_PAGE: u32 = 100;

/// An endpoint to add.
#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    /// The target URL.
    pub url: String,
    /// Event types, or `["*"]`.
    pub events: Vec<String>,
    /// A note for people.
    pub description: Option<String>,
}

/// A change to an endpoint: fields left `None` stay as they are.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    /// A new target URL.
    pub url: Option<String>,
    /// New event types.
    pub events: Option<Vec<String>>,
    /// A new note; `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
}

/// An endpoint with its signing secret, shown this once.
#[derive(Debug)]
pub struct WithSecret {
    /// The endpoint.
    pub webhook: Webhook,
    /// `whsec_…`.
    pub secret: Zeroizing<String>,
}

/// An organization's webhook endpoints.
#[derive(Clone, Copy)]
pub struct Webhooks<'a>(pub(crate) &'a Service);

impl Service {
    /// Webhook endpoints.
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks(self)
    }
}

impl<'a> Webhooks<'a> {
    /// The delivery settings.
    pub fn config(&self) -> &'a WebhookConfig {
        &self.0.config.webhooks
    }
}

impl Webhooks<'_> {
    /// Adds an endpoint, enabled, with a new signing secret.
    pub async fn create(
        &self,
        permit: &Permit<'_, WriteWebhooks>,
        new: NewWebhook,
    ) -> Result<WithSecret, ServiceError> {
        let service = self.0;
        let org = permit.organization();
        let url = self.check_target(&new.url).await?;
        let events = Subscription::parse(&new.events)?;
        may_hear(permit, &events)?;
        let description = match new.description.as_deref() {
            Some(text) => person_text(
                "description",
                text,
                DESCRIPTION_MAX_CHARS,
                TextKind::Description,
            )?,
            None => None,
        };
        let id = WebhookId::generate();
        let (secret, sealed_secret) = self.new_secret(&id)?;
        let now = service.clock.now();
        let webhook = Webhook {
            id,
            organization_id: org.clone(),
            url,
            events,
            description,
            enabled: true,
            disabled_reason: None,
            sealed_secret,
            previous_secret: None,
            failing_since: None,
            created_at: now,
            created_by: permit.actor().id.clone(),
            updated_at: now,
            version: 1,
        };
        let event = permit.actor().event(
            org,
            now,
            "webhook.created",
            Some(webhook.id.as_str()),
            object(json!({
                "target": origin(&webhook.url),
                "events": webhook.events.to_strings(),
            })),
        );
        match service
            .store
            .insert_webhook(&webhook, MAX_WEBHOOKS, &event)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(keyward_store::Conflict::WebhookLimit)) => {
                return Err(Conflict::WebhookLimit(MAX_WEBHOOKS).into());
            }
            Err(error) => return Err(error.into()),
        }
        tracing::info!(webhook.id = %webhook.id, org.id = %org, "created webhook {}", webhook.id);
        Ok(WithSecret { webhook, secret })
    }

    /// The organization's endpoints, oldest first.
    pub async fn list(
        &self,
        permit: &Permit<'_, ReadWebhooks>,
    ) -> Result<Vec<Webhook>, ServiceError> {
        Ok(self.0.store.webhooks(permit.organization()).await?)
    }

    /// One endpoint.
    pub async fn get(
        &self,
        permit: &Permit<'_, ReadWebhooks>,
        id: &str,
    ) -> Result<Webhook, ServiceError> {
        let id = webhook_id(id)?;
        self.read(permit.organization(), &id).await
    }

    /// Changes an endpoint's target, events, description, or whether it is enabled.
    /// Enabling it clears why Keyward disabled it, and its failing streak.
    pub async fn update(
        &self,
        permit: &Permit<'_, WriteWebhooks>,
        id: &str,
        change: WebhookChange,
    ) -> Result<Webhook, ServiceError> {
        // An endpoint that is not there is said so before any target is looked up.
        let id = webhook_id(id)?;
        self.read(permit.organization(), &id).await?;
        let url = match &change.url {
            Some(url) => Some(self.check_target(url).await?),
            None => None,
        };
        let events = change
            .events
            .as_deref()
            .map(Subscription::parse)
            .transpose()?;
        if let Some(events) = &events {
            may_hear(permit, events)?;
        }
        let description = match &change.description {
            Some(Some(text)) => Some(person_text(
                "description",
                text,
                DESCRIPTION_MAX_CHARS,
                TextKind::Description,
            )?),
            Some(None) => Some(None),
            None => None,
        };
        self.modify(permit, &id, |webhook| {
            let mut changed = Vec::new();
            if let Some(url) = &url
                && *url != webhook.url
            {
                webhook.url = url.clone();
                changed.push("url");
            }
            if let Some(events) = &events
                && *events != webhook.events
            {
                webhook.events = events.clone();
                changed.push("events");
            }
            if let Some(description) = &description
                && *description != webhook.description
            {
                webhook.description = description.clone();
                changed.push("description");
            }
            if let Some(enabled) = change.enabled
                && enabled != webhook.enabled
            {
                webhook.enabled = enabled;
                webhook.disabled_reason = None;
                webhook.failing_since = None;
                changed.push("enabled");
            }
            if changed.is_empty() {
                return None;
            }
            let mut details = json!({ "changed": changed });
            if changed.contains(&"url") {
                details["target"] = Value::String(origin(&webhook.url));
            }
            Some(("webhook.updated", details))
        })
        .await
    }

    /// Removes an endpoint with the messages queued for it.
    pub async fn delete(
        &self,
        permit: &Permit<'_, WriteWebhooks>,
        id: &str,
    ) -> Result<(), ServiceError> {
        let service = self.0;
        let id = webhook_id(id)?;
        let org = permit.organization();
        let webhook = self.read(org, &id).await?;
        let event = permit.actor().event(
            org,
            service.clock.now(),
            "webhook.deleted",
            Some(id.as_str()),
            object(json!({ "target": origin(&webhook.url) })),
        );
        match service.store.delete_webhook(org, &id, &event).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(ServiceError::NotFound),
            Err(error) => Err(error.into()),
        }
    }

    /// Gives an endpoint a new signing secret, shown this once. The current one keeps
    /// signing beside it for the configured overlap; one rotated out earlier stops.
    pub async fn rotate_secret(
        &self,
        permit: &Permit<'_, WriteWebhooks>,
        id: &str,
    ) -> Result<WithSecret, ServiceError> {
        let id = webhook_id(id)?;
        let (secret, sealed) = self.new_secret(&id)?;
        let overlap =
            time::Duration::try_from(self.config().secret_overlap).unwrap_or(time::Duration::DAY);
        let webhook = self
            .modify(permit, &id, |webhook| {
                let until = self.0.clock.now() + overlap;
                let old = std::mem::replace(&mut webhook.sealed_secret, sealed.clone());
                webhook.previous_secret = Some((old, until));
                Some((
                    "webhook.secret_rotated",
                    json!({ "previous_secret_until": keyward_core::clock::rfc3339(until) }),
                ))
            })
            .await?;
        Ok(WithSecret { webhook, secret })
    }

    /// Queues a `webhook.test` message for the endpoint alone, whatever it hears.
    pub async fn test(
        &self,
        permit: &Permit<'_, WriteWebhooks>,
        id: &str,
    ) -> Result<MessageId, ServiceError> {
        let service = self.0;
        let id = webhook_id(id)?;
        let webhook = self.read(permit.organization(), &id).await?;
        let now = service.clock.now();
        let message = MessageId::generate();
        let payload = json!({
            "type": TEST_EVENT,
            "timestamp": keyward_core::clock::rfc3339(now),
            "data": {
                "webhook_id": webhook.id,
                "organization_id": webhook.organization_id,
                "requested_by": permit.actor().id,
            },
        })
        .to_string();
        service
            .store
            .enqueue_message(&webhook, &message, TEST_EVENT, &payload, now)
            .await?;
        Ok(message)
    }

    /// An endpoint's messages and their attempts, newest first.
    pub async fn deliveries(
        &self,
        permit: &Permit<'_, ReadWebhooks>,
        id: &str,
        before: Option<&MessageId>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, ServiceError> {
        let id = webhook_id(id)?;
        let org = permit.organization();
        self.read(org, &id).await?;
        Ok(self
            .0
            .store
            .deliveries(org, &id, before, limit.clamp(1, MAX_DELIVERIES_PAGE + 1))
            .await?)
    }

    /// Disables an endpoint on Keyward's own account (`gone`: it answered 410; `failing`:
    /// it has failed for too long), with an audit event. Already disabled: nothing.
    pub(crate) async fn disable(
        &self,
        webhook: &Webhook,
        reason: &'static str,
    ) -> Result<(), ServiceError> {
        let principal = crate::principal::Principal {
            organization: &webhook.organization_id,
            actor: &Actor::keyward(),
            authority: crate::principal::Authority::Unlimited,
        };
        let permit = Permit::<WriteWebhooks>::granted(principal);
        self.modify(&permit, &webhook.id, |webhook| {
            if !webhook.enabled {
                return None;
            }
            webhook.enabled = false;
            webhook.disabled_reason = Some(reason.to_owned());
            Some(("webhook.disabled", json!({ "reason": reason })))
        })
        .await?;
        tracing::warn!(webhook.id = %webhook.id, reason, "disabled webhook {}", webhook.id);
        Ok(())
    }

    /// Reads, changes and writes an endpoint, again on a concurrent write; `change`
    /// returns the audit action and details, or `None` when there is nothing to do.
    async fn modify<F>(
        &self,
        permit: &Permit<'_, WriteWebhooks>,
        id: &WebhookId,
        mut change: F,
    ) -> Result<Webhook, ServiceError>
    where
        F: FnMut(&mut Webhook) -> Option<(&'static str, Value)>,
    {
        let service = self.0;
        let org = permit.organization();
        for _ in 0..WRITE_ATTEMPTS {
            let mut webhook = self.read(org, id).await?;
            let Some((action, details)) = change(&mut webhook) else {
                return Ok(webhook);
            };
            let now = service.clock.now();
            webhook.updated_at = now;
            let event = permit
                .actor()
                .event(org, now, action, Some(id.as_str()), object(details));
            if written(service.store.update_webhook(&webhook, &event).await)? {
                webhook.version += 1;
                return Ok(webhook);
            }
        }
        Err(Conflict::ConcurrentUpdate.into())
    }

    async fn read(
        &self,
        org: &keyward_core::typeid::OrganizationId,
        id: &WebhookId,
    ) -> Result<Webhook, ServiceError> {
        self.0
            .store
            .webhook(org, id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Checks a target by the deployment's policy, including every address its host
    /// resolves to now. A host that does not resolve yet, or not within
    /// [`TARGET_LOOKUP`], is accepted: each attempt checks again.
    async fn check_target(&self, text: &str) -> Result<String, ServiceError> {
        let policy = self.config().targets;
        let url = policy.check_url(text)?;
        if let Some(url::Host::Domain(host)) = url.host()
            && !policy.allow_private
        {
            let port = url.port_or_known_default().unwrap_or(443);
            // Bounded: a resolver that does not answer must not hold the request (each
            // attempt checks the addresses again anyway).
            let lookup = tokio::net::lookup_host((host, port));
            if let Ok(Ok(addresses)) = tokio::time::timeout(TARGET_LOOKUP, lookup).await {
                for address in addresses {
                    policy.check_address(address.ip())?;
                }
            }
        }
        Ok(url.to_string())
    }

    /// A new secret, and the same sealed for `id`.
    fn new_secret(&self, id: &WebhookId) -> Result<(Zeroizing<String>, String), ServiceError> {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        keyward_core::secret::fill_random(&mut *bytes);
        let sealed = self
            .0
            .config
            .signing
            .master_key
            .seal(id.as_str(), &*bytes)?;
        let secret = Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(*bytes)));
        Ok((secret, sealed))
    }
}

/// Refuses a subscription to what the principal may not read: the messages carry the
/// records of credentials (`key.*`, which need `keys:read`) and of IP rules (`ip_rule.*`,
/// `ip_rules:read`), so `webhooks:write` alone would otherwise be a way to read them.
fn may_hear(permit: &Permit<'_, WriteWebhooks>, events: &Subscription) -> Result<(), ServiceError> {
    let authority = permit.authority();
    let hears = |prefix: &str| match events {
        Subscription::All => true,
        Subscription::Types(types) => types.iter().any(|t| t.starts_with(prefix)),
    };
    if hears("key.") {
        authority.require::<ReadKeys>()?;
    }
    if hears("ip_rule.") {
        authority.require::<ReadIpRules>()?;
    }
    Ok(())
}

/// The endpoint id `text`; one that cannot exist is not found.
fn webhook_id(text: &str) -> Result<WebhookId, ServiceError> {
    WebhookId::parse(text).map_err(|_| ServiceError::NotFound)
}

/// A target's scheme, host and port: what the audit log keeps of it, since a path or query
/// may hold a token of the receiver's.
fn origin(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| String::new(), |u| u.origin().ascii_serialization())
}
