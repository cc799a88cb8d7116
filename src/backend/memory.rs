//! The embedded backend: an in-process store on [`moka::future::Cache`].
//!
//! - Every write goes through moka's per-key atomic entry API
//!   (`and_compute_with`), so `add`, `cas`, `release` and `extend` are atomic
//!   against each other and against plain `set`s. Reads take no lock.
//! - The CAS token is a version drawn from one counter shared by every entry,
//!   so it only ever grows: a key deleted and written again never repeats a
//!   version it had before.
//! - Expiry is kept per entry as a [`tokio::time::Instant`] and checked on
//!   every read, so TTL tests can run on paused time; moka's own per-entry
//!   expiry only reclaims the memory.
//! - Values live in a table bounded by bytes ([`DEFAULT_MAX_CAPACITY`] unless
//!   [`MemoryBackendBuilder::max_capacity`] says otherwise). Lock records live
//!   in a table of their own that is never trimmed for space: a full cache
//!   must not evict a held lock and let a second owner in. They leave it only
//!   by release, deletion or the end of their lease.
//!
//! The memory backend is per process: two processes each have their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache as MokaCache;
use moka::ops::compute::{CompResult, Op};
use moka::Expiry;
use tokio::time::Instant;

use super::{Backend, CasToken, Fencing, LockAttempt, LockRecord};
use crate::Result;

/// Default bound of the value table: 128 MiB of keys and values.
pub const DEFAULT_MAX_CAPACITY: u64 = 128 * 1024 * 1024;

/// Bytes charged per entry on top of its key and value, for the entry itself.
const ENTRY_OVERHEAD: u64 = 64;

/// The in-process backend. Build one with [`MemoryBackend::builder`] or take
/// the default; most code goes through [`Cache::memory`](crate::Cache::memory).
///
/// ```
/// use stampede::{backend::memory::MemoryBackend, Cache};
///
/// let backend = MemoryBackend::builder().max_capacity(16 * 1024 * 1024).build();
/// let cache = Cache::custom(backend);
/// # let _ = cache;
/// ```
pub struct MemoryBackend {
    values: MokaCache<String, Entry>,
    locks: MokaCache<String, Entry>,
    last_version: AtomicU64,
    last_fence: AtomicU64,
}

/// Builder for [`MemoryBackend`].
#[derive(Clone, Debug)]
#[must_use]
pub struct MemoryBackendBuilder {
    max_capacity: u64,
}

#[derive(Clone)]
struct Entry {
    value: Bytes,
    version: u64,
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    fn remaining(&self, now: Instant) -> Option<Duration> {
        self.expires_at.map(|at| at.saturating_duration_since(now))
    }
}

/// Tells moka when to reclaim an entry: when its own expiry says so.
struct ReclaimAtExpiry;

impl Expiry<String, Entry> for ReclaimAtExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        entry.remaining(Instant::now())
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        entry.remaining(Instant::now())
    }
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
                let bytes = key.len() as u64 + entry.value.len() as u64 + ENTRY_OVERHEAD;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(ReclaimAtExpiry)
            .build();
        let locks = MokaCache::builder().expire_after(ReclaimAtExpiry).build();
        MemoryBackend {
            values,
            locks,
            last_version: AtomicU64::new(0),
            last_fence: AtomicU64::new(0),
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
            .field("values", &self.values.entry_count())
            .field("locks", &self.locks.entry_count())
            .finish()
    }
}

