//! Usage recorded on the verification path without a database write per request: the
//! last use of each credential and the last match of each IP rule are kept in memory and
//! written in batches by a background task (every second by default, so `last_used_at`
//! shows within a few seconds). A process killed without warning loses at most the last
//! interval's record. The last use is kept to the second: a use less than a second after
//! the one noted (since the last flush) leaves it as it is, so a key in steady use takes
//! its cell's lock about once a second rather than at every request.
//!
//! Requests are also counted per credential, minute and outcome (`VALID`, `RATE_LIMITED`,
//! `IP_DENIED`, …, and how many came by the query string), written as sums.
//!
//! Each credential in use has one [`Activity`] cell, shared by every cached entry of its
//! secrets, so noting a use touches only memory the check has already read: no map lookup
//! per request. A cell joins the pending list when its first unwritten record arrives.
//!
//! A request that passes its limit (nearly all of them) touches only atomics: the limit's
//! arrival time is moved by compare-and-swap, and the accepted requests of the current
//! minute are one counter tagged with its minute. Refusals, uses through the query string,
//! a new minute and a newer last use take the cell's lock. So a key used at full speed from
//! every core never waits on a lock, and each request is still counted exactly once.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use dashmap::DashMap;
use foldhash::fast::RandomState;
use keyward_core::clock::{from_millis, to_millis};
use keyward_core::rate_limit::{Pace, RateDecision};
use keyward_core::typeid::{CredentialId, IpRuleId};
use keyward_core::verify::Outcome;
use keyward_store::{CredentialUse, RuleMatch, StoreError, UsageCount, UsageStore};
use time::OffsetDateTime;

/// What this node tracks of one credential in use: its rate limit state, its unwritten
/// request counts and last use.
///
/// Laid out (`repr(C)`, 128-byte aligned) so what a check touches — the atomics, the lock
/// and the last use behind it — sits in one pair of cache lines, which processors fetch
/// together.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Activity {
    /// The limit's theoretical arrival time (nanoseconds since the epoch; 0 at rest).
    tat: AtomicI64,
    /// Accepted requests not yet written, of one minute: the minute since the epoch in the
    /// high 32 bits, the count in the low 32. Other minutes' counts are in `state`.
    accepted: AtomicU64,
    /// The newest use in `state` since the last flush (milliseconds): a request less than
    /// [`LAST_USE_RESOLUTION`] after it leaves the last use as it is without the lock.
    last_used: AtomicI64,
    /// Whether the cell is on the pending list.
    queued: AtomicBool,
    state: Mutex<ActivityState>,
    credential: CredentialId,
}

#[derive(Debug, Default)]
struct ActivityState {
    /// The newest use not yet written.
    last_use: Option<LastUse>,
    /// Unwritten counts besides `accepted`.
    counts: Vec<Tally>,
}

/// (Minute since the epoch, outcome) → (requests, of which via the query string).
type Tally = ((i64, Outcome), (i64, i64));

/// A last use: milliseconds since the epoch, and the address.
type LastUse = (i64, Option<IpAddr>);

/// Milliseconds in a minute.
const MINUTE_MILLIS: i64 = 60_000;
/// How precisely the last use is kept, in milliseconds.
const LAST_USE_RESOLUTION: i64 = 1_000;
/// The count's part of [`Activity::accepted`].
const COUNT_MASK: u64 = 0xffff_ffff;

impl ActivityState {
    /// Adds `count` requests with `outcome` in `minute` (since the epoch).
    fn add(&mut self, minute: i64, outcome: Outcome, count: i64, via_query: i64) {
        let key = (minute, outcome);
        match self.counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, (n, via))) => {
                *n += count;
                *via += via_query;
            }
            None => self.counts.push((key, (count, via_query))),
        }
    }

    /// Keeps `(at, ip)` as the last use unless a newer one is kept.
    fn note_use(&mut self, at: i64, ip: Option<IpAddr>) {
        if self.last_use.is_none_or(|(previous, _)| previous <= at) {
            self.last_use = Some((at, ip));
        }
    }
}

