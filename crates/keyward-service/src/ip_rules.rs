//! An organization's IP access rules: listed, added, changed and removed within the
//! deployment's bounds, with the lockout guard: a change that would shut out the address
//! making it is refused unless confirmed.
//!
//! Every change is judged against the rules as read and written only onto those rules: a
//! change made between the two (say a removal that leaves a new deny rule the caller's
//! only match) makes it start over from a fresh read, guard included.

use keyward_core::audit::{Actor, AuditEvent};
use keyward_core::credential::ValidationError;
use keyward_core::ip_rule::{IpRule, RuleKind, RulePolicy, would_lock_out};
use keyward_core::typeid::IpRuleId;
use keyward_core::validation::{TextKind, person_text};
use keyward_store::{Conflict as StoreConflict, StoreError};
use serde_json::json;

use crate::error::{Conflict, ServiceError};
use crate::principal::{DeleteIpRules, Permit, ReadIpRules, WriteIpRules};
use crate::records::IpRuleRecord;
use crate::service::Service;
use crate::writes::{WRITE_ATTEMPTS, written};

/// A rule to add.
#[derive(Debug, Clone)]
pub struct NewIpRule {
    /// An address or CIDR range, as written (e.g. `192.0.2.0/25`).
    pub ip_network: String,
    /// `allow` or `deny`.
    pub kind: RuleKind,
    /// A note for people; empty or blank is none.
    pub description: Option<String>,
    /// Apply it even if it shuts out the address making the change.
    pub confirm_lockout: bool,
}

/// A change to a rule: fields left `None` stay as they are.
#[derive(Debug, Clone, Default)]
pub struct IpRuleChange {
    /// A new range, as written.
    pub ip_network: Option<String>,
    /// A new kind.
    pub kind: Option<RuleKind>,
    /// A new note; empty clears it.
    pub description: Option<String>,
    /// Apply it even if it shuts out the address making the change.
    pub confirm_lockout: bool,
}

/// The IP access rules of an organization.
#[derive(Clone, Copy)]
pub struct IpRules<'a>(pub(crate) &'a Service);

impl Service {
    /// IP access rules.
    pub fn ip_rules(&self) -> IpRules<'_> {
        IpRules(self)
    }
}