impl MemoryBackend {
    /// A builder with the defaults.
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder::default()
    }

    fn entry(&self, value: &[u8], ttl: Option<Duration>) -> Entry {
        Entry {
            value: Bytes::copy_from_slice(value),
            version: self.last_version.fetch_add(1, Ordering::Relaxed) + 1,
            expires_at: ttl.map(|ttl| Instant::now() + ttl),
        }
    }

    async fn live(table: &MokaCache<String, Entry>, key: &str) -> Option<Entry> {
        table
            .get(key)
            .await
            .filter(|entry| entry.is_live(Instant::now()))
    }

    /// Puts `make()` at `key` in `table` when `condition` holds for the live
    /// entry there (`None`: absent or expired). Returns whether it did.
    async fn put_if(
        table: &MokaCache<String, Entry>,
        key: &str,
        condition: impl FnOnce(Option<&Entry>) -> bool,
        make: impl FnOnce() -> Entry,
    ) -> bool {
        let result = table
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let now = Instant::now();
                let live = current
                    .as_ref()
                    .map(|e| e.value())
                    .filter(|e| e.is_live(now));
                let op = if condition(live) {
                    Op::Put(make())
                } else {
                    Op::Nop
                };
                std::future::ready(op)
            })
            .await;
        matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        )
    }

    /// Removes `key` from `table` when `condition` holds for the live entry
    /// there. Returns whether a live entry was removed.
    async fn remove_if(
        table: &MokaCache<String, Entry>,
        key: &str,
        condition: impl FnOnce(&Entry) -> bool,
    ) -> bool {
        let result = table
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let op = match current {
                    // An expired entry is as good as absent: drop it, report nothing.
                    Some(entry) if !entry.value().is_live(Instant::now()) => Op::Remove,
                    Some(entry) if condition(entry.value()) => Op::Remove,
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        match result {
            CompResult::Removed(entry) => entry.value().is_live(Instant::now()),
            _ => false,
        }
    }
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        if let Some(entry) = Self::live(&self.values, key).await {
            return Ok(Some(entry.value));
        }
        Ok(Self::live(&self.locks, key).await.map(|entry| entry.value))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        Self::put_if(&self.values, key, |_| true, || self.entry(value, ttl)).await;
        Ok(())
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        Ok(Self::put_if(
            &self.values,
            key,
            |live| live.is_none(),
            || self.entry(value, ttl),
        )
        .await)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let value_removed = Self::remove_if(&self.values, key, |_| true).await;
        let lock_removed =
            self.locks.contains_key(key) && Self::remove_if(&self.locks, key, |_| true).await;
        Ok(value_removed || lock_removed)
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        Ok(Self::live(&self.values, key)
            .await
            .map(|entry| (entry.value, CasToken::from_version(entry.version))))
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
        let matches = |live: Option<&Entry>| live.map(|entry| entry.version) == expected_version;
        Ok(Self::put_if(&self.values, key, matches, || self.entry(value, ttl)).await)
    }

    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        // Drawn inside the compute, so the order of fences is the order in
        // which holders took the lock.
        let fence = AtomicU64::new(0);
        let acquired = Self::put_if(
            &self.locks,
            key,
            |live| live.is_none(),
            || {
                if fencing == Fencing::Issue {
                    let issued = self.last_fence.fetch_add(1, Ordering::Relaxed) + 1;
                    fence.store(issued, Ordering::Relaxed);
                }
                self.entry(owner, Some(lease))
            },
        )
        .await;
        if acquired {
            let fence = (fencing == Fencing::Issue).then(|| fence.load(Ordering::Relaxed));
            return Ok(LockAttempt::Acquired { fence });
        }
        let remaining = Self::live(&self.locks, key)
            .await
            .and_then(|entry| entry.remaining(Instant::now()));
        Ok(LockAttempt::Held { remaining })
    }

    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        Ok(Self::live(&self.locks, key).await.map(|entry| LockRecord {
            remaining: entry.remaining(Instant::now()),
            owner: entry.value,
        }))
    }

    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        Ok(Self::remove_if(&self.locks, key, |entry| entry.value == owner).await)
    }

    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        let ours = |live: Option<&Entry>| live.is_some_and(|entry| entry.value == owner);
        Ok(Self::put_if(&self.locks, key, ours, || self.entry(owner, Some(lease))).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ttl_expires_on_the_tokio_clock() {
        let backend = MemoryBackend::default();
        backend
            .set("k", b"v", Some(Duration::from_secs(10)))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(backend.get("k").await.unwrap().is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(backend.get("k").await.unwrap(), None);
        // An expired key counts as absent for add.
        assert!(backend.add("k", b"w", None).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn expired_lock_record_can_be_retaken_and_reports_remaining_lease() {
        let backend = MemoryBackend::default();
        let lease = Duration::from_secs(5);
        let first = backend
            .try_lock("l", b"a", lease, Fencing::Issue)
            .await
            .unwrap();
        assert_eq!(first, LockAttempt::Acquired { fence: Some(1) });
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            backend
                .try_lock("l", b"b", lease, Fencing::Issue)
                .await
                .unwrap(),
            LockAttempt::Held {
                remaining: Some(Duration::from_secs(3))
            }
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(
            backend
                .try_lock("l", b"b", lease, Fencing::Issue)
                .await
                .unwrap(),
            LockAttempt::Acquired { fence: Some(2) }
        );
        // The old owner's release must not remove the new owner's record.
        assert!(!backend.release("l", b"a").await.unwrap());
        assert!(backend.release("l", b"b").await.unwrap());
    }

    #[tokio::test]
    async fn a_full_value_table_never_evicts_lock_records() {
        let backend = MemoryBackend::builder().max_capacity(4 * 1024).build();
        let lease = Duration::from_secs(60);
        backend
            .try_lock("held", b"me", lease, Fencing::Skip)
            .await
            .unwrap();
        for i in 0..2_000 {
            backend
                .set(&format!("filler-{i}"), &[0u8; 128], None)
                .await
                .unwrap();
        }
        backend.values.run_pending_tasks().await;
        backend.locks.run_pending_tasks().await;
        assert!(backend.values.weighted_size() <= 4 * 1024);
        let record = backend
            .lock_record("held")
            .await
            .unwrap()
            .expect("record kept");
        assert_eq!(record.owner, &b"me"[..]);
    }

    #[tokio::test]
    async fn versions_never_repeat_after_delete() {
        let backend = MemoryBackend::default();
        backend.set("k", b"v", None).await.unwrap();
        let (_, first) = backend.gets("k").await.unwrap().unwrap();
        backend.delete("k").await.unwrap();
        backend.set("k", b"v", None).await.unwrap();
        let (_, second) = backend.gets("k").await.unwrap().unwrap();
        assert!(second.version() > first.version());
        assert!(!backend.cas("k", b"x", Some(&first), None).await.unwrap());
        assert!(backend.cas("k", b"x", Some(&second), None).await.unwrap());
    }
}
