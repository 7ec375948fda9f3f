//! Usage recorded on the verification path without a database write per request: the
//! last use of each credential and the last match of each IP rule are kept in memory and
//! written in batches by a background task (every second by default, so `last_used_at`
//! shows within a few seconds). A process killed without warning loses at most the last
//! interval's record.
//!
//! Each credential in use has one [`Activity`] cell, shared by every cached entry of its
//! secrets, so noting a use touches only memory the check has already read: no map lookup
//! per request. A cell joins the pending list when its first unwritten use arrives.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use dashmap::DashMap;
use foldhash::fast::RandomState;
use keyward_core::rate_limit::{Gcra, RateDecision, RateLimit};
use keyward_core::typeid::{CredentialId, IpRuleId};
use keyward_store::{CredentialUse, Store, StoreError};
use time::OffsetDateTime;

/// What this node tracks of one credential in use: its unwritten last use and its rate
/// limit state.
#[derive(Debug)]
pub struct Activity {
    credential: CredentialId,
    state: Mutex<ActivityState>,
}

#[derive(Debug, Default)]
struct ActivityState {
    last_use: Option<(OffsetDateTime, Option<IpAddr>)>,
    rate: Gcra,
}

/// Uses and matches waiting to be written.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    /// The cell of each credential that has one alive.
    cells: DashMap<CredentialId, Weak<Activity>, RandomState>,
    /// Cells holding a use not yet written.
    pending: Mutex<Vec<Arc<Activity>>>,
    matches: DashMap<IpRuleId, OffsetDateTime, RandomState>,
}

impl UsageRecorder {
    /// The activity cell of `credential`, shared with every other holder of it.
    pub fn cell(&self, credential: &CredentialId) -> Arc<Activity> {
        let mut entry = self.cells.entry(credential.clone()).or_default();
        if let Some(cell) = entry.upgrade() {
            return cell;
        }
        let cell = Arc::new(Activity {
            credential: credential.clone(),
            state: Mutex::new(ActivityState::default()),
        });
        *entry = Arc::downgrade(&cell);
        cell
    }

    /// Counts a request of the credential of `cell` at `at` from `ip` against `limit`,
    /// and notes the use when the limit lets it through.
    pub fn admit(
        &self,
        cell: &Arc<Activity>,
        limit: RateLimit,
        at: OffsetDateTime,
        ip: Option<IpAddr>,
    ) -> RateDecision {
        let mut state = cell.state.lock().unwrap_or_else(PoisonError::into_inner);
        let decision = state.rate.check(limit, at);
        if decision.allowed && note(&mut state, at, ip) {
            drop(state);
            self.mark_pending(cell);
        }
        decision
    }

    /// Notes that a check accepted the credential of `cell` at `at` from `ip`.
    pub fn record_use(&self, cell: &Arc<Activity>, at: OffsetDateTime, ip: Option<IpAddr>) {
        let mut state = cell.state.lock().unwrap_or_else(PoisonError::into_inner);
        if note(&mut state, at, ip) {
            drop(state);
            self.mark_pending(cell);
        }
    }

    fn mark_pending(&self, cell: &Arc<Activity>) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(cell.clone());
    }

    /// Notes that `rule` decided a request at `at`.
    pub fn record_match(&self, rule: &IpRuleId, at: OffsetDateTime) {
        self.matches.insert(rule.clone(), at);
    }

    /// Drops the bookkeeping of credentials no longer held anywhere.
    pub fn prune(&self) {
        self.cells.retain(|_, cell| cell.strong_count() > 0);
    }

    /// Writes everything recorded so far. What cannot be written is kept for the next
    /// flush, unless something newer arrived meanwhile.
    pub async fn flush(&self, store: &Arc<dyn Store>) -> Result<(), StoreError> {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        let mut cells = Vec::with_capacity(pending.len());
        let mut uses = Vec::with_capacity(pending.len());
        for cell in pending {
            let taken = cell
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .last_use
                .take();
            if let Some((at, ip)) = taken {
                uses.push(CredentialUse {
                    credential_id: cell.credential.clone(),
                    at,
                    ip,
                });
                cells.push(cell);
            }
        }
        if let Err(error) = store.record_credential_uses(&uses).await {
            for (cell, used) in cells.iter().zip(&uses) {
                self.record_use(cell, used.at, used.ip);
            }
            return Err(error);
        }
        let matches = drain(&self.matches);
        if let Err(error) = store.record_rule_matches(&matches).await {
            for (rule, at) in matches {
                self.matches
                    .entry(rule)
                    .and_modify(|t| *t = (*t).max(at))
                    .or_insert(at);
            }
            return Err(error);
        }
        Ok(())
    }
}

/// Notes a use in `state`; true when it is the first one since the last flush.
fn note(state: &mut ActivityState, at: OffsetDateTime, ip: Option<IpAddr>) -> bool {
    match state.last_use {
        Some((previous, _)) if previous > at => false,
        Some(_) => {
            state.last_use = Some((at, ip));
            false
        }
        None => {
            state.last_use = Some((at, ip));
            true
        }
    }
}

fn drain<K: Clone + Eq + std::hash::Hash, V: Clone>(
    map: &DashMap<K, V, RandomState>,
) -> Vec<(K, V)> {
    let keys: Vec<K> = map.iter().map(|entry| entry.key().clone()).collect();
    keys.into_iter()
        .filter_map(|key| map.remove(&key))
        .collect()
}
