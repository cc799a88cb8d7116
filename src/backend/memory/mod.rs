//! The embedded backend: an in-process store on [`moka::future::Cache`].
//!
//! - **One key space.** A key holds a value, a fill placeholder or a lock
//!   record, never two of them, and every operation sees whichever it is,
//!   exactly as on Redis and memcached: `add`, `try_lock` and `cas(None)`
//!   fail on a held record or on any value; `get`, `gets` and `lock_record`
//!   read either; `set`, `cas` and `mark_stale` replace a record (its holder
//!   then finds it gone: `release` and `extend` act on lock records only, so
//!   theirs is refused); `delete` removes either.
//! - Every value write goes through moka's per-key atomic entry API
//!   (`and_compute_with`), so `add`, `cas`, the fill leases and plain `set`s
//!   are atomic against each other. `try_lock`, `release` and `extend` go
//!   through it too when anything else is writing the key; otherwise they
//!   touch the lock-record map alone (the `keyspace` module explains why
//!   that is still atomic). Reads take no lock.
//! - The CAS token is a version drawn from one counter shared by every entry
//!   (lock records included), so it only ever grows: a key deleted and
//!   written again never repeats a version it had before. Fill lease ids
//!   come from the same counter.
//! - A fill lease lives in the entry of the key it fills: a placeholder with
//!   no value on a miss, or beside a value marked stale. Any write replaces
//!   or removes the entry, and with it the lease, so a fill that started
//!   before the write can never store over it.
//! - Expiry is kept per entry as a [`tokio::time::Instant`] and checked on
//!   every access, lock records included, so TTL tests can run on paused
//!   time; moka's own per-entry expiry only reclaims the memory.
//! - Values live in a table bounded by bytes ([`DEFAULT_MAX_CAPACITY`] unless
//!   [`MemoryBackendBuilder::max_capacity`] says otherwise). A full cache
//!   must never evict a held lock record and let a second owner in, so lock
//!   records live in a map of their own that is never trimmed for space.
//!   They leave it by release, by a write or deletion of their key, or once
//!   their lease has ended (an expired record counts as absent at once, and
//!   a sweep reclaims it).
//!
//! # Why two tables, and what they cost
//!
//! One moka table whose entries are values or lock records would give the
//! one key space for free, but moka cannot pin an entry: its docs promise
//! nothing for entries that weigh nothing, and its size eviction (moka 0.12,
//! `admit` and `evict_lru_entries`) takes victims from the cold end of its
//! queue whatever they weigh, so a zero-weight lock record can still be
//! evicted (tried on moka 0.12.16: the first wave of inserts into a full
//! cache evicted one). And a lock needs none of moka's machinery: its per-key
//! compute cost about 1.7 µs per lock operation. So lock records live in a
//! [`DashMap`](dashmap::DashMap) (`records` module, with the measurements
//! behind that pick), and the `keyspace` module keeps the two tables one key
//! space. The cost, counted in table operations: a `get` or `gets` of a value
//! is one lookup, as before; a miss also looks in the record map; a value
//! write adds two atomic increments (the key's busy stripe) and, on a new key,
//! one record-map lookup under its compute; `try_lock` + `release` on a free
//! key is one insert and one remove in the record map plus two lookups in the
//! value table, about 160 ns in a release build where moka's computes took
//! about 4 µs.
//!
//! The memory backend is per process. Clones of one [`MemoryBackend`] share
//! the store: two [`Cache`](crate::Cache)s made from clones behave like two
//! processes on one Redis, each with its own in-process wake-up map, woken
//! by the other's writes through the backend.

mod config;
mod entry;
mod fill;
mod keyspace;
mod lock;
#[cfg(test)]
mod lock_tests;
mod records;
mod surface;
#[cfg(test)]
mod tests;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::ops::compute::Op;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use self::config::{MemoryBackendBuilder, DEFAULT_MAX_CAPACITY, MIN_MAX_CAPACITY};
use self::entry::Entry;
use self::keyspace::KeySpace;
use self::watch::Watchers;
use super::{
    Backend, CasToken, Coherence, Fencing, FillRead, LeaseToken, LockAttempt, LockRecord,
    ReleaseWatch,
};
use crate::Result;

/// The in-process backend. Build one with [`MemoryBackend::builder`] or take
/// the default; most code goes through [`Cache::memory`](crate::Cache::memory).
///
/// Cheap to clone; clones share the store (see the [module docs](self)).
///
/// ```
/// use stampede::{backend::memory::MemoryBackend, Cache};
///
/// let backend = MemoryBackend::builder().max_capacity(16 * 1024 * 1024).build();
/// let cache = Cache::custom(backend.clone());
/// let other = Cache::from(backend); // same store, its own wake-up map
/// # let _ = (cache, other);
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

