//! Usage recorded on the verification path without a database write per request: the
//! last use of each credential and the last match of each IP rule are kept in memory and
//! written in batches by a background task (every second by default, so `last_used_at`
//! shows within a few seconds). A process killed without warning loses at most the last
//! interval's record.
//!
//! Requests are also counted per credential, minute and outcome (`VALID`, `RATE_LIMITED`,
//! `IP_DENIED`, …, and how many came by the query string), written as sums.
//!
//! Each credential in use has one [`Activity`] cell, shared by every cached entry of its
//! secrets, so noting a use touches only memory the check has already read: no map lookup
//! per request. A cell joins the pending list when its first unwritten record arrives.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use dashmap::DashMap;
use foldhash::fast::RandomState;
use keyward_core::clock::{from_millis, to_millis};
use keyward_core::rate_limit::{Gcra, RateDecision, RateLimit};
use keyward_core::typeid::{CredentialId, IpRuleId};
use keyward_core::verify::Outcome;
use keyward_store::{CredentialUse, Store, StoreError, UsageCount};
use time::OffsetDateTime;

/// What this node tracks of one credential in use: its unwritten last use and request
/// counts, and its rate limit state.
#[derive(Debug)]
pub struct Activity {
    credential: CredentialId,
    state: Mutex<ActivityState>,
}

#[derive(Debug, Default)]
struct ActivityState {
    /// Milliseconds since the epoch, and the address.
    last_use: Option<(i64, Option<IpAddr>)>,
    /// Unwritten counts: (minute since the epoch, outcome) → (requests, via the query).
    counts: Vec<((i64, Outcome), (i64, i64))>,
    /// Whether the cell is on the pending list.
    queued: bool,
    rate: Gcra,
}

/// Milliseconds in a minute.
const MINUTE_MILLIS: i64 = 60_000;

impl ActivityState {
    /// Adds a request with `outcome` in `minute` (since the epoch); true when the cell must
    /// join the pending list.
    fn count(&mut self, outcome: Outcome, minute: i64, via_query: bool) -> bool {
        let key = (minute, outcome);
        let query = i64::from(via_query);
        match self.counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, (count, via))) => {
                *count += 1;
                *via += query;
            }
            None => self.counts.push((key, (1, query))),
        }
        !std::mem::replace(&mut self.queued, true)
    }

    /// Notes an accepted request, counted as `VALID`.
    fn accept(&mut self, request: &Request) -> bool {
        if self
            .last_use
            .is_none_or(|(previous, _)| previous <= request.at_millis)
        {
            self.last_use = Some((request.at_millis, request.ip));
        }
        self.count(Outcome::Valid, request.minute(), request.via_query)
    }
}

/// One request's circumstances, as usage records them.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// When, in milliseconds since the Unix epoch.
    pub at_millis: i64,
    /// From where, if known.
    pub ip: Option<IpAddr>,
    /// Whether the key came in the `api_key` query parameter.
    pub via_query: bool,
}

impl Request {
    /// The minute it falls in, since the epoch.
    fn minute(&self) -> i64 {
        self.at_millis.div_euclid(MINUTE_MILLIS)
    }
}

/// Uses and matches waiting to be written.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    /// The cell of each credential that has one alive.
    cells: DashMap<CredentialId, Weak<Activity>, RandomState>,
    /// Cells holding something not yet written.
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

    /// Counts a request of the credential of `cell` against `limit`: an accepted one is
    /// recorded as its last use and counted `VALID`, a refused one `RATE_LIMITED`.
    pub fn admit(&self, cell: &Arc<Activity>, limit: RateLimit, request: Request) -> RateDecision {
        let nanos = request.at_millis.saturating_mul(1_000_000);
        let mut state = cell.state.lock().unwrap_or_else(PoisonError::into_inner);
        let decision = state.rate.check_at(limit, nanos);
        let first = if decision.allowed {
            state.accept(&request)
        } else {
            state.count(Outcome::RateLimited, request.minute(), request.via_query)
        };
        drop(state);
        if first {
            self.mark_pending(cell);
        }
        decision
    }

    /// Records an accepted request of the credential of `cell` outside any rate limit.
    pub fn record_use(&self, cell: &Arc<Activity>, request: Request) {
        let first = cell
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .accept(&request);
        if first {
            self.mark_pending(cell);
        }
    }

    /// Counts a refused request of the credential of `cell`, by its outcome.
    pub fn record_refusal(&self, cell: &Arc<Activity>, outcome: Outcome, request: Request) {
        let first = cell
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .count(outcome, request.minute(), request.via_query);
        if first {
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
        let mut uses = Vec::new();
        let mut counts = Vec::new();
        for cell in &pending {
            let mut state = cell.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.queued = false;
            if let Some((at, ip)) = state.last_use.take() {
                uses.push(CredentialUse {
                    credential_id: cell.credential.clone(),
                    at: from_millis(at),
                    ip,
                });
            }
            counts.extend(
                state
                    .counts
                    .drain(..)
                    .map(|((minute, outcome), (count, via_query))| UsageCount {
                        credential_id: cell.credential.clone(),
                        minute,
                        outcome: outcome.code().to_owned(),
                        count,
                        via_query,
                    }),
            );
        }
        let written = match store.record_credential_uses(&uses).await {
            Ok(()) => store.record_usage(&counts).await,
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            self.restore(&pending, &uses, &counts);
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

impl UsageRecorder {
    /// Puts back what a failed flush took, merged with anything recorded since.
    fn restore(&self, cells: &[Arc<Activity>], uses: &[CredentialUse], counts: &[UsageCount]) {
        for cell in cells {
            let mut state = cell.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(used) = uses.iter().find(|u| u.credential_id == cell.credential)
                && state.last_use.is_none_or(|(at, _)| at < to_millis(used.at))
            {
                state.last_use = Some((to_millis(used.at), used.ip));
            }
            for count in counts.iter().filter(|c| c.credential_id == cell.credential) {
                let Some(outcome) = Outcome::from_code(&count.outcome) else {
                    continue;
                };
                let key = (count.minute, outcome);
                match state.counts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, (n, via))) => {
                        *n += count.count;
                        *via += count.via_query;
                    }
                    None => state.counts.push((key, (count.count, count.via_query))),
                }
            }
            let first = !std::mem::replace(&mut state.queued, true);
            drop(state);
            if first {
                self.mark_pending(cell);
            }
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
