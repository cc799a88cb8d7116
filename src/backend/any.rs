//! Runtime choice of backend without boxing the built-in ones.
//!
//! [`Backend`] returns `impl Future`, so it is not object safe. The built-in
//! backends are dispatched through an enum (no allocation per call); custom
//! backends go through [`BoxedBackend`], which boxes their futures.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::dynamic::BoxedBackend;
use super::memory::MemoryBackend;
use super::{
    Backend, CasToken, Fencing, FillRead, FilledValue, LeaseToken, LockAttempt, LockRecord,
    ReleaseWatch,
};
use crate::url::CacheUrl;
use crate::{Error, Result};

/// The backend behind a [`Cache`](crate::Cache).
// One per cache, behind the cache's `Arc`: its size costs nothing per call,
// and boxing a variant would add a pointer hop to every operation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnyBackend {
    Memory(MemoryBackend),
    #[cfg(feature = "redis")]
    Redis(super::redis::RedisBackend),
    #[cfg(feature = "memcached")]
    Memcached(super::memcached::MemcachedBackend),
    Custom(BoxedBackend),
}

/// Calls `$call` on whichever backend `$self` holds.
macro_rules! dispatch {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            AnyBackend::Memory($b) => $call,
            #[cfg(feature = "redis")]
            AnyBackend::Redis($b) => $call,
            #[cfg(feature = "memcached")]
            AnyBackend::Memcached($b) => $call,
            AnyBackend::Custom($b) => $call,
        }
    };
}

impl AnyBackend {
    /// The backend a parsed cache URL names, by its scheme. Takes the
    /// parameters that backend understands from `url`; the caller refuses
    /// any left over.
    pub(crate) async fn from_url(url: &mut CacheUrl<'_>) -> Result<AnyBackend> {
        Ok(match url.scheme.as_str() {
            "memory" => AnyBackend::Memory(MemoryBackend::from_url(url)?),
            #[cfg(feature = "redis")]
            "redis" | "rediss" | "redis+cluster" | "rediss+cluster" | "redis+sentinel"
            | "rediss+sentinel" => AnyBackend::Redis(super::redis::RedisBackend::from_url(url)?),
            #[cfg(feature = "memcached")]
            "memcached" => {
                AnyBackend::Memcached(super::memcached::MemcachedBackend::from_url(url).await?)
            }
            #[cfg(not(feature = "redis"))]
            "redis" | "rediss" | "redis+cluster" | "rediss+cluster" | "redis+sentinel"
            | "rediss+sentinel" => {
                return Err(Error::invalid_config(
                    url.original,
                    "this build of stampede has no Redis support; enable its `redis` feature",
                ))
            }
            #[cfg(not(feature = "memcached"))]
            "memcached" => return Err(Error::invalid_config(
                url.original,
                "this build of stampede has no memcached support; enable its `memcached` feature",
            )),
            other => {
                return Err(Error::invalid_config(
                    url.original,
                    format!(
                        "unknown scheme `{other}`; expected memory, redis, rediss, redis+cluster, redis+sentinel (or their rediss+ forms) or memcached"
                    ),
                ))
            }
        })
    }
}

impl Backend for AnyBackend {
    fn kind(&self) -> &'static str {
        dispatch!(self, b => b.kind())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        dispatch!(self, b => b.get(key).await)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, b => b.set(key, value, ttl).await)
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        dispatch!(self, b => b.add(key, value, ttl).await)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        dispatch!(self, b => b.delete(key).await)
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        dispatch!(self, b => b.gets(key).await)
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        dispatch!(self, b => b.cas(key, value, expected, ttl).await)
    }

    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        dispatch!(self, b => b.try_lock(key, owner, lease, fencing).await)
    }

    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        dispatch!(self, b => b.lock_record(key).await)
    }

    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        dispatch!(self, b => b.release(key, owner).await)
    }

    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        dispatch!(self, b => b.extend(key, owner, lease).await)
    }

    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        dispatch!(self, b => b.watch_releases(key, wake).await)
    }

    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        dispatch!(self, b => b.read_for_fill(key, lease).await)
    }

    async fn peek_for_fill(&self, key: &str) -> Result<Option<FillRead>> {
        dispatch!(self, b => b.peek_for_fill(key).await)
    }

    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        dispatch!(self, b => b.store_filled(key, lease, value, ttl).await)
    }

    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        dispatch!(self, b => b.release_fill(key, lease).await)
    }

    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        dispatch!(self, b => b.mark_stale(key, grace).await)
    }

    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        dispatch!(self, b => b.watch_fills(key, wake).await)
    }

    fn lease_life(&self, lease: Duration) -> Duration {
        dispatch!(self, b => b.lease_life(lease))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        dispatch!(self, b => b.get_many(keys).await)
    }

    async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, b => b.set_many(entries, ttl).await)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        dispatch!(self, b => b.delete_many(keys).await)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        dispatch!(self, b => b.exists(key).await)
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool> {
        dispatch!(self, b => b.touch(key, ttl).await)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        dispatch!(self, b => b.increment(key, delta).await)
    }

    fn clears_by_prefix(&self) -> bool {
        dispatch!(self, b => b.clears_by_prefix())
    }

    async fn clear(&self, prefix: &str) -> Result<()> {
        dispatch!(self, b => b.clear(prefix).await)
    }

    async fn read_for_fill_many(&self, keys: &[&str], lease: Duration) -> Result<Vec<FillRead>> {
        dispatch!(self, b => b.read_for_fill_many(keys, lease).await)
    }

    async fn store_filled_many(&self, entries: &[FilledValue<'_>]) -> Result<Vec<bool>> {
        dispatch!(self, b => b.store_filled_many(entries).await)
    }
}
