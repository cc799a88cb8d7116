//! Attaching a near cache to a [`Cache`], and the hooks every read and
//! write goes through when one is attached.

use super::Cache;
use crate::backend::{Backend, Coherence, NoSink};
use crate::near::{Near, NearCache, NearStats};
use crate::Result;

impl Cache {
    /// This cache with a near cache in front of it: an in-process tier of
    /// copies that answers reads without a round trip, kept coherent with
    /// every other process by versions (see the README's "Near cache"
    /// section for the guarantee per backend). Every call works through
    /// it unchanged. Clones and namespaced handles of this cache share the
    /// tier; it is attached once (a second call keeps the first).
    ///
    /// Where no near cache can be kept coherent (the memory backend, which
    /// is in-process already; a Redis Cluster; a custom backend) or the
    /// settings are invalid, this logs a warning and returns the cache
    /// without one: no silent incoherence. Use
    /// [`try_with_near_cache`](Cache::try_with_near_cache) to get the error
    /// instead.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    /// use stampede::{Cache, NearCache};
    ///
    /// let cache = Cache::from_url("redis://127.0.0.1:6379?namespace=app").await?
    ///     .with_near_cache(NearCache::max_capacity(64 << 20).ttl(Duration::from_secs(30)));
    /// // or by URL: redis://…?near_capacity=67108864&near_ttl_ms=30000
    /// cache.set("greeting", b"hello", None).await?;
    /// // Served from this process's copy, no round trip:
    /// assert_eq!(cache.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_near_cache(self, near: NearCache) -> Cache {
        match self.attach_near(near) {
            Ok(()) => self,
            Err(error) => {
                tracing::warn!(%error, "no near cache");
                self
            }
        }
    }

    /// As [`with_near_cache`](Cache::with_near_cache), but a backend
    /// without a coherent near cache, or invalid settings, are an error.
    ///
    /// ```
    /// use stampede::{Cache, Error, NearCache};
    ///
    /// let refused = Cache::memory().try_with_near_cache(NearCache::max_capacity(1 << 20));
    /// assert!(matches!(refused, Err(Error::NearCacheUnsupported { backend: "memory", .. })));
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NearCacheUnsupported`](crate::Error::NearCacheUnsupported)
    /// on the memory backend, a Redis Cluster or a custom backend;
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a zero
    /// capacity or duration.
    pub fn try_with_near_cache(self, near: NearCache) -> Result<Cache> {
        self.attach_near(near)?;
        Ok(self)
    }

    /// This cache, announcing its writes to other processes' near caches
    /// without keeping one itself: for a process that writes keys that
    /// readers elsewhere keep copies of (a batch job, an admin tool).
    /// A handle with a near cache announces already, and memcached needs no
    /// announcements (its copies are checked by CAS). On the memory
    /// backend, a Redis Cluster or a custom backend this logs a warning and
    /// changes nothing. Also by URL: `announce_writes=true`.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let writer = stampede::Cache::from_url("redis://127.0.0.1:6379?namespace=app")
    ///     .await?
    ///     .announce_writes();
    /// writer.set("price", b"42", None).await?; // other nodes drop their copies
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn announce_writes(self) -> Cache {
        match self.scope.store().coherence() {
            Coherence::Push if self.scope.near().is_none() => {
                // No tier: nothing receives, so the feed never starts.
                let nobody = std::sync::Weak::<NoSink>::new();
                self.scope
                    .store()
                    .announce_changes(fastrand::u64(..), nobody);
            }
            Coherence::Push | Coherence::Revalidate => {}
            Coherence::Unsupported(reason) => {
                tracing::warn!(reason, "writes are not announced");
            }
        }
        self
    }

    fn attach_near(&self, config: NearCache) -> Result<()> {
        let near = Near::new(self.scope.store(), config)?;
        if !self.scope.layer(near) {
            tracing::warn!("this cache has a near cache already; keeping it");
        }
        Ok(())
    }

    /// The near cache's settings, when one is attached.
    ///
    /// ```
    /// assert!(stampede::Cache::memory().near_cache().is_none());
    /// ```
    pub fn near_cache(&self) -> Option<&NearCache> {
        self.scope.near().map(Near::config)
    }

    /// What the near cache did so far (`None` without one). For
    /// diagnostics and tests.
    ///
    /// ```
    /// assert_eq!(stampede::Cache::memory().near_stats(), None);
    /// ```
    pub fn near_stats(&self) -> Option<NearStats> {
        self.scope.near().map(Near::stats)
    }
}
