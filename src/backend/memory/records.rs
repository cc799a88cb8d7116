//! Lock records, in a concurrent map of their own: nothing is ever evicted
//! from it to make room, and a lock operation that nobody else is racing
//! costs one lookup under one shard lock, with no async compute.
//!
//! - **The map** is a [`DashMap`] (sharded `RwLock`ed hash maps), picked by
//!   measuring: an insert-if-absent and a compare-remove cost about 90 ns
//!   together on this crate's benchmark machine, against about 100 ns for a
//!   hand-sharded `std`/`parking_lot` mutex map, 150–450 ns for `papaya`,
//!   280 ns for `scc` and about 3.5 µs for moka's per-key compute. Its
//!   entry API keeps a shard locked while a lock operation decides, which is
//!   what the fast path below needs.
//! - **Deadlines** live in the record and are checked on every access; an
//!   expired record counts as absent and is replaced in place by the next
//!   `try_lock`.
//! - **The sweep**: whenever the map has doubled since the last sweep (and
//!   holds over [`MIN_SWEEP`] records), the insert that doubled it drops
//!   every expired record. That is amortized O(1) per insert and keeps the
//!   map within twice its live records (plus [`MIN_SWEEP`]).
//! - **Busy stripes**: a counter per stripe of keys, raised by every write
//!   that goes through the value table's per-key compute for as long as it
//!   runs. A lock operation takes the fast path (this map alone) only when,
//!   under the key's shard lock, its stripe is not busy and the value table
//!   holds nothing at the key; otherwise it goes through the compute like
//!   every other write. The [key space](super::keyspace) explains why that
//!   keeps one key space atomic.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::mapref::entry::Entry as Slot;
use dashmap::DashMap;
use foldhash::fast::RandomState;
use tokio::time::Instant;

use super::entry::Entry;

/// Stripes of busy counters; a power of two.
const STRIPES: usize = 4096;
/// The map is never swept below this many records.
pub(super) const MIN_SWEEP: usize = 1024;

/// A lock record: its owner's token, its CAS version and its deadline.
#[derive(Clone, Debug)]
pub(super) struct Record {
    pub(super) owner: Owner,
    pub(super) version: u64,
    pub(super) expires_at: Instant,
}

/// Owner tokens up to this long are kept inline (stampede's are 36 bytes).
const INLINE_OWNER: usize = 40;

/// An owner token, inline when short: taking and releasing a lock then
/// allocates nothing for it.
#[derive(Clone, Debug)]
pub(super) enum Owner {
    Inline { len: u8, bytes: [u8; INLINE_OWNER] },
    Heap(Bytes),
}

impl Owner {
    pub(super) fn new(owner: &[u8]) -> Owner {
        match u8::try_from(owner.len()) {
            Ok(len) if owner.len() <= INLINE_OWNER => {
                let mut bytes = [0; INLINE_OWNER];
                bytes[..owner.len()].copy_from_slice(owner);
                Owner::Inline { len, bytes }
            }
            _ => Owner::Heap(Bytes::copy_from_slice(owner)),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Owner::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Owner::Heap(bytes) => bytes,
        }
    }

    fn to_bytes(&self) -> Bytes {
        match self {
            Owner::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Owner::Heap(bytes) => bytes.clone(),
        }
    }
}

impl Record {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    fn is_held_by(&self, owner: &[u8], now: Instant) -> bool {
        self.is_live(now) && self.owner.as_slice() == owner
    }

    /// The record as the key space's entries show it.
    pub(super) fn entry(&self) -> Entry {
        Entry::lock_record_until(self.owner.to_bytes(), self.version, self.expires_at)
    }
}

/// A lock operation's fast-path answer, or word that it must take the
/// slow path (the value table's per-key compute).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fast<T> {
    Done(T),
    Slow,
}

/// Lock records by key. See the module docs.
pub(super) struct Records {
    map: DashMap<Box<str>, Record, RandomState>,
    busy: Box<[AtomicU32]>,
    /// Records in the map, live or not.
    len: AtomicUsize,
    /// The next sweep runs when `len` passes this.
    sweep_above: AtomicUsize,
}

/// Marks a key's stripe busy while a write through the value table runs.
pub(super) struct Busy<'a>(&'a AtomicU32);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Records {
    /// An empty map.
    pub(super) fn new() -> Records {
        Records {
            map: DashMap::with_hasher(RandomState::default()),
            busy: (0..STRIPES).map(|_| AtomicU32::new(0)).collect(),
            len: AtomicUsize::new(0),
            sweep_above: AtomicUsize::new(MIN_SWEEP),
        }
    }

    fn stripe(&self, key: &str) -> &AtomicU32 {
        &self.busy[self.map.hash_usize(&key) & (STRIPES - 1)]
    }