struct Inner {
    keys: KeySpace,
    last_version: AtomicU64,
    last_fence: AtomicU64,
    watchers: Arc<Watchers>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::builder().build()
    }
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (values, records) = self.inner.keys.counts();
        f.debug_struct("MemoryBackend")
            .field("values", &values)
            .field("lock_records", &records)
            .finish()
    }
}

impl MemoryBackend {
    /// A builder with the defaults.
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder::default()
    }

    /// A version never handed out before.
    fn next_version(&self) -> u64 {
        self.inner.last_version.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn entry(&self, value: &[u8], ttl: Option<Duration>) -> Entry {
        Entry::value(Bytes::copy_from_slice(value), self.next_version(), ttl)
    }

    /// Puts a fresh value at `key` when `condition` holds for the live
    /// entry there (a value or a lock record), and wakes the key's watchers.
    async fn put_value_if(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        condition: impl FnOnce(Option<&Entry>) -> bool + Send,
    ) -> bool {
        let put = self.inner.keys.compute(key, |live, _| {
            if condition(live) {
                (Op::Put(self.entry(value, ttl)), true)
            } else {
                (Op::Nop, false)
            }
        });
        let put = put.await;
        if put {
            self.inner.watchers.wake(key);
        }
        put
    }
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let entry = self.inner.keys.read(key).await;
        Ok(entry.and_then(|entry| entry.value))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.put_value_if(key, value, ttl, |_| true).await;
        Ok(())
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        // A fill placeholder holds no value: the key counts as absent, and
        // the add voids the fill. A lock record counts as present.
        let absent = |live: Option<&Entry>| live.is_none_or(|entry| entry.value.is_none());
        Ok(self.put_value_if(key, value, ttl, absent).await)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed = self.inner.keys.compute(key, |live, _| match live {
            // A placeholder alone is removed too (voiding its fill), but
            // reported as nothing removed.
            Some(entry) => (Op::Remove, entry.value.is_some()),
            None => (Op::Nop, false),
        });
        let removed = removed.await;
        self.inner.watchers.wake(key);
        Ok(removed)
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        let entry = self.inner.keys.read(key).await;
        Ok(entry.and_then(|entry| {
            let token = CasToken::from_version(entry.version);
            entry.value.map(|value| (value, token))
        }))
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let expected_version = match expected {
            None => None,
            // A token from another backend can never match.
            Some(token) => match token.version() {
                Some(version) => Some(version),
                None => return Ok(false),
            },
        };
        let matches = move |live: Option<&Entry>| {
            let version = live
                .filter(|entry| entry.value.is_some())
                .map(|e| e.version);
            version == expected_version
        };
        Ok(self.put_value_if(key, value, ttl, matches).await)
    }

    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        Ok(self.lock_attempt(key, owner, lease, fencing).await)
    }

    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        let now = Instant::now();
        let entry = self.inner.keys.read(key).await;
        Ok(entry.and_then(|entry| {
            Some(LockRecord {
                remaining: entry.remaining(now),
                owner: entry.value?,
            })
        }))
    }

    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        let released = self.release_record(key, owner).await;
        if released {
            self.inner.watchers.wake(key);
        }
        Ok(released)
    }

    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        Ok(self.extend_record(key, owner, lease).await)
    }

    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        Ok(self.inner.watchers.watch(key, wake))
    }

    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        Ok(self.lease_read(key, lease).await)
    }

    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        Ok(self.lease_store(key, lease, value, ttl).await)
    }

    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        Ok(self.lease_release(key, lease).await)
    }

    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        Ok(self.stale_mark(key, grace).await)
    }

    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        Ok(self.inner.watchers.watch(key, wake))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        Ok(self.inner.keys.values_of(keys).await)
    }

    async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            self.put_value_if(key, value, ttl, |_| true).await;
        }
        Ok(())
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool> {
        Ok(self.touch_entry(key, ttl).await)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.add_to(key, delta).await
    }

    async fn clear(&self, prefix: &str) -> Result<()> {
        self.clear_prefix(prefix).await;
        Ok(())
    }

    fn coherence(&self) -> Coherence {
        Coherence::Unsupported(
            "the memory backend is already in this process: a near cache in front of it would be a cache of itself",
        )
    }
}
