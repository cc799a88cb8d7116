//! Batches on [`Cache`]: many keys in one request per server.

use std::time::Duration;

use bytes::Bytes;
use tracing::Instrument;

use super::Cache;
use crate::backend::Backend;
use crate::key::check_ttl;
use crate::observe::{self, op_span};
use crate::Result;

impl Cache {
    /// Reads every key in `keys`: one value (or `None`) per key, in the
    /// order of `keys`. One request per server: `MGET` on Redis (one per
    /// hash slot on a cluster), one pipelined batch per memcached server,
    /// one pass over the memory store. No keys, no request.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let cache = stampede::Cache::memory();
    /// cache.set("a", b"1", None).await?;
    /// cache.set("c", b"3", None).await?;
    /// let values = cache.get_many(&["a", "b", "c"]).await?;
    /// assert_eq!(values[0].as_deref(), Some(&b"1"[..]));
    /// assert_eq!(values[1], None);
    /// assert_eq!(values[2].as_deref(), Some(&b"3"[..]));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An empty key anywhere in `keys` (before anything is sent), or a
    /// backend failure.
    ///
    /// # Cancel safety
    ///
    /// A read: dropping the future changes nothing.
    pub async fn get_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let span = op_span!("get_many", self.backend_kind(), keys.len());
        let read = async {
            let full = self.scope.full_keys(keys).await?;
            self.scope.backend().get_many(&full.to_vec()).await
        }
        .instrument(span.clone())
        .await;
        if let Ok(values) = &read {
            let hits = values.iter().filter(|value| value.is_some()).count() as u64;
            observe::hits(self.backend_kind(), "get_many", hits);
            observe::misses(self.backend_kind(), "get_many", values.len() as u64 - hits);
        }
        observe::outcome(&span, &read, "ok");
        read
    }

    /// Stores every `(key, value)` entry, as [`set`](Cache::set) would, all
    /// with `ttl` (`None`: the handle's [default TTL](Cache::with_default_ttl),
    /// if any). One request per server. Each entry voids fills of its key
    /// under way, as `set` does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    ///
    /// let cache = stampede::Cache::memory();
    /// let ttl = Some(Duration::from_secs(60));
    /// cache.set_many(&[("a", b"1".as_slice()), ("b", b"2".as_slice())], ttl).await?;
    /// assert_eq!(cache.get("b").await?.as_deref(), Some(&b"2"[..]));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An empty key, a zero TTL, or a value over the backend's size limit,
    /// each before anything is sent; or a backend failure, after which some
    /// entries may have been stored and others not.
    ///
    /// # Cancel safety
    ///
    /// Once the batch is sent the backend applies it whether or not the
    /// future is still there: a dropped call may have stored all, some or
    /// none of the entries, each whole or not at all.
    pub async fn set_many<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        entries: &[(K, V)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let ttl = self.scope.ttl_or_default(ttl);
        check_ttl(ttl)?;
        if entries.is_empty() {
            return Ok(());
        }
        let span = op_span!("set_many", self.backend_kind(), entries.len());
        observe::traced(span, async {
            let keys: Vec<&str> = entries.iter().map(|(key, _)| key.as_ref()).collect();
            let full = self.scope.full_keys(&keys).await?;
            let batch: Vec<(&str, &[u8])> = full
                .iter()
                .zip(entries)
                .map(|(key, (_, value))| (key, value.as_ref()))
                .collect();
            self.scope.backend().set_many(&batch, ttl).await?;
            for key in full.iter() {
                self.scope.wrote(key);
            }
            Ok(())
        })
        .await
    }

    /// Removes every key in `keys`; returns how many of them were there.
    /// One request per server. As with [`delete`](Cache::delete), fills of
    /// these keys under way can no longer store, and a removed lock
    /// record's waiters in this process go on at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let cache = stampede::Cache::memory();
    /// cache.set("a", b"1", None).await?;
    /// assert_eq!(cache.delete_many(&["a", "never-set"]).await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An empty key (before anything is sent), or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, any of the keys may or may not have been
    /// removed.
    pub async fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let span = op_span!("delete_many", self.backend_kind(), keys.len());
        observe::traced(span, async {
            let full = self.scope.full_keys(keys).await?;
            let removed = self.scope.backend().delete_many(&full.to_vec()).await;
            for key in full.iter() {
                self.scope.wrote(key);
                self.scope.wakeups.wake(key);
            }
            removed
        })
        .await
    }
}
