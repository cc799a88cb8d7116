//! One key space over two tables: every key holds a value, a fill
//! placeholder or a lock record, as on Redis and memcached, while lock
//! records stay out of reach of size eviction and off moka's compute.
//!
//! - **`values`**, the moka table bounded by bytes, holds data and fill
//!   placeholders.
//! - **`records`** ([`Records`]) holds lock records, in a map nothing
//!   evicts from.
//!
//! A key's content is its live entry in `values`, else its live record in
//! `records`. Reads look in that order, without a lock. Writes keep the two
//! tables from disagreeing in one of two ways:
//!
//! - **The slow path**, taken by every value write (and by a lock operation
//!   that finds anything in `values`): moka's per-key compute on `values`
//!   ([`KeySpace::compute`]), which reads the record under the key's shard
//!   lock when `values` holds nothing live, and marks the key's stripe busy
//!   ([`Records::writing`]) from before the compute until after it.
//! - **The fast path** of `try_lock`, `release` and `extend`: the record
//!   map alone, under the key's shard lock, taken only when the stripe is
//!   not busy and `values` holds nothing at the key. Why that is atomic
//!   against the slow path: a value write marks the stripe busy *before*
//!   its compute. If that came first, the fast path sees the mark (or, if
//!   the write is over, its entry in `values`) and steps aside; if it came
//!   later, the write's compute has not yet read the record map, and will
//!   read it under the shard lock the fast path holds, so it sees the
//!   record.
//!
//! A value write over a lock record (a `set` of `"k-lock"` while it is
//! held) puts its value in `values` first and then drops the record, so a
//! reader sees the record until it sees the value, never neither. If the
//! write is cancelled in between, a background task settles whether the
//! value landed (then it drops the record) or not (the record stays).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache as MokaCache;
use moka::ops::compute::Op;
use tokio::time::Instant;

use super::entry::{Entry, Kind, ReclaimAtExpiry, Table};
use super::records::{Fast, Owner, Record, Records};

/// Bytes charged per entry on top of its key and value, for the entry itself.
pub(super) const ENTRY_OVERHEAD: u64 = 64;

/// Every key's entry. See the module docs.
pub(super) struct KeySpace {
    values: Table,
    records: Arc<Records>,
}

/// Where the live entry a compute decided on came from.
#[derive(Clone, Copy)]
enum Source {
    Nothing,
    Value,
    /// The lock record at this version.
    Record(u64),
}

