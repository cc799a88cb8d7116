//! One key space over two tables: every key holds a value, a fill
//! placeholder or a lock record, as on Redis and memcached, while lock
//! records stay out of reach of size eviction.
//!
//! - **`values`**, the moka table bounded by bytes, holds every entry: data,
//!   fill placeholders, and a copy of each lock record. Reads look here
//!   first, so a hit is one lookup, and every operation sees values and
//!   records alike.
//! - **`records`** ([`Records`]) holds the lock records again, where nothing
//!   evicts them. It is read only when `values` has nothing live for a key:
//!   after moka evicted a record's copy, or on a miss.
//!
//! Every write to a key runs under moka's per-key lock on `values`
//! ([`KeySpace::compute`]), and updates `records` inside that lock, before
//! the new `values` entry lands. So a record is in `records` exactly while
//! it is the key's live entry (or until its lease ends), and a reader never
//! sees a key empty between its old and new content: while a record is
//! replaced or removed, its copy in `values` still shows it; while one is
//! created, `records` already does. The one exception is a record whose
//! copy was evicted: a `set`, `cas` or `mark_stale` over it leaves the key
//! reading as absent to a concurrent lock-free read for that instant.

use bytes::Bytes;
use moka::future::Cache as MokaCache;
use moka::ops::compute::Op;
use tokio::time::Instant;

use super::entry::{Entry, Kind, ReclaimAtExpiry, Table};
use super::records::Records;

/// Bytes charged per entry on top of its key and value, for the entry itself.
pub(super) const ENTRY_OVERHEAD: u64 = 64;

/// Every key's entry. See the module docs.
pub(super) struct KeySpace {
    values: Table,
    records: Records,
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
            .build();
        KeySpace {
            values,
            records: Records::new(),
        }
    }

    /// The live entry at `key` in `values` alone: one lookup, no lock. A
    /// hit is the key's current content; a miss may still be a lock record
    /// whose copy was evicted (see [`read`](Self::read)).
    pub(super) async fn cached(&self, key: &str) -> Option<Entry> {
        self.cached_at(key, Instant::now()).await
    }

    async fn cached_at(&self, key: &str, now: Instant) -> Option<Entry> {
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
            let value = match self.values.get(*key).await {
                Some(entry) if entry.is_live(now) => entry.value,
                _ => self.read_at(key, now).await.and_then(|entry| entry.value),
            };
            values.push(value);
        }
        values
    }

    /// [`read`](KeySpace::read) as of `now`.
    pub(super) async fn read_at(&self, key: &str, now: Instant) -> Option<Entry> {
        if let Some(entry) = self.cached_at(key, now).await {
            return Some(entry);
        }
        self.records
            .get(key)
            .await
            .filter(|record| record.is_live(now))
    }

    /// Runs `decide` on the live entry at `key` (`None`: absent, or nothing
    /// in it counts any more) under the key's lock, applies the [`Op`] it
    /// returns and hands back its answer. Every write goes through here, so
    /// writes to one key are atomic against each other.
    pub(super) async fn compute<R: Send>(
        &self,
        key: &str,
        decide: impl FnOnce(Option<&Entry>, Instant) -> (Op<Entry>, R) + Send,
    ) -> R {
        let mut answer = None;
        let slot = &mut answer;
        self.values
            .entry_by_ref(key)
            .and_compute_with(|current| async move {
                let now = Instant::now();
                let cached = current
                    .map(|entry| entry.into_value())
                    .filter(|entry| entry.is_live(now));
                let (live, recorded) = match cached {
                    Some(entry) => {
                        let recorded = entry.kind == Kind::LockRecord;
                        (Some(entry), recorded)
                    }
                    None => match self.records.get(key).await {
                        Some(record) if record.is_live(now) => (Some(record), true),
                        _ => (None, false),
                    },
                };
                let (op, decided) = decide(live.as_ref(), now);
                *slot = Some(decided);
                self.keep_records(key, &op, recorded).await;
                op
            })
            .await;
        // `and_compute_with` always runs the closure once.
        answer.expect("moka runs the compute closure exactly once")
    }

    /// Brings `records` in line with `op`, before it lands in `values`:
    /// a new or extended record is kept; a record that `op` replaces or
    /// removes (`recorded`: the key's live entry was one) is dropped.
    async fn keep_records(&self, key: &str, op: &Op<Entry>, recorded: bool) {
        match op {
            Op::Put(entry) if entry.kind == Kind::LockRecord => {
                self.records.put(key, entry.clone()).await;
            }
            Op::Put(_) | Op::Remove if recorded => self.records.remove(key).await,
            Op::Put(_) | Op::Remove | Op::Nop => {}
        }
    }

    /// Entry counts of both tables, for `Debug`.
    /// Every key of either table that starts with `prefix`, each once.
    /// Keys written meanwhile may or may not be in it.
    pub(super) fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut keys = super::records::keys_with_prefix(&self.values, prefix);
        keys.extend(self.records.keys_with_prefix(prefix));
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    pub(super) fn counts(&self) -> (u64, u64) {
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
