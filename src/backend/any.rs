//! Runtime choice of backend.
//!
//! [`Backend`] returns `impl Future`, so it is not object safe. The built-in
//! backends are dispatched through an enum. The memory backend's futures
//! stay inline (no allocation per call); the network backends' futures are
//! boxed, because an enum's future is as large as its largest arm's: inline,
//! the Redis futures (kilobytes) would be copied at every `.await` layer of
//! every call on every backend, which cost the memory backend more than its
//! own work, while one allocation is nothing next to a round trip. Custom
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
    // An async call: the network backends' futures boxed (see the module docs).
    ($self:ident, $b:ident => @await $call:expr) => {
        match $self {
            AnyBackend::Memory($b) => $call.await,
            #[cfg(feature = "redis")]
            AnyBackend::Redis($b) => Box::pin($call).await,
            #[cfg(feature = "memcached")]
            AnyBackend::Memcached($b) => Box::pin($call).await,
            AnyBackend::Custom($b) => $call.await,
        }
    };
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
        dispatch!(self, b => @await b.get(key))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, b => @await b.set(key, value, ttl))
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        dispatch!(self, b => @await b.add(key, value, ttl))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        dispatch!(self, b => @await b.delete(key))
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        dispatch!(self, b => @await b.gets(key))
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        dispatch!(self, b => @await b.cas(key, value, expected, ttl))
    }

    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        dispatch!(self, b => @await b.try_lock(key, owner, lease, fencing))
    }

    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        dispatch!(self, b => @await b.lock_record(key))
    }

    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        dispatch!(self, b => @await b.release(key, owner))
    }

    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        dispatch!(self, b => @await b.extend(key, owner, lease))
    }

    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        dispatch!(self, b => @await b.watch_releases(key, wake))
    }

    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        dispatch!(self, b => @await b.read_for_fill(key, lease))
    }

    async fn peek_for_fill(&self, key: &str) -> Result<Option<FillRead>> {
        dispatch!(self, b => @await b.peek_for_fill(key))
    }

    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        dispatch!(self, b => @await b.store_filled(key, lease, value, ttl))
    }

    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        dispatch!(self, b => @await b.release_fill(key, lease))
    }

    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        dispatch!(self, b => @await b.mark_stale(key, grace))
    }

    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        dispatch!(self, b => @await b.watch_fills(key, wake))
    }

    fn lease_life(&self, lease: Duration) -> Duration {
        dispatch!(self, b => b.lease_life(lease))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        dispatch!(self, b => @await b.get_many(keys))
    }

    async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, b => @await b.set_many(entries, ttl))
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        dispatch!(self, b => @await b.delete_many(keys))
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        dispatch!(self, b => @await b.exists(key))
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool> {
        dispatch!(self, b => @await b.touch(key, ttl))
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        dispatch!(self, b => @await b.increment(key, delta))
    }

    fn clears_by_prefix(&self) -> bool {
        dispatch!(self, b => b.clears_by_prefix())
    }

    async fn clear(&self, prefix: &str) -> Result<()> {
        dispatch!(self, b => @await b.clear(prefix))
    }

    async fn read_for_fill_many(&self, keys: &[&str], lease: Duration) -> Result<Vec<FillRead>> {
        dispatch!(self, b => @await b.read_for_fill_many(keys, lease))
    }

    async fn store_filled_many(&self, entries: &[FilledValue<'_>]) -> Result<Vec<bool>> {
        dispatch!(self, b => @await b.store_filled_many(entries))
    }
}
