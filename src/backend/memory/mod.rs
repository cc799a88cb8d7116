//! The embedded backend: an in-process store on [`moka::future::Cache`].
//!
//! - Every write goes through moka's per-key atomic entry API
//!   (`and_compute_with`), so `add`, `cas`, `release`, `extend` and the fill
//!   leases are atomic against each other and against plain `set`s. Reads
//!   take no lock.
//! - The CAS token is a version drawn from one counter shared by every entry,
//!   so it only ever grows: a key deleted and written again never repeats a
//!   version it had before. Fill lease ids come from the same counter.
//! - A fill lease lives in the entry of the key it fills: a placeholder with
//!   no value on a miss, or beside a value marked stale. Any write replaces
//!   or removes the entry, and with it the lease, so a fill that started
//!   before the write can never store over it.
//! - Expiry is kept per entry as a [`tokio::time::Instant`] and checked on
//!   every read, so TTL tests can run on paused time; moka's own per-entry
//!   expiry only reclaims the memory.
//! - Values live in a table bounded by bytes ([`DEFAULT_MAX_CAPACITY`] unless
//!   [`MemoryBackendBuilder::max_capacity`] says otherwise). Lock records live
//!   in a table of their own that is never trimmed for space: a full cache
//!   must not evict a held lock and let a second owner in. They leave it only
//!   by release, deletion or the end of their lease.
//!
//! The memory backend is per process. Clones of one [`MemoryBackend`] share
//! the store: two [`Cache`](crate::Cache)s made from clones behave like two
//! processes on one Redis, each with its own in-process wake-up map, woken
//! by the other's writes through the backend.

mod entry;
mod fill;
#[cfg(test)]
mod tests;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache as MokaCache;
use moka::ops::compute::Op;
use tokio::sync::Notify;
use tokio::time::Instant;

use self::entry::{compute, deadline, live, Entry, ReclaimAtExpiry, Table};
use self::watch::Watchers;
use super::{
    Backend, CasToken, Fencing, FillRead, LeaseToken, LockAttempt, LockRecord, ReleaseWatch,
};
use crate::Result;

/// Default bound of the value table: 128 MiB of keys and values.
pub const DEFAULT_MAX_CAPACITY: u64 = 128 * 1024 * 1024;

/// Bytes charged per entry on top of its key and value, for the entry itself.
const ENTRY_OVERHEAD: u64 = 64;

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
    values: Table,
    locks: Table,
    last_version: AtomicU64,
    last_fence: AtomicU64,
    watchers: Arc<Watchers>,
}

/// Builder for [`MemoryBackend`].
#[derive(Clone, Debug)]
#[must_use]
pub struct MemoryBackendBuilder {
    max_capacity: u64,
}

impl MemoryBackendBuilder {
    /// Bounds the value table to about `bytes` of keys and values (each entry
    /// is also charged a small fixed overhead). Past it, moka evicts the
    /// entries least likely to be used again. Lock records do not count.
    ///
    /// Default: [`DEFAULT_MAX_CAPACITY`].
    pub fn max_capacity(mut self, bytes: u64) -> Self {
        self.max_capacity = bytes;
        self
    }