impl KeySpace {
    /// An empty key space whose `values` table holds about `max_capacity`
    /// bytes of keys and values.
    pub(super) fn new(max_capacity: u64) -> KeySpace {
        let values = MokaCache::builder()
            .max_capacity(max_capacity)
            .weigher(|key: &String, entry: &Entry| {
                let size = entry.value.as_ref().map_or(0, Bytes::len) as u64;
                u32::try_from(key.len() as u64 + size + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(ReclaimAtExpiry)
            .build_with_hasher(foldhash::fast::RandomState::default());
        KeySpace {
            values,
            records: Arc::new(Records::new()),
        }
    }

    /// The live entry at `key` in `values` alone, as of `now`: one lookup,
    /// no lock. A miss may still be a lock record (see [`read`](Self::read)).
    pub(super) async fn cached_at(&self, key: &str, now: Instant) -> Option<Entry> {
        self.values
            .get(key)
            .await
            .filter(|entry| entry.is_live(now))
    }

    /// The live entry at `key`, read without a lock.
    pub(super) async fn read(&self, key: &str) -> Option<Entry> {
        self.read_at(key, Instant::now()).await
    }

    /// The live values at `keys`, in order, read without a lock and with
    /// one reading of the clock; lock records read as values, as in `read`.
    pub(super) async fn values_of(&self, keys: &[&str]) -> Vec<Option<Bytes>> {
        let now = Instant::now();
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.read_at(key, now).await.and_then(|entry| entry.value));
        }
        values
    }

    /// [`read`](KeySpace::read) as of `now`.
    pub(super) async fn read_at(&self, key: &str, now: Instant) -> Option<Entry> {
        match self.cached_at(key, now).await {
            Some(entry) => Some(entry),
            None => self.records.get(key, now),
        }
    }

    /// Whether `values` holds nothing at `key`, for the fast path (moka's
    /// own expiry: an entry it still keeps sends the caller the slow way).
    fn no_value_at(&self, key: &str) -> bool {
        !self.values.contains_key(key)
    }

    /// `try_lock`'s fast path: creates the record `make()` at `key` unless
    /// a live one is there (`Err` with its lease's remaining time).
    pub(super) fn create_record(
        &self,
        key: &str,
        now: Instant,
        make: impl FnOnce() -> Record,
    ) -> Fast<Result<(), Duration>> {
        self.records
            .create(key, now, || self.no_value_at(key), make)
    }

    /// `release`'s fast path: removes the record at `key` if `owner` holds it.
    pub(super) fn remove_record(&self, key: &str, owner: &[u8], now: Instant) -> Fast<bool> {
        self.records
            .remove_held(key, owner, now, || self.no_value_at(key))
    }

    /// `extend`'s fast path: moves the deadline of `owner`'s record.
    pub(super) fn extend_record(
        &self,
        key: &str,
        owner: &[u8],
        now: Instant,
        until: Instant,
    ) -> Fast<bool> {
        self.records
            .extend_held(key, owner, now, until, || self.no_value_at(key))
    }

    /// Runs `decide` on the live entry at `key` (`None`: absent, or nothing
    /// in it counts any more) under the key's lock, applies the [`Op`] it
    /// returns and hands back its answer. Every value write goes through
    /// here, so writes to one key are atomic against each other; a lock
    /// record is put in or dropped from `records` (an [`Op::Put`] of a
    /// [`Kind::LockRecord`] entry, or an [`Op::Remove`] of one), never
    /// `values`.
    pub(super) async fn compute<R: Send>(
        &self,
        key: &str,
        decide: impl FnOnce(Option<&Entry>, Instant) -> (Op<Entry>, R) + Send,
    ) -> R {
        let _busy = self.records.writing(key);
        let mut superseding = Superseding {
            keys: self,
            key,
            version: AtomicU64::new(0),
            settled: false,
        };
        let mut answer = None;
        let (slot, version) = (&mut answer, &superseding.version);
        self.values
            .entry_by_ref(key)
            .and_compute_with(|current| async move {
                let now = Instant::now();
                let cached = current
                    .map(|entry| entry.into_value())
                    .filter(|entry| entry.is_live(now));
                let (live, source) = match cached {
                    Some(entry) => (Some(entry), Source::Value),
                    None => match self.records.get(key, now) {
                        Some(record) => {
                            let version = record.version;
                            (Some(record), Source::Record(version))
                        }
                        None => (None, Source::Nothing),
                    },
                };
                let (op, decided) = decide(live.as_ref(), now);
                *slot = Some(decided);
                self.route(key, op, source, now, version)
            })
            .await;
        superseding.settle();
        // `and_compute_with` always runs the closure once.
        answer.expect("moka runs the compute closure exactly once")
    }

    /// Carries out the record side of `op` and returns what `values` must
    /// do. A value put over a record leaves the record for
    /// [`Superseding`] to drop once the value has landed.
    fn route(
        &self,
        key: &str,
        op: Op<Entry>,
        source: Source,
        now: Instant,
        superseded: &AtomicU64,
    ) -> Op<Entry> {
        match (op, source) {
            (Op::Put(entry), _) if entry.kind == Kind::LockRecord => {
                let record = Record {
                    owner: Owner::new(entry.value.as_deref().unwrap_or_default()),
                    version: entry.version,
                    expires_at: entry.expires_at.unwrap_or(now),
                };
                self.records.put(key, record, now);
                match source {
                    // A placeholder or a value would hide the record.
                    Source::Value => Op::Remove,
                    Source::Nothing | Source::Record(_) => Op::Nop,
                }
            }
            (Op::Put(entry), Source::Record(version)) => {
                superseded.store(version, Ordering::Relaxed);
                Op::Put(entry)
            }
            (Op::Remove, Source::Record(version)) => {
                self.records.remove_version(key, version);
                Op::Nop
            }
            (op, _) => op,
        }
    }

    /// Every key of either table that starts with `prefix`, each once.
    /// Keys written meanwhile may or may not be in it.
    pub(super) fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .values
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, _)| String::clone(&key))
            .collect();
        keys.extend(self.records.keys_with_prefix(prefix));
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Entry counts of both tables, for `Debug`.
    pub(super) fn counts(&self) -> (u64, usize) {
        (self.values.entry_count(), self.records.len())
    }

    /// The `values` table, for tests that evict from it or weigh it.
    #[cfg(test)]
    pub(super) fn values(&self) -> &Table {
        &self.values
    }

    /// The `records` table, for tests.
    #[cfg(test)]
    pub(super) fn records(&self) -> &Records {
        &self.records
    }
}

/// Drops the lock record a value write replaced, once the value is in
/// `values`: at once when the compute ends, or, if it was cancelled after
/// its decision, from a task that looks whether the value landed.
struct Superseding<'a> {
    keys: &'a KeySpace,
    key: &'a str,
    /// The replaced record's version; 0: none.
    version: AtomicU64,
    settled: bool,
}

impl Superseding<'_> {
    /// The compute ended: its value is in `values`.
    fn settle(&mut self) {
        self.settled = true;
        let version = self.version.load(Ordering::Relaxed);
        if version != 0 {
            self.keys.records.remove_version(self.key, version);
        }
    }
}

impl Drop for Superseding<'_> {
    fn drop(&mut self) {
        let version = self.version.load(Ordering::Relaxed);
        if self.settled || version == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                key = self.key,
                "a write over a lock record was cancelled outside a tokio runtime; the record stays until its lease ends"
            );
            return;
        };
        let values = self.keys.values.clone();
        let records = Arc::clone(&self.keys.records);
        let key = self.key.to_owned();
        runtime.spawn(async move {
            let _busy = records.writing(&key);
            values
                .entry_by_ref(&key)
                .and_compute_with(|current| {
                    let now = Instant::now();
                    if current.is_some_and(|entry| entry.into_value().is_live(now)) {
                        // The value landed: the record under it is over.
                        records.remove_version(&key, version);
                    }
                    std::future::ready(Op::Nop)
                })
                .await;
        });
    }
}
