//! An organization's policy as checks see it: its IP access rules and custom roles, read
//! together with its change counter and kept for `cache_ttl`, shared by all of its cached
//! credentials; and the scopes a credential holds through its role, which management
//! writes ask too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use foldhash::fast::RandomState;
use keyward_core::clock::Clock;
use keyward_core::credential::Credential;
use keyward_core::ip_rule::IpRule;
use keyward_core::scope::{ScopeCatalogue, ScopeSet, builtin_role};
use keyward_core::typeid::OrganizationId;
use keyward_store::{Store, StoreError};

use crate::cache::alive;

/// An organization as checks see it: its rules and roles as this node last read them,
/// shared by all its cached credentials, so a check finds them through the entry it
/// already holds, without hashing the organization id.
///
/// Whether the policy is fresh is mirrored in plain atomics that a check reads without a
/// locked instruction, as a sequence lock: `keep` moves `version` to odd before it writes
/// them and to even after, and a check trusts what it read only when it saw the same even
/// version before and after. The policy itself is loaded only for an organization with
/// rules.
#[derive(Debug)]
pub(crate) struct OrgSlot {
    id: OrganizationId,
    /// Swapped whole when re-read.
    pub(crate) policy: ArcSwap<Policy>,
    /// Moved by every change this node makes to the organization: a policy read under an
    /// older value is stale.
    generation: AtomicU64,
    /// Odd while `keep` writes the fields below.
    version: AtomicU64,
    /// The policy's change counter.
    seq: AtomicI64,
    /// When the policy's read began (milliseconds since the epoch; `i64::MIN` before the
    /// first read).
    read_at: AtomicI64,
    /// The slot's generation when the policy's read began.
    read_generation: AtomicU64,
    /// Whether the policy has IP rules.
    has_rules: AtomicBool,
    /// One `keep` at a time.
    keeping: std::sync::Mutex<()>,
}

/// An organization's rules and custom roles, as checks need them.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    /// The organization's change counter, read before the rules and roles.
    pub(crate) seq: i64,
    /// Its IP access rules.
    pub(crate) rules: Vec<IpRule>,
    /// Its custom roles' scopes, by name.
    roles: HashMap<String, ScopeSet>,
}

/// What a check reads of a fresh policy without loading it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fresh {
    /// The policy's change counter.
    pub(crate) seq: i64,
    /// Whether it has IP rules.
    pub(crate) has_rules: bool,
}

impl OrgSlot {
    fn new(id: OrganizationId) -> Self {
        Self {
            id,
            policy: ArcSwap::from_pointee(Policy::default()),
            generation: AtomicU64::new(0),
            version: AtomicU64::new(0),
            seq: AtomicI64::new(0),
            read_at: AtomicI64::new(i64::MIN),
            read_generation: AtomicU64::new(0),
            has_rules: AtomicBool::new(false),
            keeping: std::sync::Mutex::new(()),
        }
    }

    /// The policy's change counter and whether it has rules, if it may still be used at
    /// `now`: read less than `ttl` ago (all milliseconds) and since this node last changed
    /// the organization.
    pub(crate) fn fresh(&self, now: i64, ttl: i64) -> Option<Fresh> {
        let before = self.version.load(Ordering::Acquire);
        let read_at = self.read_at.load(Ordering::Relaxed);
        let read_generation = self.read_generation.load(Ordering::Relaxed);
        let fresh = Fresh {
            seq: self.seq.load(Ordering::Relaxed),
            has_rules: self.has_rules.load(Ordering::Relaxed),
        };
        std::sync::atomic::fence(Ordering::Acquire);
        let consistent = before.is_multiple_of(2) && self.version.load(Ordering::Relaxed) == before;
        (consistent
            && alive(read_at, now, ttl)
            && read_generation == self.generation.load(Ordering::Acquire))
        .then_some(fresh)
    }

    /// Keeps `policy`, read from `read_at` on under `generation`, unless this node changed
    /// the organization since (it would be stale on arrival) or a read begun later was
    /// kept already.
    fn keep(&self, policy: Arc<Policy>, read_at: i64, generation: u64) {
        let _keeping = self
            .keeping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) != generation
            || (self.read_generation.load(Ordering::Relaxed) == generation
                && self.read_at.load(Ordering::Relaxed) > read_at)
        {
            return;
        }
        let version = self.version.load(Ordering::Relaxed);
        self.version.store(version + 1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        self.seq.store(policy.seq, Ordering::Relaxed);
        self.has_rules
            .store(!policy.rules.is_empty(), Ordering::Relaxed);
        self.read_generation.store(generation, Ordering::Relaxed);
        self.read_at.store(read_at, Ordering::Relaxed);
        self.policy.store(policy);
        self.version.store(version + 2, Ordering::Release);
    }
}

/// The policies of the organizations of cached credentials, as this node last read them.
pub(crate) struct Policies {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    catalogue: ScopeCatalogue,
    /// How long a read stays fresh, in milliseconds.
    pub(crate) ttl_millis: i64,
    slots: DashMap<OrganizationId, Arc<OrgSlot>, RandomState>,
}

