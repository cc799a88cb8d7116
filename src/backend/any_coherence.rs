//! [`AnyBackend`]'s side of [`coherence`](super::coherence): each built-in
//! backend's way of keeping a near tier coherent, or why it has none.

use std::sync::Weak;

use super::any::AnyBackend;
use super::coherence::{ChangeSink, Coherence, Revalidated, Versioned};
use super::{Backend, CasToken};
use crate::{Error, Result};

impl AnyBackend {
    /// How this backend keeps a near tier coherent.
    pub(crate) fn coherence(&self) -> Coherence {
        match self {
            AnyBackend::Memory(_) => Coherence::Unsupported(
                "the memory backend is already in this process: a near cache in front of it would be a cache of itself",
            ),
            #[cfg(feature = "redis")]
            AnyBackend::Redis(redis) => redis.coherence(),
            #[cfg(feature = "memcached")]
            AnyBackend::Memcached(_) => Coherence::Revalidate,
            AnyBackend::Custom(_) => Coherence::Unsupported(
                "a custom backend has no way to announce writes or report versions to a near cache",
            ),
        }
    }

    /// From now on, every write through this backend is announced with
    /// `origin`, and other processes' writes reach `sink` once the feed is
    /// started ([`follow_changes`](Self::follow_changes)).
    pub(crate) fn announce_changes(&self, origin: u64, sink: Weak<dyn ChangeSink>) {
        #[cfg(feature = "redis")]
        if let AnyBackend::Redis(redis) = self {
            redis.announce_changes(origin, sink);
            return;
        }
        let _ = (origin, sink);
    }

    /// Starts the feed of other processes' writes, if it is not running.
    /// Needs a Tokio runtime; does nothing on a backend without a feed.
    pub(crate) fn follow_changes(&self) {
        #[cfg(feature = "redis")]
        if let AnyBackend::Redis(redis) = self {
            redis.follow_changes();
        }
    }

    /// Reads `key` with its version and remaining TTL.
    pub(crate) async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        match self {
            #[cfg(feature = "redis")]
            AnyBackend::Redis(redis) => Box::pin(redis.read_versioned(key)).await,
            #[cfg(feature = "memcached")]
            AnyBackend::Memcached(memcached) => Box::pin(memcached.read_versioned(key)).await,
            _ => {
                let _ = key;
                Err(self.no_coherence())
            }
        }
    }

    /// [`read_for_fill`](Backend::read_for_fill), and how long a near
    /// cache may keep a copy of the value read (`Some(ttl)`), if at all.
    pub(crate) async fn read_for_fill_near(
        &self,
        key: &str,
        lease: std::time::Duration,
    ) -> Result<(super::FillRead, Option<Option<std::time::Duration>>)> {
        match self {
            #[cfg(feature = "redis")]
            AnyBackend::Redis(redis) => Box::pin(redis.fill_read_near(key, lease)).await,
            #[cfg(feature = "memcached")]
            AnyBackend::Memcached(memcached) => {
                Box::pin(memcached.fill_read_near(key, lease)).await
            }
            _ => Ok((self.read_for_fill(key, lease).await?, None)),
        }
    }

    /// Whether `version` is still the write stored at `key`.
    pub(crate) async fn revalidate(&self, key: &str, version: &CasToken) -> Result<Revalidated> {
        match self {
            #[cfg(feature = "memcached")]
            AnyBackend::Memcached(memcached) => Box::pin(memcached.revalidate(key, version)).await,
            _ => {
                let _ = (key, version);
                Err(self.no_coherence())
            }
        }
    }

    fn no_coherence(&self) -> Error {
        Error::Unsupported {
            backend: self.kind(),
            operation: "keep a near cache",
        }
    }
}
