//! [`Cache`]: the handle every operation goes through.
//!
//! - `open`: making one, from a URL or from each backend's configuration.

mod batch;
mod cas;
mod json;
mod locks;
mod many;
mod near;
mod open;
mod shared;
mod surface;
mod typed;

pub use typed::Typed;

use std::time::Duration;

use bytes::Bytes;

use crate::backend::dispatch::AnyBackend;
use crate::backend::Backend;
use crate::ctx::Scope;
use crate::key::check_ttl;
use crate::observe::{self, op_span};
use crate::{Error, Result};

/// A handle on one cache backend: memory, Redis or memcached.
///
/// Cheap to clone (one `Arc`), `Send + Sync + 'static`; clones share the
/// backend, its connections and the in-process wake-up map that
/// [`RedLock`](crate::RedLock) waiters sleep on. Every operation behaves the
/// same on every backend; the shared test suite in `tests/` proves it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stampede::Result<()> {
/// use std::time::Duration;
/// use stampede::Cache;
///
/// let cache = Cache::from_url("memory://").await?.with_namespace("app");
/// cache.set("greeting", b"hello", Some(Duration::from_secs(60))).await?;
/// assert_eq!(cache.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// assert!(!cache.add("greeting", b"other", None).await?); // exists already
/// assert!(cache.delete("greeting").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(super) scope: Scope,
}

impl Cache {
    pub(crate) fn from_backend(backend: AnyBackend) -> Cache {
        Cache {
            scope: Scope::new(backend),
        }
    }

