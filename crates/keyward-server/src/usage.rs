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
use keyward_core::typeid::{CredentialId, IpRuleId};
use keyward_store::{CredentialUse, Store, StoreError};
use time::OffsetDateTime;

/// The unwritten last use of one credential.
#[derive(Debug)]
pub struct Activity {
    credential: CredentialId,
    last_use: Mutex<Option<(OffsetDateTime, Option<IpAddr>)>>,
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
            last_use: Mutex::new(None),
        });
        *entry = Arc::downgrade(&cell);
        cell
    }

    /// Notes that a check accepted the credential of `cell` at `at` from `ip`.
    pub fn record_use(&self, cell: &Arc<Activity>, at: OffsetDateTime, ip: Option<IpAddr>) {
        let mut last = cell.last_use.lock().unwrap_or_else(PoisonError::into_inner);
        match *last {
            Some((previous, _)) if previous > at => {}
            Some(_) => *last = Some((at, ip)),
            None => {
                *last = Some((at, ip));
                drop(last);
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(cell.clone());
            }
        }
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
                .last_use
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
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

fn drain<K: Clone + Eq + std::hash::Hash, V: Clone>(
    map: &DashMap<K, V, RandomState>,
) -> Vec<(K, V)> {
    let keys: Vec<K> = map.iter().map(|entry| entry.key().clone()).collect();
    keys.into_iter()
        .filter_map(|key| map.remove(&key))
        .collect()
}
