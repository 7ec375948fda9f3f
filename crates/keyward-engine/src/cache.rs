//! A concurrent map whose entries expire, bounded in size: the caches of the verification
//! path.
//!
//! It is an open-addressing table with linear probing, split into shards behind
//! reader-writer locks. A slot holds its key and value together, so finding a cached
//! credential among a million reads one slot — one or two adjacent cache lines — where a
//! Swiss table (hashbrown, under `DashMap`) first reads its control bytes and then the
//! bucket: two dependent memory accesses, each a miss across a million entries, where a
//! check of a cached credential should wait on memory as little as it can. BENCHMARKS.md
//! has the measurements, and those of a general-purpose cache (moka).
//!
//! Times are milliseconds of the injected clock, which a check reads anyway. An entry
//! stamped more than a second later than the time it is read at (the clock was set back)
//! counts as expired, so a clock moving either way only ever shortens a lifetime; within
//! that second, a stamp a little ahead is another thread's reading of the same clock.

use std::hash::{BuildHasher, Hash};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use foldhash::fast::RandomState;

/// How many shards a cache has; the top bits of a key's hash choose one.
const SHARDS: usize = 64;
/// Slots of a shard's first table.
const MIN_SLOTS: usize = 16;

/// Entries live `ttl` after insertion; past `capacity` entries, expired ones are dropped
/// first, then arbitrary ones, so memory stays bounded.
pub struct TtlCache<K, V> {
    shards: Box<[LockedShard<K, V>]>,
    hasher: RandomState,
    /// The lifetime, in milliseconds.
    ttl: i64,
    /// Most entries of one shard.
    shard_capacity: usize,
}

impl<K, V> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A shard behind its lock.
type LockedShard<K, V> = Padded<RwLock<Shard<K, V>>>;

/// A shard's lock on its own pair of cache lines: two cores locking neighbouring shards do
/// not contend for one line.
#[repr(align(128))]
struct Padded<T>(T);

/// One shard: slots probed linearly from the key's hash, at most half of them used, so a
/// probe meets an empty slot soon.
struct Shard<K, V> {
    slots: Vec<Slot<K, V>>,
    /// Slots holding an entry.
    live: usize,
    /// Slots holding an entry or a tombstone.
    used: usize,
}

enum Slot<K, V> {
    Empty,
    /// A removed entry: probes go on past it.
    Deleted,
    Full(Entry<K, V>),
}

struct Entry<K, V> {
    key: K,
    /// When it was inserted (milliseconds since the epoch).
    inserted: i64,
    value: V,
}

/// How far ahead of a reading of the clock another thread's reading may be, in
/// milliseconds: a stamp that much ahead is not a clock set back.
const CLOCK_SLACK: i64 = 1_000;

/// Whether something stamped at `stamped` is still alive at `now`, with lifetime `ttl`
/// (all milliseconds since the epoch).
pub fn alive(stamped: i64, now: i64, ttl: i64) -> bool {
    (-CLOCK_SLACK..ttl).contains(&now.saturating_sub(stamped))
}

impl<K: Eq + Hash, V> Shard<K, V> {
    fn new() -> Self {
        Self {
            slots: Vec::new(),
            live: 0,
            used: 0,
        }
    }

    /// The slot holding `key`, probing from `hash`.
    fn position(&self, key: &K, hash: u64) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = slot_of(hash, mask);
        // At most half the slots are used, so an empty one ends every probe.
        loop {
            match &self.slots[i] {
                Slot::Empty => return None,
                Slot::Full(entry) if entry.key == *key => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn entry(&self, key: &K, hash: u64) -> Option<&Entry<K, V>> {
        match &self.slots[self.position(key, hash)?] {
            Slot::Full(entry) => Some(entry),
            _ => None,
        }
    }

    fn remove(&mut self, key: &K, hash: u64) {
        if let Some(i) = self.position(key, hash) {
            self.slots[i] = Slot::Deleted;
            self.live -= 1;
        }
    }

    /// Stores an entry, replacing any under the same key.
    fn insert(&mut self, entry: Entry<K, V>, hash: u64, hasher: &RandomState) {
        if (self.used + 1) * 2 > self.slots.len() {
            self.rebuild(hasher);
        }
        if let Some(i) = self.position(&entry.key, hash) {
            self.slots[i] = Slot::Full(entry);
            return;
        }
        let mask = self.slots.len() - 1;
        let mut i = slot_of(hash, mask);
        loop {
            match self.slots[i] {
                Slot::Empty => {
                    self.used += 1;
                    break;
                }
                Slot::Deleted => break,
                Slot::Full(_) => i = (i + 1) & mask,
            }
        }
        self.slots[i] = Slot::Full(entry);
        self.live += 1;
    }

    /// Moves the entries into a table sized for them (at most a quarter full), leaving
    /// the tombstones behind.
    fn rebuild(&mut self, hasher: &RandomState) {
        let len = (self.live * 4).next_power_of_two().max(MIN_SLOTS);
        let old = std::mem::take(&mut self.slots);
        self.slots.resize_with(len, || Slot::Empty);
        self.live = 0;
        self.used = 0;
        for slot in old {
            if let Slot::Full(entry) = slot {
                let hash = hasher.hash_one(&entry.key);
                self.insert(entry, hash, hasher);
            }
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&Entry<K, V>) -> bool) {
        for slot in &mut self.slots {
            if let Slot::Full(entry) = slot
                && !keep(entry)
            {
                *slot = Slot::Deleted;
                self.live -= 1;
            }
        }
    }
}

/// The first slot a key's hash probes: its low bits (its top bits chose the shard).
fn slot_of(hash: u64, mask: usize) -> usize {
    (hash as usize) & mask
}

/// Most entries of one shard of a cache of `capacity`: its share, and room for the
/// unevenness of hashing. `capacity` keys fall into the shards as a binomial draw, `share`
/// a shard on average with a standard deviation of about √share; a shard whose count went
/// past its bare share would evict an eighth of itself at every insert of a new key (a
/// cache of a million holding a million credentials lost thousands a second that way).
/// Five deviations of room make that one chance in millions per shard, for 3 % more memory
/// at a million.
fn shard_capacity(capacity: usize) -> usize {
    let share = capacity.div_ceil(SHARDS).max(1);
    share + 5 * share.isqrt() + 4
}

impl<K: Eq + Hash, V> TtlCache<K, V> {
    /// An empty cache.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Padded(RwLock::new(Shard::new())))
                .collect(),
            hasher: RandomState::default(),
            ttl: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            shard_capacity: shard_capacity(capacity),
        }
    }

    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard<K, V>> {
        &self.shards[(hash >> 58) as usize % SHARDS].0
    }