    /// The context and namespace the algorithms run in.
    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }

    /// A handle whose every key is prefixed with `namespace`. Two different
    /// namespaces never see each other's keys; namespaces nest
    /// (`with_namespace("a").with_namespace("b")` is inside `a`). The handle
    /// shares everything else with `self`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let cache = stampede::Cache::memory();
    /// let (a, b) = (cache.with_namespace("a"), cache.with_namespace("b"));
    /// a.set("k", b"from a", None).await?;
    /// assert_eq!(b.get("k").await?, None);
    /// assert_eq!(cache.get("a:k").await?.as_deref(), Some(&b"from a"[..]));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_namespace(&self, namespace: &str) -> Cache {
        Cache {
            scope: Scope {
                namespace: self.scope.namespace.join(namespace),
                ..self.scope.clone()
            },
        }
    }

    /// Which backend this is: `"memory"`, `"redis"`, `"memcached"`, or a
    /// custom backend's [`kind`](Backend::kind).
    pub fn backend_kind(&self) -> &'static str {
        self.scope.backend_kind()
    }

    /// How many lock keys have callers waiting in this process right now.
    /// The wake-up map holds an entry only while a key has waiters, so this
    /// returns to 0 when nobody waits. For diagnostics and tests.
    pub fn waiting_lock_keys(&self) -> usize {
        self.scope.wakeups.len()
    }

    /// How many locks this cache (any clone of it) holds right now, from
    /// [`RedLock::acquire`](crate::RedLock::acquire) or
    /// [`RedLock::lock`](crate::RedLock::lock). For diagnostics and tests.
    pub fn held_lock_count(&self) -> usize {
        self.scope.held.len()
    }

    /// Reads `key`. `None` when it is absent or expired.
    ///
    /// # Errors
    ///
    /// An empty key, or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// A read: dropping the future changes nothing.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        if let Some(copy) = self.scope.quick_copy(key) {
            return Ok(Some(copy));
        }
        let span = op_span!("get", self.backend_kind(), key);
        observe::traced(span, async {
            let key = self.scope.full_key(key).await?;
            self.scope.backend().get(&key).await
        })
        .await
    }

    /// Stores `value` at `key`, replacing what was there. `ttl: None` keeps
    /// it until evicted.
    ///
    /// # Errors
    ///
    /// An empty key, a zero TTL, a value over the backend's size limit, or a
    /// backend failure.
    ///
    /// # Cancel safety
    ///
    /// Once the request is sent the backend applies it whether or not the
    /// future is still there, so a dropped write may or may not have landed;
    /// it is never half-applied.
    pub async fn set(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let span = op_span!("set", self.backend_kind(), key);
        observe::traced(span, async {
            let ttl = self.scope.ttl_or_default(ttl);
            check_ttl(ttl)?;
            let key = self.scope.full_key(key).await?;
            self.scope.backend().set(&key, value.as_ref(), ttl).await?;
            self.scope.flights.invalidate(&key);
            Ok(())
        })
        .await
    }

    /// Stores `value` only if `key` is absent. `Ok(false)` when it exists.
    ///
    /// # Errors
    ///
    /// As for [`set`](Cache::set).
    ///
    /// # Cancel safety
    ///
    /// Once the request is sent the backend applies it whether or not the
    /// future is still there, so a dropped write may or may not have landed;
    /// it is never half-applied.
    pub async fn add(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let span = op_span!("add", self.backend_kind(), key);
        observe::traced(span, async {
            let ttl = self.scope.ttl_or_default(ttl);
            check_ttl(ttl)?;
            let key = self.scope.full_key(key).await?;
            let added = self.scope.backend().add(&key, value.as_ref(), ttl).await?;
            if added {
                self.scope.wrote(&key);
            }
            Ok(added)
        })
        .await
    }

    /// Removes `key`. `Ok(false)` when it was absent.
    ///
    /// A [`get_or_fill`](Cache::get_or_fill) fill of `key` that is under way
    /// anywhere (in this process or another) can no longer store its value:
    /// no read that starts after `delete` returns sees what such a fill
    /// computed. (On memcached a delete that removed only a fill's lease
    /// placeholder also reports `true`.)
    ///
    /// Deleting a lock record (`<key>-lock`) frees the lock, and wakes the
    /// [`RedLock`](crate::RedLock) waiters on it in this process at once.
    ///
    /// # Errors
    ///
    /// An empty key, or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the key may or may not have been removed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let span = op_span!("delete", self.backend_kind(), key);
        observe::traced(span, async {
            let key = self.scope.full_key(key).await?;
            let removed = self.scope.backend().delete(&key).await?;
            self.scope.wrote(&key);
            if removed {
                // It may have been a lock record: its waiters here go on now,
                // as after a release, instead of sitting out the lease.
                self.scope.wakeups.wake(&key);
            }
            Ok(removed)
        })
        .await
    }

    /// Soft invalidation: marks the value at `key` stale, keeping it
    /// readable for at most `grace` (or its remaining TTL if that is
    /// shorter) while one caller refreshes it. `Ok(false)` when no value was
    /// stored. Like [`delete`](Cache::delete), it voids every fill of `key`
    /// under way, so no fill that started before it can store.
    ///
    /// [`get_or_fill`](Cache::get_or_fill) callers whose [`Fill`](crate::Fill)
    /// has [`stale_while_revalidate`](crate::Fill::stale_while_revalidate)
    /// are served the stale value while exactly one of them refreshes it;
    /// callers without it treat the key as missing and wait for that
    /// refresh. [`get`](Cache::get) still returns the stale value. On
    /// memcached this is `md <key> I T<grace>`; on backends without a stale
    /// mark ([`Cache::custom`] by default) the value is deleted.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    /// use stampede::Fill;
    ///
    /// let cache = stampede::Cache::memory();
    /// let fill = Fill::ttl(Duration::from_secs(60)).stale_while_revalidate(Duration::from_secs(30));
    /// let v: u32 = cache.get_or_fill("price", fill.clone(), || async { Ok::<_, stampede::Error>(1) }).await?;
    /// assert!(cache.mark_stale("price", Duration::from_secs(30)).await?);
    /// // The next caller refreshes it (and, refreshing, waits for its own fill):
    /// let v: u32 = cache.get_or_fill("price", fill, || async { Ok::<_, stampede::Error>(v + 1) }).await?;
    /// assert_eq!(v, 2);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An empty key, a zero grace, or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the value may or may not have been marked.
    pub async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        let span = op_span!("mark_stale", self.backend_kind(), key);
        observe::traced(span, async {
            if grace.is_zero() {
                return Err(Error::InvalidArgument {
                    name: "grace",
                    reason: "the grace period must be longer than zero",
                });
            }
            let key = self.scope.full_key(key).await?;
            let marked = self.scope.backend().mark_stale(&key, grace).await?;
            self.scope.wrote(&key);
            Ok(marked)
        })
        .await
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.backend_kind())
            .field("namespace", &self.scope.namespace.prefix())
            .finish()
    }
}