impl IpRules<'_> {
    /// The bounds rules are held to.
    pub fn policy(&self) -> &RulePolicy {
        &self.0.config.rule_policy
    }

    /// The organization's rules, oldest first.
    pub async fn list(
        &self,
        permit: &Permit<'_, ReadIpRules>,
    ) -> Result<Vec<IpRule>, ServiceError> {
        Ok(self.0.store.ip_rules(permit.organization()).await?)
    }

    /// Adds a rule: at most `max_rules` per organization, its prefix within the bounds,
    /// and not shutting out the principal's address unless confirmed.
    pub async fn add(
        &self,
        permit: &Permit<'_, WriteIpRules>,
        new: NewIpRule,
    ) -> Result<IpRule, ServiceError> {
        let service = self.0;
        let org = permit.organization();
        let actor = permit.actor();
        let now = service.clock.now();
        let policy = self.policy();
        let rule = IpRule {
            id: IpRuleId::generate(),
            organization_id: org.clone(),
            network: policy.parse_network(&new.ip_network)?,
            kind: new.kind,
            description: description(new.description.as_deref())?,
            created_at: now,
            created_by: actor.id.clone(),
            last_matched_at: None,
            version: 1,
        };
        let event = rule_event(actor, now, "ip_rule.added", &rule)
            .with_notice("ip_rule.created", json!(IpRuleRecord::from(&rule)));
        let max_rules = policy.max_rules;
        for _ in 0..WRITE_ATTEMPTS {
            let before = service.store.ip_rules(org).await?;
            refuse_duplicate(&before, &rule)?;
            let after: Vec<IpRule> = before.iter().cloned().chain([rule.clone()]).collect();
            guard_lockout(actor, &before, &after, new.confirm_lockout)?;
            let result = service
                .store
                .insert_ip_rule(&rule, max_rules, &before, &event)
                .await;
            if let Err(StoreError::Conflict(StoreConflict::RuleLimit)) = result {
                return Err(Conflict::RuleLimit { max: max_rules }.into());
            }
            if written(result)? {
                service.engine.forget_organization(org);
                return Ok(rule);
            }
        }
        Err(Conflict::ConcurrentUpdate.into())
    }

    /// Changes a rule's range, kind or description, with the same bounds and lockout
    /// guard. An id that cannot exist, or another organization's, is not found.
    pub async fn update(
        &self,
        permit: &Permit<'_, WriteIpRules>,
        id: &str,
        change: IpRuleChange,
    ) -> Result<IpRule, ServiceError> {
        let service = self.0;
        let org = permit.organization();
        let id = rule_id(id)?;
        let network = change
            .ip_network
            .as_deref()
            .map(|n| self.policy().parse_network(n))
            .transpose()?;
        let note = change
            .description
            .as_deref()
            .map(|d| description(Some(d)))
            .transpose()?;
        for _ in 0..WRITE_ATTEMPTS {
            let before = service.store.ip_rules(org).await?;
            let mut rule = before
                .iter()
                .find(|r| r.id == id)
                .cloned()
                .ok_or(ServiceError::NotFound)?;
            if let Some(network) = network {
                rule.network = network;
            }
            if let Some(kind) = change.kind {
                rule.kind = kind;
            }
            if let Some(note) = &note {
                rule.description = note.clone();
            }
            refuse_duplicate(&before, &rule)?;
            let after: Vec<IpRule> = before
                .iter()
                .map(|r| if r.id == id { rule.clone() } else { r.clone() })
                .collect();
            guard_lockout(permit.actor(), &before, &after, change.confirm_lockout)?;
            let event = rule_event(
                permit.actor(),
                service.clock.now(),
                "ip_rule.updated",
                &rule,
            );
            if written(service.store.update_ip_rule(&rule, &before, &event).await)? {
                service.engine.forget_organization(org);
                rule.version += 1;
                return Ok(rule);
            }
        }
        Err(Conflict::ConcurrentUpdate.into())
    }

    /// Removes a rule, with the lockout guard.
    pub async fn remove(
        &self,
        permit: &Permit<'_, DeleteIpRules>,
        id: &str,
        confirm_lockout: bool,
    ) -> Result<(), ServiceError> {
        let service = self.0;
        let org = permit.organization();
        let id = rule_id(id)?;
        for _ in 0..WRITE_ATTEMPTS {
            let before = service.store.ip_rules(org).await?;
            let rule = before
                .iter()
                .find(|r| r.id == id)
                .ok_or(ServiceError::NotFound)?;
            let after: Vec<IpRule> = before.iter().filter(|r| r.id != id).cloned().collect();
            guard_lockout(permit.actor(), &before, &after, confirm_lockout)?;
            let event = rule_event(permit.actor(), service.clock.now(), "ip_rule.removed", rule)
                .with_notice("ip_rule.deleted", json!(IpRuleRecord::from(rule)));
            if written(
                service
                    .store
                    .delete_ip_rule(org, &id, &before, &event)
                    .await,
            )? {
                service.engine.forget_organization(org);
                return Ok(());
            }
        }
        Err(Conflict::ConcurrentUpdate.into())
    }
}

/// Longest description of a rule, in characters.
pub const RULE_DESCRIPTION_MAX_CHARS: usize = 200;

/// A rule's note: at most 200 characters by the rule every description follows; empty is
/// none.
fn description(text: Option<&str>) -> Result<Option<String>, ValidationError> {
    person_text(
        "description",
        text.unwrap_or_default(),
        RULE_DESCRIPTION_MAX_CHARS,
        TextKind::Description,
    )
}

/// Refuses a change that would shut out the address making it, unless confirmed.
fn guard_lockout(
    actor: &Actor,
    before: &[IpRule],
    after: &[IpRule],
    confirmed: bool,
) -> Result<(), ServiceError> {
    match actor.source_ip {
        Some(ip) if !confirmed && would_lock_out(before, after, ip) => {
            Err(ServiceError::Lockout { ip })
        }
        _ => Ok(()),
    }
}

/// The audit event of a change to `rule` by `actor`.
fn rule_event(actor: &Actor, at: time::OffsetDateTime, action: &str, rule: &IpRule) -> AuditEvent {
    let details = json!({"ip_network": rule.network.to_string(), "type": rule.kind.as_str()});
    let details = details.as_object().cloned().unwrap_or_default();
    actor.event(
        &rule.organization_id,
        at,
        action,
        Some(rule.id.as_str()),
        details,
    )
}

/// The rule id `text`; one that cannot exist is not found.
fn rule_id(text: &str) -> Result<IpRuleId, ServiceError> {
    IpRuleId::parse(text).map_err(|_| ServiceError::NotFound)
}

/// Refuses `rule` when another of `rules` has its range and kind: a second copy would
/// change no decision and take one of the organization's few places. The store writes
/// `rule` only if `rules` are still the organization's, so two concurrent copies cannot
/// both pass.
fn refuse_duplicate(rules: &[IpRule], rule: &IpRule) -> Result<(), Conflict> {
    match rules
        .iter()
        .any(|r| r.id != rule.id && r.network == rule.network && r.kind == rule.kind)
    {
        true => Err(Conflict::RuleExists {
            network: rule.network.to_string(),
            kind: rule.kind.as_str(),
        }),
        false => Ok(()),
    }
}