    /// Builds the backend.
    pub fn build(self) -> MemoryBackend {
        let values = MokaCache::builder()
            .max_capacity(self.max_capacity)
            .weigher(|key: &String, entry: &Entry| {
                let size = entry.value.as_ref().map_or(0, Bytes::len) as u64;
                u32::try_from(key.len() as u64 + size + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(ReclaimAtExpiry)
            .build();
        let locks = MokaCache::builder().expire_after(ReclaimAtExpiry).build();
        MemoryBackend {
            inner: Arc::new(Inner {
                values,
                locks,
                last_version: AtomicU64::new(0),
                last_fence: AtomicU64::new(0),
                watchers: Arc::default(),
            }),
        }
    }
}

impl Default for MemoryBackendBuilder {
    fn default() -> Self {
        MemoryBackendBuilder {
            max_capacity: DEFAULT_MAX_CAPACITY,
        }
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::builder().build()
    }
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("values", &self.inner.values.entry_count())
            .field("locks", &self.inner.locks.entry_count())
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

    /// Puts a fresh value at `key` in the value table when `condition`
    /// holds for the live entry there, and wakes the key's watchers.
    async fn put_value_if(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        condition: impl FnOnce(Option<&Entry>) -> bool,
    ) -> bool {
        let put = compute(&self.inner.values, key, |live, _| {
            if condition(live) {
                (Op::Put(self.entry(value, ttl)), true)
            } else {
                (Op::Nop, false)
            }
        })
        .await;
        if put {
            self.inner.watchers.wake(key);
        }
        put
    }

    /// Removes `key` from `table` when `condition` holds for the live
    /// entry there. Returns whether a live value was removed.
    async fn remove_if(table: &Table, key: &str, condition: impl FnOnce(&Entry) -> bool) -> bool {
        compute(table, key, |live, now| match live {
            Some(entry) if condition(entry) => (Op::Remove, entry.live_value(now).is_some()),
            _ => (Op::Nop, false),
        })
        .await
    }
}

/// The live value of a live entry.
fn value_of(entry: Option<Entry>) -> Option<Entry> {
    entry.filter(|entry| entry.live_value(Instant::now()).is_some())
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        if let Some(entry) = value_of(live(&self.inner.values, key).await) {
            return Ok(entry.value);
        }
        Ok(live(&self.inner.locks, key)
            .await
            .and_then(|entry| entry.value))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.put_value_if(key, value, ttl, |_| true).await;
        Ok(())
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        // A fill placeholder holds no value: the key counts as absent, and
        // the add voids the fill.
        let absent = |live: Option<&Entry>| live.is_none_or(|entry| entry.value.is_none());
        Ok(self.put_value_if(key, value, ttl, absent).await)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let value_removed = Self::remove_if(&self.inner.values, key, |_| true).await;
        let lock_removed = self.inner.locks.contains_key(key)
            && Self::remove_if(&self.inner.locks, key, |_| true).await;
        self.inner.watchers.wake(key);
        Ok(value_removed || lock_removed)
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        Ok(
            value_of(live(&self.inner.values, key).await).and_then(|entry| {
                let token = CasToken::from_version(entry.version);
                entry.value.map(|value| (value, token))
            }),
        )
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
        let matches = |live: Option<&Entry>| {
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
        let attempt = compute(&self.inner.locks, key, |live, now| match live {
            Some(entry) => (
                Op::Nop,
                LockAttempt::Held {
                    remaining: entry.remaining(now),
                },
            ),
            None => {
                // Drawn inside the compute, so the order of fences is the
                // order in which holders took the lock.
                let fence = (fencing == Fencing::Issue)
                    .then(|| self.inner.last_fence.fetch_add(1, Ordering::Relaxed) + 1);
                let record = self.entry(owner, Some(lease));
                (Op::Put(record), LockAttempt::Acquired { fence })
            }
        })
        .await;
        Ok(attempt)
    }

    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        let now = Instant::now();
        Ok(live(&self.inner.locks, key).await.and_then(|entry| {
            Some(LockRecord {
                remaining: entry.remaining(now),
                owner: entry.value?,
            })
        }))
    }

    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        let ours = |entry: &Entry| entry.value.as_deref() == Some(owner);
        let released = Self::remove_if(&self.inner.locks, key, ours).await;
        if released {
            self.inner.watchers.wake(key);
        }
        Ok(released)
    }

    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        Ok(compute(&self.inner.locks, key, |live, now| match live {
            Some(entry) if entry.value.as_deref() == Some(owner) => {
                let mut renewed = entry.clone();
                renewed.expires_at = Some(deadline(now, lease));
                (Op::Put(renewed), true)
            }
            _ => (Op::Nop, false),
        })
        .await)
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
}