    fn read(&self, hash: u64) -> RwLockReadGuard<'_, Shard<K, V>> {
        self.shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, Shard<K, V>> {
        self.shard(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The value under `key` if it was inserted less than `ttl` before `now`.
    #[cfg(test)]
    fn get(&self, key: &K, now: i64) -> Option<V>
    where
        V: Clone,
    {
        self.with(key, now, V::clone)
    }

    /// `read` applied to the value under `key`, if it was inserted less than `ttl` before
    /// `now`: the value is borrowed in place, not copied out.
    pub fn with<R>(&self, key: &K, now: i64, read: impl FnOnce(&V) -> R) -> Option<R> {
        let hash = self.hash(key);
        let shard = self.read(hash);
        let entry = shard.entry(key, hash)?;
        if alive(entry.inserted, now, self.ttl) {
            return Some(read(&entry.value));
        }
        drop(shard);
        let mut shard = self.write(hash);
        if shard
            .entry(key, hash)
            .is_some_and(|entry| !alive(entry.inserted, now, self.ttl))
        {
            shard.remove(key, hash);
        }
        None
    }

    /// Stores `value` under `key` as of `now`, making room if the cache is full.
    #[cfg(test)]
    fn insert(&self, key: K, value: V, now: i64) {
        self.insert_if(key, value, now, || true);
    }

    /// Stores `value` under `key` as of `now`, making room if the cache is full, if `keep`
    /// (asked with the key's shard locked) says so: a removal of the key, which takes the
    /// same lock, comes either before the question or after the insert.
    pub fn insert_if(&self, key: K, value: V, now: i64, keep: impl FnOnce() -> bool) {
        let hash = self.hash(&key);
        let mut shard = self.write(hash);
        if !keep() {
            return;
        }
        if shard.live >= self.shard_capacity && shard.position(&key, hash).is_none() {
            self.make_room(&mut shard, now);
        }
        let entry = Entry {
            key,
            inserted: now,
            value,
        };
        shard.insert(entry, hash, &self.hasher);
    }

    /// Removes `key`.
    pub fn remove(&self, key: &K) {
        let hash = self.hash(key);
        self.write(hash).remove(key, hash);
    }

    /// How many entries are held (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.0.read().unwrap_or_else(PoisonError::into_inner).live)
            .sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops a full shard's expired entries, then, if it is still full, enough for the
    /// entry about to come and an eighth of the shard.
    fn make_room(&self, shard: &mut Shard<K, V>, now: i64) {
        shard.retain(|entry| alive(entry.inserted, now, self.ttl));
        let mut excess =
            (shard.live + 1 + self.shard_capacity / 8).saturating_sub(self.shard_capacity);
        shard.retain(|_| {
            let evict = excess > 0;
            excess = excess.saturating_sub(1);
            !evict
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const T0: i64 = 1_780_000_000_000;

    #[test]
    fn entries_expire_after_their_lifetime() {
        let cache = TtlCache::new(Duration::from_millis(100), 10);
        cache.insert("k", 1, T0);
        assert_eq!(cache.get(&"k", T0 + 99), Some(1));
        assert_eq!(cache.with(&"k", T0 + 99, |v| v * 2), Some(2));
        assert_eq!(cache.get(&"k", T0 + 100), None);
        assert!(cache.is_empty(), "an expired entry is dropped when met");
    }

    #[test]
    fn an_entry_from_the_future_counts_as_expired() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        cache.insert("k", 1, T0);
        assert_eq!(
            cache.get(&"k", T0 - 1),
            Some(1),
            "another thread's reading of the clock"
        );
        assert_eq!(cache.get(&"k", T0 - 1_001), None, "the clock was set back");
    }

    #[test]
    fn the_size_stays_bounded() {
        for capacity in [1, 100, 6_400] {
            let cache = TtlCache::new(Duration::from_secs(60), capacity);
            let bound = shard_capacity(capacity) * SHARDS;
            for i in 0..100_000 {
                cache.insert(i, i, T0);
                assert!(cache.len() <= bound, "{} > {bound}", cache.len());
            }
            assert_eq!(cache.get(&99_999, T0), Some(99_999), "the newest is kept");
            let held = cache.len();
            cache.insert(99_999, 0, T0);
            assert_eq!(cache.get(&99_999, T0), Some(0));
            assert_eq!(cache.len(), held, "replacing an entry evicts nothing");
        }
    }

    #[test]
    fn a_cache_holds_as_many_entries_as_its_capacity() {
        for capacity in [6_400, 64_000, 1_000_000] {
            let cache = TtlCache::new(Duration::from_secs(60), capacity);
            for i in 0..capacity {
                cache.insert(i, i, T0);
            }
            assert_eq!(cache.len(), capacity, "nothing evicted");
            assert!((0..capacity).all(|i| cache.get(&i, T0) == Some(i)));
        }
    }

    #[test]
    fn an_insert_is_kept_only_if_asked_to() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        cache.insert_if("no", 1, T0, || false);
        cache.insert_if("yes", 2, T0, || true);
        assert_eq!(
            (cache.get(&"no", T0), cache.get(&"yes", T0)),
            (None, Some(2))
        );
    }

    #[test]
    fn expired_entries_make_room_first() {
        let cache = TtlCache::new(Duration::from_secs(1), 1);
        // A shard filled with old entries, then live ones, then one more.
        let shard_of = |key: &i32| (cache.hash(key) >> 58) as usize % SHARDS;
        let mut same_shard = (0..).filter(|k| shard_of(k) == shard_of(&0));
        let full = cache.shard_capacity;
        let old: Vec<i32> = same_shard.by_ref().take(full / 2).collect();
        let live: Vec<i32> = same_shard.by_ref().take(full - full / 2).collect();
        let newer = same_shard.next().unwrap();
        for &key in &old {
            cache.insert(key, 0, T0);
        }
        for &key in &live {
            cache.insert(key, 1, T0 + 900);
        }
        cache.insert(newer, 2, T0 + 1_200);
        assert_eq!(cache.get(&newer, T0 + 1_200), Some(2));
        assert!(live.iter().all(|key| cache.get(key, T0 + 1_200) == Some(1)));
        assert_eq!(
            cache.len(),
            live.len() + 1,
            "the expired entries went first"
        );
    }

    #[test]
    fn entries_past_removed_ones_are_still_found() {
        let cache = TtlCache::new(Duration::from_secs(60), usize::MAX);
        for i in 0..20_000 {
            cache.insert(i, i, T0);
        }
        for i in (0..20_000).step_by(2) {
            cache.remove(&i);
        }
        for i in 0..20_000 {
            let expected = (i % 2 == 1).then_some(i);
            assert_eq!(cache.get(&i, T0), expected, "key {i}");
        }
        assert_eq!(cache.len(), 10_000);
        for i in (0..20_000).step_by(2) {
            cache.insert(i, i + 1, T0);
        }
        for i in 0..20_000 {
            let expected = if i % 2 == 0 { i + 1 } else { i };
            assert_eq!(cache.get(&i, T0), Some(expected), "key {i}, reinserted");
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Get(u16),
        Advance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3_000u16, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => (0..3_000u16).prop_map(Op::Remove),
            3 => (0..3_000u16).prop_map(Op::Get),
            1 => (0..400i64).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// The table answers as a `HashMap` of (value, insertion time) under any sequence
        /// of inserts, removals, lookups and passing time: growth, tombstones and reuse of
        /// their slots included.
        #[test]
        fn behaves_as_a_map_with_lifetimes(ops in proptest::collection::vec(op(), 1..1_500)) {
            let cache = TtlCache::new(Duration::from_millis(1_000), usize::MAX);
            let mut model: HashMap<u16, (u32, i64)> = HashMap::new();
            let mut now = T0;
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        cache.insert(k, v, now);
                        model.insert(k, (v, now));
                    }
                    Op::Remove(k) => {
                        cache.remove(&k);
                        model.remove(&k);
                    }
                    Op::Get(k) => {
                        let expected = model
                            .get(&k)
                            .filter(|(_, at)| alive(*at, now, 1_000))
                            .map(|(v, _)| *v);
                        prop_assert_eq!(cache.get(&k, now), expected);
                        if expected.is_none() {
                            model.remove(&k);
                        }
                    }
                    Op::Advance(ms) => now += ms,
                }
                prop_assert_eq!(cache.len(), model.len());
            }
        }
    }
}
