//! The per-organization ceiling on management API requests: one GCRA limit per
//! organization over every management request of every one of its credentials, so one
//! tenant cannot starve the others however many keys it makes. Verification paths
//! (a credential's own uses, a verifier's questions) are not under it.

use std::sync::Mutex;

use dashmap::DashMap;
use foldhash::fast::RandomState;
use keyward_core::rate_limit::{Gcra, RateDecision, RateLimit};
use keyward_core::typeid::OrganizationId;
use time::OffsetDateTime;

/// The ceiling's state: one limiter per organization seen.
#[derive(Debug)]
pub struct OrganizationCeiling {
    limit: RateLimit,
    states: DashMap<OrganizationId, Mutex<Gcra>, RandomState>,
}

impl OrganizationCeiling {
    /// A ceiling of `limit` for each organization.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            states: DashMap::default(),
        }
    }

    /// Counts one management request of `org` at `now`.
    pub fn check(&self, org: &OrganizationId, now: OffsetDateTime) -> RateDecision {
        let entry = self.states.entry(org.clone()).or_default();
        let mut state = entry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.check(self.limit, now)
    }
}