impl Policies {
    /// Policies read from `store`, fresh for `ttl_millis`, their roles resolved in
    /// `catalogue`.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        catalogue: ScopeCatalogue,
        ttl_millis: i64,
    ) -> Self {
        Self {
            store,
            clock,
            catalogue,
            ttl_millis,
            slots: DashMap::default(),
        }
    }

    /// The slot of an organization, made on first use.
    pub(crate) fn slot(&self, org: &OrganizationId) -> Arc<OrgSlot> {
        self.slots
            .entry(org.clone())
            .or_insert_with(|| Arc::new(OrgSlot::new(org.clone())))
            .clone()
    }

    /// The organization's policy: what the slot holds while it is fresh, else read from
    /// the store (and kept in the slot).
    pub(crate) async fn of(&self, slot: &OrgSlot) -> Result<Arc<Policy>, StoreError> {
        let now = self.clock.now_millis();
        if slot.fresh(now, self.ttl_millis).is_some() {
            return Ok(slot.policy.load_full());
        }
        let generation = slot.generation.load(Ordering::Acquire);
        let seq = self.store.organization_change_seq(&slot.id).await?;
        let rules = self.store.ip_rules(&slot.id).await?;
        let roles = self
            .store
            .roles(&slot.id)
            .await?
            .into_iter()
            .map(|role| (role.name, role.scopes))
            .collect();
        let policy = Arc::new(Policy { seq, rules, roles });
        slot.keep(policy.clone(), now, generation);
        Ok(policy)
    }

    /// The scopes `credential` holds under `policy`: its permissions and its role's.
    pub(crate) fn scopes_with(&self, policy: &Policy, credential: &Credential) -> ScopeSet {
        let settings = &credential.settings;
        let role = settings.role.as_deref().and_then(|name| {
            builtin_role(&self.catalogue, name).or_else(|| policy.roles.get(name).cloned())
        });
        match role {
            Some(role_scopes) => settings.permissions.union(&role_scopes),
            None => settings.permissions.clone(),
        }
    }

    /// The scopes a credential holds: its permissions and its role's (built-in or custom).
    pub(crate) async fn effective_scopes(
        &self,
        credential: &Credential,
    ) -> Result<ScopeSet, StoreError> {
        let policy = self.of(&self.slot(&credential.organization_id)).await?;
        Ok(self.scopes_with(&policy, credential))
    }

    /// The scopes of a role of the organization, built-in or custom.
    pub(crate) async fn role_scopes(
        &self,
        org: &OrganizationId,
        name: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        if let Some(scopes) = builtin_role(&self.catalogue, name) {
            return Ok(Some(scopes));
        }
        let policy = self.of(&self.slot(org)).await?;
        Ok(policy.roles.get(name).cloned())
    }

    /// Marks what this node read of the organization stale: it changed it.
    pub(crate) fn forget(&self, org: &OrganizationId) {
        if let Some(slot) = self.slots.get(org) {
            slot.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Drops the slots of organizations no cached credential belongs to.
    pub(crate) fn retain_used(&self) {
        self.slots.retain(|_, slot| Arc::strong_count(slot) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_780_000_000_000;
    const TTL: i64 = 800;

    fn policy(seq: i64) -> Arc<Policy> {
        Arc::new(Policy {
            seq,
            ..Policy::default()
        })
    }

    #[test]
    fn an_organization_slot_is_fresh_for_its_lifetime_and_until_a_local_change() {
        let slot = OrgSlot::new(OrganizationId::generate());
        assert!(slot.fresh(T0, TTL).is_none(), "never read");
        slot.keep(policy(7), T0, 0);
        assert_eq!(slot.fresh(T0 + 799, TTL).map(|f| f.seq), Some(7));
        assert!(slot.fresh(T0 + 800, TTL).is_none(), "read too long ago");
        slot.generation.fetch_add(1, Ordering::AcqRel);
        assert!(
            slot.fresh(T0 + 1, TTL).is_none(),
            "changed on this node since"
        );
    }

    #[test]
    fn a_policy_read_before_a_local_change_is_not_kept() {
        let slot = OrgSlot::new(OrganizationId::generate());
        slot.keep(policy(1), T0, 0);
        // A re-read begins under generation 0, a change lands, then the read ends.
        slot.generation.fetch_add(1, Ordering::AcqRel);
        slot.keep(policy(2), T0 + 1, 0);
        assert!(slot.fresh(T0 + 2, TTL).is_none());
        assert_eq!(slot.policy.load().seq, 1, "the stale read was dropped");
        slot.keep(policy(3), T0 + 3, 1);
        assert_eq!(slot.fresh(T0 + 4, TTL).map(|f| f.seq), Some(3));
    }

    #[test]
    fn checks_during_concurrent_re_reads_only_see_whole_policies() {
        let slot = OrgSlot::new(OrganizationId::generate());
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for seq in 0..20_000 {
                    // Every policy read has rules exactly when its counter is odd.
                    let rules = (seq % 2 == 1).then(|| IpRule {
                        id: keyward_core::typeid::IpRuleId::generate(),
                        organization_id: slot.id.clone(),
                        network: "192.0.2.0/25".parse().unwrap(),
                        kind: keyward_core::ip_rule::RuleKind::Deny,
                        description: None,
                        created_at: time::OffsetDateTime::UNIX_EPOCH,
                        created_by: "test".into(),
                        last_matched_at: None,
                        version: 1,
                    });
                    let policy = Policy {
                        seq,
                        rules: rules.into_iter().collect(),
                        roles: HashMap::new(),
                    };
                    slot.keep(Arc::new(policy), T0, 0);
                }
            });
            scope.spawn(|| {
                for _ in 0..20_000 {
                    if let Some(fresh) = slot.fresh(T0, TTL) {
                        assert_eq!(fresh.has_rules, fresh.seq % 2 == 1, "{fresh:?}");
                    }
                }
            });
        });
    }
}
