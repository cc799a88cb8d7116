//! The rest of the everyday surface on [`Cache`]: `exists`, `touch`,
//! counters, `clear`, and the handle's default TTL.

use std::time::Duration;

use tracing::Instrument;

use super::Cache;
use crate::backend::Backend;
use crate::ctx::Scope;
use crate::key::check_ttl;
use crate::observe::{self, op_span};
use crate::Result;

impl Cache {
    /// A handle whose writes that pass `ttl: None` ([`set`](Cache::set),
    /// [`add`](Cache::add), [`cas`](Cache::cas), [`set_many`](Cache::set_many),
    /// [`set_value`](Cache::set_value), [`update`](Cache::update)) use `ttl`
    /// instead. A [`Fill`](crate::Fill) carries its own TTL and is not
    /// affected; counters made by [`increment`](Cache::increment) have none
    /// until [`touch`](Cache::touch)ed. Shares everything else with `self`,
    /// like [`with_namespace`](Cache::with_namespace).
    ///
    /// A zero `ttl` is refused by the first write that would use it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    ///
    /// let cache = stampede::Cache::memory().with_default_ttl(Duration::from_secs(300));
    /// cache.set("session", b"data", None).await?; // expires in 5 minutes
    /// assert_eq!(cache.default_ttl(), Some(Duration::from_secs(300)));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_default_ttl(&self, ttl: Duration) -> Cache {
        Cache {
            scope: Scope {
                default_ttl: Some(ttl),
                ..self.scope.clone()
            },
        }
    }

    /// The TTL this handle's writes use when they pass `None`.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.scope.default_ttl
    }

    /// Whether [`get`](Cache::get) would find a value at `key` (a lock
    /// record counts, as `get` reads it; a fill under way does not).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let cache = stampede::Cache::memory();
    /// assert!(!cache.exists("a").await?);
    /// cache.set("a", b"1", None).await?;
    /// assert!(cache.exists("a").await?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An empty key, or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// A read: dropping the future changes nothing.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let span = op_span!("exists", self.backend_kind(), key);
        observe::traced(span, async {
            let key = self.scope.full_key(key).await?;
            self.scope.backend().exists(&key).await
        })
        .await
    }

    /// Gives the value at `key` a new TTL, `ttl` from now, without changing
    /// it (and without voiding fills: the value is the same). `Ok(false)`
    /// when there is no value.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    ///
    /// let cache = stampede::Cache::memory();
    /// cache.set("session", b"data", Some(Duration::from_secs(60))).await?;
    /// assert!(cache.touch("session", Duration::from_secs(3600)).await?);
    /// assert!(!cache.touch("absent", Duration::from_secs(60)).await?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An empty key, a zero TTL, or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the TTL may or may not have moved.
    pub async fn touch(&self, key: &str, ttl: Duration) -> Result<bool> {
        check_ttl(Some(ttl))?;
        let span = op_span!("touch", self.backend_kind(), key);
        observe::traced(span, async {
            let key = self.scope.full_key(key).await?;
            self.scope.backend().touch(&key, ttl).await
        })
        .await
    }

    /// Adds `delta` (negative to subtract) to the counter at `key`,
    /// atomically across every process, and returns its new value. An
    /// absent key counts as 0 and is created without a TTL; an existing
    /// key keeps its TTL. The counter is stored as decimal text, so
    /// [`get`](Cache::get) reads `b"42"`, and so do other clients of the
    /// store (on Redis it is a plain `INCRBY` counter). A write: fills of
    /// `key` under way can no longer store.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let cache = stampede::Cache::memory();
    /// assert_eq!(cache.increment("hits", 1).await?, 1);
    /// assert_eq!(cache.increment("hits", 41).await?, 42);
    /// assert_eq!(cache.increment("hits", -50).await?, -8);
    /// assert_eq!(cache.get("hits").await?.as_deref(), Some(&b"-8"[..]));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An empty key; [`Error::NotACounter`](crate::Error::NotACounter) when `key` holds something that
    /// is not a decimal integer in `i64` range; [`Error::CounterOverflow`](crate::Error::CounterOverflow)
    /// when the result would leave `i64` (the counter keeps its value); a
    /// backend failure.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the increment may or may not have been
    /// applied, once at most.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let span = op_span!("increment", self.backend_kind(), key);
        observe::traced(span, async {
            let key = self.scope.full_key(key).await?;
            let counted = self.scope.backend().increment(&key, delta).await;
            self.scope.wrote(&key);
            counted
        })
        .await
    }

    /// Removes every key of this handle's namespace, nested namespaces
    /// included, and nothing else. On memory and Redis lock records go too
    /// (their holders find their locks gone at the next renewal or
    /// release, and waiters here go on at once); on memcached they stay
    /// until their leases end.
    ///
    /// - **Memory:** every key under the prefix.
    /// - **Redis:** `SCAN MATCH <prefix>*` and `UNLINK` in batches of 1,000
    ///   (never `KEYS`), on every master of a cluster. Not atomic: keys
    ///   written while it runs may survive.
    /// - **memcached**, which cannot list keys, moves the namespace to a new
    ///   *generation*: keys are stored under `<namespace>%g<generation>:`,
    ///   so everything written before is out of reach at once and left to
    ///   expire. Lock records are not moved to the new generation (their
    ///   holders would keep renewing records nobody else sees), so they
    ///   stay until their leases end. The cost: each process reads a namespace's generation (one
    ///   small request) before its first operation and at most once a
    ///   second after that, so another process sees the clear within a
    ///   second.
    ///
    /// **Without a namespace this clears the whole store**: `FLUSHDB` on
    /// Redis (every master of a cluster), `flush_all` on every memcached
    /// server, everything in a memory store. Other applications' keys in
    /// that database go too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let cache = stampede::Cache::memory();
    /// let (users, orders) = (cache.with_namespace("users"), cache.with_namespace("orders"));
    /// users.set("1", b"ada", None).await?;
    /// orders.set("1", b"tea", None).await?;
    /// users.clear().await?;
    /// assert_eq!(users.get("1").await?, None);
    /// assert!(orders.exists("1").await?); // other namespaces are untouched
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// A backend failure (part of the namespace may be cleared by then), or
    /// [`Error::Unsupported`](crate::Error::Unsupported) from a custom
    /// backend without [`Backend::clear`].
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, any part of the namespace may have been
    /// cleared.
    pub async fn clear(&self) -> Result<()> {
        let prefix = self.scope.namespace.prefix();
        let span = op_span!("clear", self.backend_kind(), prefix);
        let cleared = async {
            match &self.scope.generations {
                Some(generations) if !prefix.is_empty() => {
                    generations
                        .bump(self.scope.store(), &self.scope.namespace)
                        .await?;
                    self.scope.moved_generation();
                    Ok(())
                }
                _ => self.scope.backend().clear(prefix).await,
            }
        }
        .instrument(span.clone())
        .await;
        if cleared.is_ok() {
            // Lock records under the prefix are gone: their waiters go on.
            self.scope.wakeups.wake_prefix(prefix);
            self.scope.fill_wakeups.wake_prefix(prefix);
        }
        observe::outcome(&span, &cleared, "ok");
        cleared
    }
}
