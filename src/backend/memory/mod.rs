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

mod backend;
mod entry;
mod keyspace;
#[cfg(test)]
mod lock_tests;
mod records;
#[cfg(test)]
mod tests;
mod watch;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use self::keyspace::{KeySpace, ENTRY_OVERHEAD};
use self::watch::Watchers;
use crate::url::CacheUrl;
use crate::{Error, Result};

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

    /// The backend for a `memory://[?max_capacity=<bytes>]` URL; see
    /// [`Cache::from_url`](crate::Cache::from_url). A `max_capacity` under
    /// [`MIN_MAX_CAPACITY`] is refused: it would accept writes and store
    /// nothing.
    pub(crate) fn from_url(url: &mut CacheUrl<'_>) -> Result<MemoryBackend> {
        if !url.rest.is_empty() {
            return Err(Error::invalid_config(
                url.original,
                "a memory:// URL takes no host or path",
            ));
        }
        let mut builder = MemoryBackend::builder();
        if let Some(bytes) = url.take_u64("max_capacity")? {
            if bytes < MIN_MAX_CAPACITY {
                return Err(Error::invalid_config(
                    url.original,
                    format!(
                        "parameter `max_capacity` must be at least {MIN_MAX_CAPACITY} bytes, \
                         or the cache can store nothing; got {bytes}"
                    ),
                ));
            }
            builder = builder.max_capacity(bytes);
        }
        Ok(builder.build())
    }
}

// ----- the builder ------------------------------------------------------

/// Default bound of the value table: 128 MiB of keys and values.
pub const DEFAULT_MAX_CAPACITY: u64 = 128 * 1024 * 1024;

/// The smallest bound that holds an entry: the weight of the lightest one,
/// a 1-byte key with an empty value, plus the overhead charged per entry.
///
/// ```
/// assert_eq!(stampede::backend::memory::MIN_MAX_CAPACITY, 65);
/// ```
pub const MIN_MAX_CAPACITY: u64 = 1 + ENTRY_OVERHEAD;

/// Builder for [`MemoryBackend`].
#[derive(Clone, Debug)]
#[must_use]
pub struct MemoryBackendBuilder {
    max_capacity: u64,
}

impl MemoryBackendBuilder {
    /// Bounds the value table to about `bytes` of keys and values (each entry
    /// is also charged a small fixed overhead). Past it, moka evicts the
    /// entries least likely to be used again. Held lock records are never
    /// evicted, whatever the bound.
    ///
    /// A bound under [`MIN_MAX_CAPACITY`] holds no entry at all: every
    /// write is accepted and dropped. [`Cache::from_url`](crate::Cache::from_url)
    /// refuses such a `max_capacity`.
    ///
    /// Default: [`DEFAULT_MAX_CAPACITY`].
    pub fn max_capacity(mut self, bytes: u64) -> Self {
        self.max_capacity = bytes;
        self
    }

    /// Builds the backend.
    pub fn build(self) -> MemoryBackend {
        MemoryBackend {
            inner: Arc::new(Inner {
                keys: KeySpace::new(self.max_capacity),
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
