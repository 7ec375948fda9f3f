//! The audit trail: one append-only record per lifecycle event.

use std::net::IpAddr;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::typeid::{AuditEventId, OrganizationId};

/// One lifecycle event: who did what to which object, from where, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// `audit_event_…`; ids sort by time.
    pub id: AuditEventId,
    /// The organization the event belongs to.
    pub organization_id: OrganizationId,
    /// When it happened.
    pub occurred_at: OffsetDateTime,
    /// What happened, e.g. `key.created`.
    pub action: String,
    /// Who did it: a credential id, `user:{email}`, or `cli`.
    pub actor: String,
    /// The address the request came from; none for the CLI.
    pub source_ip: Option<IpAddr>,
    /// The object acted on.
    pub target_id: Option<String>,
    /// Facts about the change (never a secret).
    pub details: Map<String, Value>,
    /// What the organization's webhooks hear of the event. Written to the outbox in the
    /// transaction that writes the event, so a change and its message are committed
    /// together or not at all. None for events no webhook hears of.
    pub notice: Option<Notice>,
}

/// The webhook message an audit event announces.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The event type endpoints subscribe to, e.g. `key.revoked`.
    pub event_type: &'static str,
    /// The message's `data`: the object's record, never a secret.
    pub data: Value,
}

impl AuditEvent {
    /// The event, announced to webhooks as `event_type` with `data`.
    pub fn with_notice(mut self, event_type: &'static str, data: Value) -> Self {
        self.notice = Some(Notice { event_type, data });
        self
    }
}

/// Who acted and from where, as recorded in audit events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// A credential id, `user:{email}`, or `cli`.
    pub id: String,
    /// The request's client address.
    pub source_ip: Option<IpAddr>,
    /// The interface the change came through when the audit log should say it (`mcp`):
    /// every event of the actor then has it as `details.via`.
    pub via: Option<&'static str>,
}

impl Actor {
    /// The command line on this machine.
    pub fn cli() -> Self {
        Self {
            id: "cli".to_owned(),
            source_ip: None,
            via: None,
        }
    }

    /// Keyward itself: its scheduled scans and its webhook delivery.
    pub fn keyward() -> Self {
        Self {
            id: "keyward".to_owned(),
            source_ip: None,
            via: None,
        }
    }

    /// A new event by this actor.
    pub fn event(
        &self,
        organization_id: &OrganizationId,
        now: OffsetDateTime,
        action: &str,
        target_id: Option<&str>,
        mut details: Map<String, Value>,
    ) -> AuditEvent {
        if let Some(via) = self.via {
            details.insert("via".to_owned(), Value::String(via.to_owned()));
        }
        AuditEvent {
            id: AuditEventId::generate(),
            organization_id: organization_id.clone(),
            occurred_at: now,
            action: action.to_owned(),
            actor: self.id.clone(),
            source_ip: self.source_ip,
            target_id: target_id.map(str::to_owned),
            details,
            notice: None,
        }
    }
}
