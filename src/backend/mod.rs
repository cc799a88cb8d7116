//! The storage contract the locks are written against, and the backends.
//!
//! [`Backend`] is the whole contract: a handful of atomic primitives on bytes.
//! [`RedLock`](crate::RedLock), [`OptimisticLock`](crate::OptimisticLock) and
//! [`Cache`](crate::Cache) are written once, above it; every backend-specific
//! trick (Lua scripts, meta-protocol flags, moka's entry API, pub/sub, polling)
//! lives below it.
//!
//! | backend | module | feature | URL |
//! |---|---|---|---|
//! | in-process, on moka | [`memory`] | always | `memory://` |
//! | Redis, on deadpool-redis | `redis` | `redis` | `redis://…`, `rediss://…` |
//! | memcached, meta protocol | `memcached` | `memcached` | `memcached://…` |
//!
//! Keys reaching a backend are final: the namespace is already applied and
//! they are never empty. TTLs and leases are never zero.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::Result;

#[cfg(feature = "redis")]
pub(crate) use fill::random_lease_id;
pub use fill::{FillLease, FillRead, LeaseToken};
pub use surface::FilledValue;
pub use types::{CasToken, Fencing, LockAttempt, LockRecord, ReleaseWatch};

pub(crate) mod any;
mod any_coherence;
pub(crate) mod coherence;
mod dynamic;
mod fill;
#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub mod memcached;
pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
pub(crate) mod surface;
mod types;