    /// Marks `key` busy until the guard drops: call before a write through
    /// the value table, so lock operations on `key` take the slow path.
    pub(super) fn writing(&self, key: &str) -> Busy<'_> {
        let stripe = self.stripe(key);
        stripe.fetch_add(1, Ordering::SeqCst);
        Busy(stripe)
    }

    /// Whether the fast path may act: no write through the value table is
    /// under way on `stripe`, and `idle()` (the value table holds nothing
    /// at the key). Call under the key's shard lock.
    fn fast_path_open(stripe: &AtomicU32, idle: impl FnOnce() -> bool) -> bool {
        stripe.load(Ordering::SeqCst) == 0 && idle()
    }

    /// The live record at `key`, as an entry.
    pub(super) fn get(&self, key: &str, now: Instant) -> Option<Entry> {
        let record = self.map.get(key)?;
        record.is_live(now).then(|| record.entry())
    }

    /// Creates the record `make()` at `key` unless a live one is there
    /// (then `Err` with what its lease has left).
    pub(super) fn create(
        &self,
        key: &str,
        now: Instant,
        idle: impl FnOnce() -> bool,
        make: impl FnOnce() -> Record,
    ) -> Fast<Result<(), Duration>> {
        let stripe = self.stripe(key);
        let created = match self.map.entry(Box::from(key)) {
            Slot::Occupied(held) if held.get().is_live(now) => {
                let remaining = held.get().expires_at.saturating_duration_since(now);
                return Fast::Done(Err(remaining));
            }
            _ if !Self::fast_path_open(stripe, idle) => return Fast::Slow,
            Slot::Occupied(mut expired) => {
                expired.insert(make());
                false
            }
            Slot::Vacant(free) => {
                free.insert(make());
                true
            }
        };
        if created {
            self.grew(now);
        }
        Fast::Done(Ok(()))
    }

    /// Removes the record at `key` if `owner` holds it.
    pub(super) fn remove_held(
        &self,
        key: &str,
        owner: &[u8],
        now: Instant,
        idle: impl FnOnce() -> bool,
    ) -> Fast<bool> {
        let stripe = self.stripe(key);
        let mut slow = false;
        let removed = self.map.remove_if(key, |_, record| {
            if !record.is_held_by(owner, now) {
                return false;
            }
            slow = !Self::fast_path_open(stripe, idle);
            !slow
        });
        if removed.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        match slow {
            true => Fast::Slow,
            false => Fast::Done(removed.is_some()),
        }
    }

    /// Moves the deadline of the record at `key` to `until` if `owner`
    /// holds it.
    pub(super) fn extend_held(
        &self,
        key: &str,
        owner: &[u8],
        now: Instant,
        until: Instant,
        idle: impl FnOnce() -> bool,
    ) -> Fast<bool> {
        let stripe = self.stripe(key);
        let Some(mut record) = self.map.get_mut(key) else {
            return Fast::Done(false);
        };
        if !record.is_held_by(owner, now) {
            return Fast::Done(false);
        }
        if !Self::fast_path_open(stripe, idle) {
            return Fast::Slow;
        }
        record.expires_at = until;
        Fast::Done(true)
    }

    /// Keeps `record` at `key`, replacing any record there. Slow path only:
    /// call inside the key's compute.
    pub(super) fn put(&self, key: &str, record: Record, now: Instant) {
        if self.map.insert(Box::from(key), record).is_none() {
            self.grew(now);
        }
    }

    /// Drops the record at `key` if it is still the one at `version`.
    pub(super) fn remove_version(&self, key: &str, version: u64) {
        if self
            .map
            .remove_if(key, |_, record| record.version == version)
            .is_some()
        {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Counts a new record; sweeps when the map has doubled since the last
    /// sweep.
    fn grew(&self, now: Instant) {
        let len = self.len.fetch_add(1, Ordering::Relaxed) + 1;
        let above = self.sweep_above.load(Ordering::Relaxed);
        // One sweeper at a time: the one that moves the bar out of reach.
        if len > above
            && self
                .sweep_above
                .compare_exchange(above, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let swept = self.sweep(now);
            let left = self
                .len
                .fetch_sub(swept, Ordering::Relaxed)
                .saturating_sub(swept);
            let next = left.saturating_mul(2).max(MIN_SWEEP);
            self.sweep_above.store(next, Ordering::Relaxed);
        }
    }

    /// Drops every expired record; returns how many.
    fn sweep(&self, now: Instant) -> usize {
        let mut swept = 0;
        self.map.retain(|_, record| {
            let live = record.is_live(now);
            swept += usize::from(!live);
            live
        });
        tracing::trace!(swept, "swept expired lock records");
        swept
    }

    /// The keys of every record kept (live or not) that start with `prefix`.
    pub(super) fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.map
            .iter()
            .filter(|record| record.key().starts_with(prefix))
            .map(|record| record.key().to_string())
            .collect()
    }

    /// How many records are kept, live or not.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}