impl Activity {
    fn new(credential: CredentialId) -> Self {
        Self {
            tat: AtomicI64::new(0),
            accepted: AtomicU64::new(0),
            last_used: AtomicI64::new(i64::MIN),
            queued: AtomicBool::new(false),
            credential,
            state: Mutex::new(ActivityState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One request against the limit at `pace`: the arrival time moves only when it is
    /// allowed.
    fn limit(&self, pace: &Pace, now_nanos: i64) -> RateDecision {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let (next, decision) = pace.step(tat, now_nanos);
            let Some(next) = next else {
                return decision;
            };
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return decision,
                Err(actual) => tat = actual,
            }
        }
    }

    /// Counts an accepted request and notes it as the last use; true when the cell must
    /// join the pending list.
    fn accept(&self, request: &Request) -> bool {
        let minute = request.minute();
        if request.via_query || !self.count_accepted(minute) {
            let mut state = self.lock();
            self.roll_over(&mut state, minute);
            state.add(minute, Outcome::Valid, 1, i64::from(request.via_query));
        }
        let noted = self.last_used.load(Ordering::Relaxed);
        if request.at_millis.saturating_sub(noted) >= LAST_USE_RESOLUTION {
            let mut state = self.lock();
            state.note_use(request.at_millis, request.ip);
            // Written only with the lock held: a plain store, no read-modify-write.
            if let Some((newest, _)) = state.last_use {
                self.last_used.store(newest, Ordering::Relaxed);
            }
        }
        self.enqueue()
    }

    /// Adds one to the accepted counter if it counts `minute`, without a lock.
    fn count_accepted(&self, minute: i64) -> bool {
        let Ok(tag) = u32::try_from(minute) else {
            return false;
        };
        let mut word = self.accepted.load(Ordering::Relaxed);
        while word >> 32 == u64::from(tag) && word & COUNT_MASK < COUNT_MASK {
            // Acquire: a flush that drained the counter before this increment marked the
            // cell unqueued first, and `enqueue` must see that.
            match self.accepted.compare_exchange_weak(
                word,
                word + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => word = actual,
            }
        }
        false
    }

    /// With the lock held: when `minute` is newer than the counter's, moves the counter's
    /// count into `state` and makes it count `minute` from zero.
    fn roll_over(&self, state: &mut ActivityState, minute: i64) {
        let Ok(tag) = u32::try_from(minute) else {
            return;
        };
        let fresh = u64::from(tag) << 32;
        let mut word = self.accepted.load(Ordering::Relaxed);
        while word >> 32 < u64::from(tag) || word == 0 {
            match self.accepted.compare_exchange_weak(
                word,
                fresh,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let count = (word & COUNT_MASK) as i64;
                    if count > 0 {
                        state.add((word >> 32) as i64, Outcome::Valid, count, 0);
                    }
                    return;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Counts a refused request by its outcome; true when the cell must join the pending
    /// list.
    fn refuse(&self, outcome: Outcome, request: &Request) -> bool {
        self.lock()
            .add(request.minute(), outcome, 1, i64::from(request.via_query));
        self.enqueue()
    }

    /// Marks the cell as holding something unwritten; true if it was not marked.
    fn enqueue(&self) -> bool {
        !self.queued.load(Ordering::Relaxed) && !self.queued.swap(true, Ordering::AcqRel)
    }

    /// Takes everything unwritten (the cell leaves the pending list first, so a record
    /// arriving meanwhile puts it back).
    fn take(&self) -> (Option<LastUse>, Vec<Tally>) {
        self.queued.store(false, Ordering::Release);
        let mut state = self.lock();
        // The next use after a flush is recorded whatever its time: one of a clock set
        // back shows within a flush, not once the clock has caught up.
        self.last_used.store(i64::MIN, Ordering::Relaxed);
        let word = self.accepted.fetch_and(!COUNT_MASK, Ordering::AcqRel);
        let count = (word & COUNT_MASK) as i64;
        if count > 0 {
            state.add((word >> 32) as i64, Outcome::Valid, count, 0);
        }
        let mut counts = std::mem::take(&mut state.counts);
        // A recount can cancel an accepted request not yet written: nothing to write.
        counts.retain(|(_, (n, via))| *n != 0 || *via != 0);
        (state.last_use.take(), counts)
    }

    /// Moves one request of `request`'s minute from `VALID` to `outcome`.
    fn recount(&self, outcome: Outcome, request: &Request) -> bool {
        let via = i64::from(request.via_query);
        let mut state = self.lock();
        state.add(request.minute(), Outcome::Valid, -1, -via);
        state.add(request.minute(), outcome, 1, via);
        drop(state);
        self.enqueue()
    }
}

/// An accepted request as usage counted it, so that a refusal decided after admission (a
/// management operation the credential's scopes do not allow) can count it again with
/// its real outcome.
#[derive(Debug, Clone)]
pub struct Counted {
    cell: Arc<Activity>,
    request: Request,
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
    /// Per rule: its last decision, and its last refusal if it refused one.
    matches: DashMap<IpRuleId, (OffsetDateTime, Option<OffsetDateTime>), RandomState>,
    /// Per credential: the newest refused use of a secret a rotation replaced, and from
    /// where (rare: a client behind on a rotation).
    old_uses: DashMap<CredentialId, (OffsetDateTime, Option<IpAddr>), RandomState>,
}

impl UsageRecorder {
    /// The activity cell of `credential`, shared with every other holder of it.
    pub fn cell(&self, credential: &CredentialId) -> Arc<Activity> {
        let mut entry = self.cells.entry(credential.clone()).or_default();
        if let Some(cell) = entry.upgrade() {
            return cell;
        }
        let cell = Arc::new(Activity::new(credential.clone()));
        *entry = Arc::downgrade(&cell);
        cell
    }

    /// Counts a request of the credential of `cell` against its limit at `pace`: an
    /// accepted one is recorded as its last use and counted `VALID`, a refused one
    /// `RATE_LIMITED`.
    pub fn admit(&self, cell: &Arc<Activity>, pace: &Pace, request: Request) -> RateDecision {
        let decision = cell.limit(pace, request.at_millis.saturating_mul(1_000_000));
        let first = if decision.allowed {
            cell.accept(&request)
        } else {
            cell.refuse(Outcome::RateLimited, &request)
        };
        if first {
            self.mark_pending(cell);
        }
        decision
    }

    /// The mark of a request [`UsageRecorder::admit`] accepted, for
    /// [`UsageRecorder::recount`].
    pub fn counted(&self, cell: &Arc<Activity>, request: Request) -> Counted {
        Counted {
            cell: cell.clone(),
            request,
        }
    }

    /// Counts a request accepted at admission with the outcome it really had: one fewer
    /// `VALID` in its minute, one more `outcome`. Call it once per [`Counted`].
    pub fn recount(&self, counted: &Counted, outcome: Outcome) {
        if counted.cell.recount(outcome, &counted.request) {
            self.mark_pending(&counted.cell);
        }
    }

    /// Records an accepted request of the credential of `cell` outside any rate limit.
    pub fn record_use(&self, cell: &Arc<Activity>, request: Request) {
        if cell.accept(&request) {
            self.mark_pending(cell);
        }
    }

    /// Counts a refused request of the credential of `cell`, by its outcome.
    pub fn record_refusal(&self, cell: &Arc<Activity>, outcome: Outcome, request: Request) {
        if cell.refuse(outcome, &request) {
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
        self.matches
            .entry(rule.clone())
            .and_modify(|(matched, _)| *matched = (*matched).max(at))
            .or_insert((at, None));
    }

    /// Notes that `rule` refused a request at `at` (which is also a decision).
    pub fn record_block(&self, rule: &IpRuleId, at: OffsetDateTime) {
        self.matches
            .entry(rule.clone())
            .and_modify(|(matched, blocked)| {
                *matched = (*matched).max(at);
                *blocked = Some(blocked.map_or(at, |b| b.max(at)));
            })
            .or_insert((at, Some(at)));
    }

    /// Notes that a secret a rotation replaced was presented for `credential` at `at` from
    /// `ip` (and refused), keeping the newest.
    pub fn record_old_secret(
        &self,
        credential: &CredentialId,
        at: OffsetDateTime,
        ip: Option<IpAddr>,
    ) {
        self.old_uses
            .entry(credential.clone())
            .and_modify(|kept| {
                if at > kept.0 {
                    *kept = (at, ip);
                }
            })
            .or_insert((at, ip));
    }

    /// Drops the bookkeeping of credentials no longer held anywhere.
    pub fn prune(&self) {
        self.cells.retain(|_, cell| cell.strong_count() > 0);
    }

    /// Writes everything recorded so far. What cannot be written is kept for the next
    /// flush, unless something newer arrived meanwhile.
    pub async fn flush(&self, store: &dyn UsageStore) -> Result<(), StoreError> {
        let pending = self.take_pending_cells();
        let (mut uses, mut counts) = (Vec::new(), Vec::new());
        // A few hundred cells at a time, yielding between: a thousand keys in use would
        // otherwise hold up the requests on this worker for most of a millisecond.
        for cells in pending.chunks(FLUSH_CHUNK) {
            take_rows(cells, &mut uses, &mut counts);
            tokio::task::yield_now().await;
        }
        let written = match store.record_credential_uses(&uses).await {
            Ok(()) => store.record_usage(&counts).await,
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            self.restore(&pending, &uses, &counts);
            return Err(error);
        }
        let matches: Vec<RuleMatch> = drain(&self.matches)
            .into_iter()
            .map(|(rule, (matched_at, blocked_at))| RuleMatch {
                rule,
                matched_at,
                blocked_at,
            })
            .collect();
        let old_uses: Vec<CredentialUse> = drain(&self.old_uses)
            .into_iter()
            .map(|(credential_id, (at, ip))| CredentialUse {
                credential_id,
                at,
                ip,
            })
            .collect();
        if let Err(error) = store.record_old_secret_uses(&old_uses).await {
            for used in old_uses {
                self.record_old_secret(&used.credential_id, used.at, used.ip);
            }
            return Err(error);
        }
        if let Err(error) = store.record_rule_matches(&matches).await {
            for found in matches {
                self.matches
                    .entry(found.rule)
                    .and_modify(|(matched, blocked)| {
                        *matched = (*matched).max(found.matched_at);
                        *blocked = (*blocked).max(found.blocked_at);
                    })
                    .or_insert((found.matched_at, found.blocked_at));
            }
            return Err(error);
        }
        Ok(())
    }

    /// Takes the list of cells holding something unwritten.
    fn take_pending_cells(&self) -> Vec<Arc<Activity>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Takes the pending cells and what they hold unwritten, as rows, at once.
    #[cfg(test)]
    fn take_pending(&self) -> (Vec<Arc<Activity>>, Vec<CredentialUse>, Vec<UsageCount>) {
        let pending = self.take_pending_cells();
        let (mut uses, mut counts) = (Vec::new(), Vec::new());
        take_rows(&pending, &mut uses, &mut counts);
        (pending, uses, counts)
    }
}

/// Cells a flush takes between two yields to the runtime.
const FLUSH_CHUNK: usize = 256;

/// Takes what `cells` hold unwritten, as rows.
fn take_rows(cells: &[Arc<Activity>], uses: &mut Vec<CredentialUse>, counts: &mut Vec<UsageCount>) {
    for cell in cells {
        let (last_use, taken) = cell.take();
        if let Some((at, ip)) = last_use {
            uses.push(CredentialUse {
                credential_id: cell.credential.clone(),
                at: from_millis(at),
                ip,
            });
        }
        counts.extend(
            taken
                .into_iter()
                .map(|((minute, outcome), (count, via_query))| UsageCount {
                    credential_id: cell.credential.clone(),
                    minute,
                    outcome: outcome.code().to_owned(),
                    count,
                    via_query,
                }),
        );
    }
}

impl UsageRecorder {
    /// Puts back what a failed flush took, merged with anything recorded since.
    fn restore(&self, cells: &[Arc<Activity>], uses: &[CredentialUse], counts: &[UsageCount]) {
        for cell in cells {
            let mut state = cell.lock();
            if let Some(used) = uses.iter().find(|u| u.credential_id == cell.credential) {
                state.note_use(to_millis(used.at), used.ip);
            }
            for count in counts.iter().filter(|c| c.credential_id == cell.credential) {
                if let Some(outcome) = Outcome::from_code(&count.outcome) {
                    state.add(count.minute, outcome, count.count, count.via_query);
                }
            }
            drop(state);
            if cell.enqueue() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::rate_limit::RateLimit;

    fn request(at_millis: i64) -> Request {
        Request {
            at_millis,
            ip: None,
            via_query: false,
        }
    }

    /// Sums of what has been taken, by minute, for `outcome`.
    fn sums(counts: &[UsageCount], outcome: Outcome) -> std::collections::BTreeMap<i64, i64> {
        let mut sums = std::collections::BTreeMap::new();
        for count in counts.iter().filter(|c| c.outcome == outcome.code()) {
            *sums.entry(count.minute).or_default() += count.count;
        }
        sums
    }

    #[test]
    fn uses_from_many_threads_across_minutes_and_flushes_are_each_counted_once() {
        let recorder = UsageRecorder::default();
        let cell = recorder.cell(&CredentialId::generate());
        let taken = Mutex::new(Vec::new());
        const THREADS: i64 = 4;
        const PER_THREAD: i64 = 20_000;
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (recorder, cell) = (&recorder, &cell);
                scope.spawn(move || {
                    for i in 0..PER_THREAD {
                        // Minutes move forward, with some requests arriving late.
                        let minute = i / 5_000 - i64::from(i % 7 == 0 && i >= 5_000);
                        let at = 1_000 * MINUTE_MILLIS + minute * MINUTE_MILLIS + thread;
                        recorder.record_use(cell, request(at));
                    }
                });
            }
            scope.spawn(|| {
                for _ in 0..200 {
                    taken.lock().unwrap().extend(recorder.take_pending().2);
                    std::thread::yield_now();
                }
            });
        });
        let mut counts = taken.into_inner().unwrap();
        counts.extend(recorder.take_pending().2);
        let sums = sums(&counts, Outcome::Valid);
        assert_eq!(sums.values().sum::<i64>(), THREADS * PER_THREAD, "{sums:?}");
        let expected: std::collections::BTreeMap<i64, i64> = (0..4)
            .map(|minute| {
                let late_into =
                    |m: i64| (m * 5_000..(m + 1) * 5_000).filter(|i| i % 7 == 0).count();
                let own = 5_000 - if minute == 0 { 0 } else { late_into(minute) } as i64;
                let late = if minute < 3 {
                    late_into(minute + 1) as i64
                } else {
                    0
                };
                (1_000 + minute, THREADS * (own + late))
            })
            .collect();
        assert_eq!(sums, expected);
        assert_eq!(recorder.take_pending().2, Vec::new(), "nothing left behind");
    }

    #[test]
    fn the_first_use_after_a_flush_is_recorded_even_if_the_clock_went_back() {
        let recorder = UsageRecorder::default();
        let cell = recorder.cell(&CredentialId::generate());
        let later = 2_000 * MINUTE_MILLIS;
        recorder.record_use(&cell, request(later));
        assert_eq!(recorder.take_pending().1.len(), 1);
        recorder.record_use(&cell, request(later - 10_000));
        let uses = recorder.take_pending().1;
        assert_eq!(uses.len(), 1, "{uses:?}");
        assert_eq!(uses[0].at, from_millis(later - 10_000));
    }

    #[test]
    fn the_last_use_is_kept_to_the_second() {
        let recorder = UsageRecorder::default();
        let cell = recorder.cell(&CredentialId::generate());
        let t = 3_000 * MINUTE_MILLIS;
        let last_use = |recorder: &UsageRecorder| recorder.take_pending().1[0].at;
        for at in [t, t + 500, t + 999] {
            recorder.record_use(&cell, request(at));
        }
        assert_eq!(last_use(&recorder), from_millis(t));
        for at in [t + 1_200, t + 2_199, t + 2_200] {
            recorder.record_use(&cell, request(at));
        }
        assert_eq!(last_use(&recorder), from_millis(t + 2_200));
    }

    #[test]
    fn a_burst_from_many_threads_admits_exactly_the_burst() {
        let recorder = UsageRecorder::default();
        let cell = recorder.cell(&CredentialId::generate());
        let pace = RateLimit {
            per_second: 1,
            burst: 1_000,
        }
        .pace();
        let admitted = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        // All at one instant: no time for the limit to recover.
                        if recorder.admit(&cell, &pace, request(5_000)).allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 1_000);
        let counts = recorder.take_pending().2;
        assert_eq!(sums(&counts, Outcome::Valid).values().sum::<i64>(), 1_000);
        assert_eq!(
            sums(&counts, Outcome::RateLimited).values().sum::<i64>(),
            3_000
        );
    }
}
