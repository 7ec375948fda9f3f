//! Usage recorded on the verification path without a database write per request: the
//! last use of each credential and the last match of each IP rule are kept in memory and
//! written in batches by a background task (every second by default, so `last_used_at`
//! shows within a few seconds). A process killed without warning loses at most the last
//! interval's record.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;
use keyward_core::typeid::{CredentialId, IpRuleId};
use keyward_store::{CredentialUse, Store, StoreError};
use time::OffsetDateTime;

/// Uses and matches waiting to be written.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    uses: DashMap<CredentialId, (OffsetDateTime, Option<IpAddr>)>,
    matches: DashMap<IpRuleId, OffsetDateTime>,
}

impl UsageRecorder {
    /// Notes that a check accepted `credential` at `at` from `ip`.
    pub fn record_use(&self, credential: &CredentialId, at: OffsetDateTime, ip: Option<IpAddr>) {
        match self.uses.get_mut(credential) {
            Some(mut entry) if entry.0 <= at => *entry = (at, ip),
            Some(_) => {}
            None => {
                self.uses.insert(credential.clone(), (at, ip));
            }
        }
    }

    /// Notes that `rule` decided a request at `at`.
    pub fn record_match(&self, rule: &IpRuleId, at: OffsetDateTime) {
        self.matches.insert(rule.clone(), at);
    }

    /// Writes everything recorded so far. What cannot be written is kept for the next
    /// flush, unless something newer arrived meanwhile.
    pub async fn flush(&self, store: &Arc<dyn Store>) -> Result<(), StoreError> {
        let uses: Vec<CredentialUse> = drain(&self.uses)
            .into_iter()
            .map(|(credential_id, (at, ip))| CredentialUse {
                credential_id,
                at,
                ip,
            })
            .collect();
        if let Err(error) = store.record_credential_uses(&uses).await {
            for u in uses {
                self.record_use(&u.credential_id, u.at, u.ip);
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

fn drain<K: Clone + Eq + std::hash::Hash, V: Clone>(map: &DashMap<K, V>) -> Vec<(K, V)> {
    let keys: Vec<K> = map.iter().map(|entry| entry.key().clone()).collect();
    keys.into_iter()
        .filter_map(|key| map.remove(&key))
        .collect()
}