/// A storage backend: the few atomic primitives the locks need.
///
/// Implement it to plug in your own store and pass it to
/// [`Cache::custom`](crate::Cache::custom). Every method must be atomic with
/// respect to every other method on the same key, across every process that
/// shares the store.
///
/// Values written by [`set`](Backend::set), [`add`](Backend::add) and
/// [`cas`](Backend::cas) are *data*; lock records written by
/// [`try_lock`](Backend::try_lock) hold an owner token. Both live in the one
/// key space and [`get`](Backend::get) reads either.
///
/// # Cancellation
///
/// The layers above drop these futures freely (a caller's timeout, a
/// `select!`, an aborted task), at any `.await`. Every implementation must
/// make that safe:
///
/// - **No half-applied operation.** A dropped call either took effect as a
///   whole or not at all; which one may be unknown to the caller.
/// - **Nothing the caller cannot undo.** A dropped [`try_lock`](Backend::try_lock)
///   or [`read_for_fill`](Backend::read_for_fill) may still create a record
///   or lease once its request lands. The record holds the caller's owner
///   token or lease id, so the owner-checked [`release`](Backend::release) /
///   [`release_fill`](Backend::release_fill) the caller sends afterwards
///   must remove it even if it arrives after the create (or be ordered
///   after it); failing that, it must expire with its lease.
/// - **No state left behind in the process**: no entry in a wake-up map,
///   no remembered token that a later call would trust wrongly.
///
/// Timeouts are the backend's job: a call that cannot finish within the
/// backend's configured timeout returns
/// [`Error::BackendTimeout`](crate::Error::BackendTimeout) rather than hang.
///
#[doc = include_str!("counting_example.md")]
pub trait Backend: Send + Sync + 'static {
    /// A short name for errors and logs: `"memory"`, `"redis"`, …
    fn kind(&self) -> &'static str;

    /// Reads a value (or a lock record). `None` when absent or expired.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Stores a value unconditionally. `ttl: None` keeps it until evicted.
    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Stores a value only if the key is absent. `Ok(false)` when it exists.
    fn add(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Removes a key. `Ok(false)` when it was absent.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Reads a value with a token that changes on every write to the key,
    /// including a write of the same bytes.
    fn gets(&self, key: &str) -> impl Future<Output = Result<Option<(Bytes, CasToken)>>> + Send;

    /// Stores `value` only if the key still matches `expected`: the token from
    /// [`gets`](Backend::gets), or `None` for "the key must still be absent".
    /// `Ok(false)` on a mismatch, and the key is left as it was.
    fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Creates the lock record `key → owner` with a TTL of `lease` if `key`
    /// is absent. With [`Fencing::Issue`] a per-key counter is incremented
    /// atomically with the create and its new value returned as the fencing
    /// token; it never goes backwards for the same key.
    fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> impl Future<Output = Result<LockAttempt>> + Send;

    /// Reads a lock record: its owner and remaining lease. `None` when absent.
    fn lock_record(&self, key: &str) -> impl Future<Output = Result<Option<LockRecord>>> + Send;

    /// Deletes the lock record only if it still holds `owner`
    /// (compare-and-delete), and tells other processes' waiters, where the
    /// backend can. `Ok(false)` when the record is absent or someone else's.
    fn release(&self, key: &str, owner: &[u8]) -> impl Future<Output = Result<bool>> + Send;

    /// Resets the lock record's TTL to `lease` only if it still holds `owner`.
    /// `Ok(false)` when the record is absent or someone else's.
    fn extend(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Arranges for `wake.notify_waiters()` to be called when the lock record
    /// `key` is released by *another process*, until the returned
    /// [`ReleaseWatch`] is dropped. Releases in this process wake waiters
    /// without the backend's help.
    ///
    /// The watch is in place when the future resolves: a caller that checks
    /// the record afterwards cannot miss a release. The default does nothing,
    /// which is right for a store only one process uses; waiters then fall
    /// back to the lease bound.
    fn watch_releases(
        &self,
        key: &str,
        wake: Arc<Notify>,
    ) -> impl Future<Output = Result<ReleaseWatch>> + Send {
        let _ = (key, wake);
        std::future::ready(Ok(ReleaseWatch::none()))
    }

    /// Reads `key` for a fill, atomically taking the fill lease when the
    /// key needs filling: when no value is stored, or the value was marked
    /// stale by [`mark_stale`](Backend::mark_stale). The first such caller
    /// gets [`FillLease::Granted`], everyone else [`FillLease::Busy`] until
    /// the lease is stored, released, voided by a write, or runs out after
    /// `lease`. A fresh value comes back with [`FillLease::NotNeeded`].
    ///
    /// While the lease is out, the key still reads as absent (or as its
    /// stale value) to [`get`](Backend::get) and [`gets`](Backend::gets).
    ///
    /// **Default** (for backends with nothing better): `gets`, then on a
    /// miss a lock record beside the key, and a write-back that is a `cas`
    /// requiring the key to be absent. It catches a `set`, `add` or `cas`
    /// during the fill but not a `delete` of a key that was absent when the
    /// fill began; the built-in backends catch every write.
    fn read_for_fill(
        &self,
        key: &str,
        lease: Duration,
    ) -> impl Future<Output = Result<FillRead>> + Send {
        async move { fill::defaults::read_for_fill(self, key, lease).await }
    }

    /// A read for a fill that never takes a lease, for backends where that
    /// is cheaper than [`read_for_fill`](Backend::read_for_fill) (Redis: a
    /// plain `GET` rather than a script). `get_or_fill` then peeks first,
    /// and only one caller per process asks for the lease on a miss, so a
    /// stampede sends one lease request per process instead of one per
    /// caller. A key that needs filling comes back with
    /// [`FillLease::NotAsked`].
    ///
    /// **Default:** `Ok(None)`: no cheaper read; `get_or_fill` reads with
    /// `read_for_fill` from the start (one round trip fewer on a miss).
    fn peek_for_fill(&self, key: &str) -> impl Future<Output = Result<Option<FillRead>>> + Send {
        let _ = key;
        std::future::ready(Ok(None))
    }

    /// Stores a fill's `value` only if `lease` is still valid: granted to
    /// this caller by [`read_for_fill`](Backend::read_for_fill), not run
    /// out, and not voided by any write to the key since. Ends the lease
    /// either way and tells other processes' fill waiters, where the
    /// backend can. `Ok(false)` when the lease was void: nothing was stored.
    fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> + Send {
        async move { fill::defaults::store_filled(self, key, lease, value, ttl).await }
    }

    /// Gives a fill lease back without storing (the fill failed or was
    /// cancelled), so that a waiter takes over at once. Leaves a stale value
    /// in place. `Ok(false)` when the lease was no longer ours.
    fn release_fill(
        &self,
        key: &str,
        lease: &LeaseToken,
    ) -> impl Future<Output = Result<bool>> + Send {
        async move { fill::defaults::release_fill(self, key, lease).await }
    }

    /// Marks the value at `key` stale: still readable for at most `grace`
    /// (less if its TTL ends sooner), and due for a refresh, which
    /// [`read_for_fill`](Backend::read_for_fill) hands to one caller. Voids
    /// any fill lease out on the key. `Ok(false)` when no value was stored.
    ///
    /// **Default:** deletes the value (a backend without a stale mark
    /// cannot keep it readable).
    fn mark_stale(&self, key: &str, grace: Duration) -> impl Future<Output = Result<bool>> + Send {
        let _ = grace;
        self.delete(key)
    }

    /// Arranges for `wake.notify_waiters()` to be called when a fill lease
    /// on `key` held by *another process* ends (stored, released or
    /// voided), until the returned watch is dropped. As for
    /// [`watch_releases`](Backend::watch_releases), the watch is in place
    /// when the future resolves.
    ///
    /// **Default:** watches the default lease record's releases.
    fn watch_fills(
        &self,
        key: &str,
        wake: Arc<Notify>,
    ) -> impl Future<Output = Result<ReleaseWatch>> + Send {
        async move {
            self.watch_releases(&fill::defaults::default_lease_key(key), wake)
                .await
        }
    }

    /// The longest a record written with `lease` (a lock record or a fill
    /// lease) may outlive it on this backend: `lease` itself unless the
    /// backend rounds lifetimes up (memcached counts whole seconds).
    /// Callers waiting on someone else's lease use it to tell a stuck lease
    /// from a slow one.
    fn lease_life(&self, lease: Duration) -> Duration {
        lease
    }

    /// Reads every key in `keys`, in order: `None` for each one absent.
    /// Built-in backends send one request per server (`MGET`, a pipeline,
    /// a batch); `keys` is never empty.
    ///
    /// **Default:** one [`get`](Backend::get) per key, in turn.
    fn get_many(&self, keys: &[&str]) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send {
        async move { surface::defaults::get_many(self, keys).await }
    }

    /// Stores every entry as [`set`](Backend::set) would, with one `ttl`;
    /// each voids fill leases on its key like `set`. Not atomic as a whole:
    /// a failure may leave some entries stored.
    ///
    /// **Default:** one `set` per entry, in turn.
    fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send {
        async move { surface::defaults::set_many(self, entries, ttl).await }
    }

    /// Removes every key in `keys`; returns how many were there.
    ///
    /// **Default:** one [`delete`](Backend::delete) per key, in turn.
    fn delete_many(&self, keys: &[&str]) -> impl Future<Output = Result<usize>> + Send {
        async move { surface::defaults::delete_many(self, keys).await }
    }

    /// Whether [`get`](Backend::get) would return a value for `key`.
    ///
    /// **Default:** a `get`.
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool>> + Send {
        async move { Ok(self.get(key).await?.is_some()) }
    }

    /// Sets the TTL of the value at `key` to `ttl`, leaving the value as it
    /// is. `Ok(false)` when no value is stored.
    ///
    /// **Default:** [`gets`](Backend::gets) then [`cas`](Backend::cas) of
    /// the same bytes, retried on a conflict.
    fn touch(&self, key: &str, ttl: Duration) -> impl Future<Output = Result<bool>> + Send {
        async move { surface::defaults::touch(self, key, ttl).await }
    }

    /// Adds `delta` to the counter at `key` atomically and returns the new
    /// value; an absent key counts as 0 and is created without a TTL. The
    /// value is stored as decimal text, so [`get`](Backend::get) reads it.
    /// A value that is not decimal text in `i64` range is
    /// [`Error::NotACounter`](crate::Error::NotACounter); a result outside
    /// `i64` is [`Error::CounterOverflow`](crate::Error::CounterOverflow).
    /// A write: it voids fill leases on `key`.
    ///
    /// **Default:** a [`gets`](Backend::gets) / [`cas`](Backend::cas) loop.
    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = Result<i64>> + Send {
        async move { surface::defaults::increment(self, key, delta).await }
    }

    /// Whether [`clear`](Backend::clear) can remove the keys under a
    /// prefix. A backend that cannot list its keys (memcached) says `false`,
    /// and [`Cache::clear`](crate::Cache::clear) then clears a namespace by
    /// moving it to a new generation instead.
    ///
    /// **Default:** `true`.
    fn clears_by_prefix(&self) -> bool {
        true
    }

    /// Removes every key that starts with `prefix`, lock records included;
    /// with an empty `prefix`, every key in the store. Only called with a
    /// non-empty prefix when [`clears_by_prefix`](Backend::clears_by_prefix)
    /// is `true`.
    ///
    /// **Default:** [`Error::Unsupported`](crate::Error::Unsupported).
    fn clear(&self, prefix: &str) -> impl Future<Output = Result<()>> + Send {
        let _ = prefix;
        std::future::ready(Err(crate::Error::Unsupported {
            backend: self.kind(),
            operation: "clear",
        }))
    }

    /// [`read_for_fill`](Backend::read_for_fill) of every key in `keys`, in
    /// order, in one request per server where the backend can.
    ///
    /// **Default:** one `read_for_fill` per key, in turn.
    fn read_for_fill_many(
        &self,
        keys: &[&str],
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<FillRead>>> + Send {
        async move { surface::defaults::read_for_fill_many(self, keys, lease).await }
    }

    /// [`store_filled`](Backend::store_filled) of every entry, in order;
    /// `true` for each one stored.
    ///
    /// **Default:** one `store_filled` per entry, in turn.
    fn store_filled_many(
        &self,
        entries: &[FilledValue<'_>],
    ) -> impl Future<Output = Result<Vec<bool>>> + Send {
        async move { surface::defaults::store_filled_many(self, entries).await }
    }
}
