//! Shared test support: which backend, a store per test, child processes.
#![allow(dead_code)]

pub mod failover;
pub mod near;
pub mod outage;
pub mod process;
pub mod servers;
pub mod topology;

use std::time::Duration;

use stampede::backend::memory::MemoryBackend;
use stampede::Cache;

/// A backend the shared suite runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Redis,
    Memcached,
    /// Redis Cluster (three masters, three replicas): the shared
    /// [`topology::shared_cluster_url`].
    RedisCluster,
    /// Redis behind three sentinels: the shared
    /// [`topology::shared_sentinel_url`].
    RedisSentinel,
    /// Redis with a near cache on every handle ([`near_cache`]).
    RedisNear,
    /// memcached with a near cache on every handle ([`near_cache`]).
    MemcachedNear,
}

impl Kind {
    /// The store behind this setup (a near cache changes no bound).
    pub fn store(self) -> Kind {
        match self {
            Kind::RedisNear => Kind::Redis,
            Kind::MemcachedNear => Kind::Memcached,
            kind => kind,
        }
    }

    /// A short TTL this backend honours closely enough to test expiry with:
    /// memcached counts whole seconds.
    pub fn short_ttl(self) -> Duration {
        match self.store() {
            Kind::Memcached => Duration::from_secs(1),
            _ => Duration::from_millis(300),
        }
    }

    /// How much later than its TTL a key may still be seen on this backend.
    /// memcached sends every TTL as `ceil(seconds) + CLOCK_MARGIN_SECS` and
    /// its clock ticks once a second, so items outlive their TTL by up to
    /// the margin plus a second (and a poll to notice).
    pub fn ttl_slack(self) -> Duration {
        match self.store() {
            #[cfg(feature = "memcached")]
            Kind::Memcached => {
                Duration::from_secs(stampede::backend::memcached::CLOCK_MARGIN_SECS + 1)
                    + Duration::from_millis(500)
            }
            _ => Duration::from_millis(700),
        }
    }

    /// A fill lease short enough to outlive in a test, long enough for the
    /// backend's granularity (memcached counts whole seconds and adds 2).
    pub fn short_lease(self) -> Duration {
        match self.store() {
            Kind::Memcached => Duration::from_secs(1),
            _ => Duration::from_millis(300),
        }
    }

    /// The longest a record written with `lease` may live on this backend.
    pub fn lease_life(self, lease: Duration) -> Duration {
        match self.store() {
            #[cfg(feature = "memcached")]
            Kind::Memcached => {
                let secs = lease.as_secs() + u64::from(lease.subsec_nanos() > 0);
                Duration::from_secs(secs + stampede::backend::memcached::CLOCK_MARGIN_SECS)
            }
            _ => lease,
        }
    }

    /// Whether separate processes (or separately opened handles) share it.
    pub fn is_shared(self) -> bool {
        self != Kind::Memory
    }
}

/// One test's view of a backend: a unique namespace on the shared server.
pub struct Store {
    pub kind: Kind,
    pub namespace: String,
    base_url: Option<String>,
    memory: Option<(MemoryBackend, Cache)>,
}

impl Store {
    /// A fresh namespace named after `test` on `kind`'s shared store.
    pub fn new(kind: Kind, test: &str) -> Store {
        let namespace = format!("{test}-{}", uuid::Uuid::new_v4().simple());
        let (base_url, memory) = match kind {
            Kind::Memory => {
                let backend = MemoryBackend::default();
                (None, Some((backend.clone(), Cache::from(backend))))
            }
            Kind::Redis | Kind::RedisNear => (Some(servers::shared_url(servers::REDIS)), None),
            Kind::Memcached | Kind::MemcachedNear => {
                (Some(servers::shared_url(servers::MEMCACHED)), None)
            }
            Kind::RedisCluster => (Some(topology::shared_cluster_url()), None),
            Kind::RedisSentinel => (Some(topology::shared_sentinel_url()), None),
        };
        Store {
            kind,
            namespace,
            base_url,
            memory,
        }
    }

    /// The URL of this store, namespace included, for `Cache::from_url` here
    /// or in a child process. Memory stores have none.
    pub fn url(&self) -> String {
        let base = self.base_url.as_deref().expect("a memory store has no URL");
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}namespace={}", self.namespace)
    }

    /// A handle on this store in the test's namespace. On network backends
    /// each call opens new connections, as another process would; in memory
    /// it is a clone of the one cache.
    pub async fn handle(&self) -> Cache {
        let cache = match &self.memory {
            Some((_, cache)) => cache.with_namespace(&self.namespace),
            None => Cache::from_url(&self.url())
                .await
                .unwrap_or_else(|e| panic!("open {}: {e}", self.url())),
        };
        match self.kind {
            Kind::RedisNear | Kind::MemcachedNear => near_cache(cache).await,
            _ => cache,
        }
    }

    /// A handle with its own flight map and wake-up map, as another process
    /// has: on memory, a second `Cache` on the same backend; on network
    /// backends, new connections (as [`handle`](Store::handle)).
    pub async fn independent_handle(&self) -> Cache {
        match &self.memory {
            Some((backend, _)) => Cache::from(backend.clone()).with_namespace(&self.namespace),
            None => self.handle().await,
        }
    }
}

/// The near setups' `trust` on memcached: how long a copy is served before
/// it is checked again, the window in which another handle's write may go
/// unseen.
pub const NEAR_TRUST: Duration = Duration::from_millis(1);

/// `cache` with a near cache, as the `*_near` setups of the suite run
/// it: memcached checks a copy after 1 ms (its window for other handles'
/// writes); on Redis the feed is waited for, so that copies are kept
/// current from the first read.
pub async fn near_cache(cache: Cache) -> Cache {
    let config = stampede::NearCache::max_capacity(16 << 20).trust(NEAR_TRUST);
    let cache = cache.try_with_near_cache(config).expect("a near cache");
    let started = std::time::Instant::now();
    while cache.backend_kind() == "redis" && !cache.near_stats().expect("a near cache").live {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the feed never came up"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    cache
}

/// What `reader`'s near cache was told of other handles' writes so far
/// (0 without one): taken before a write by another handle that `reader`
/// must see next, for [`until_seen`].
pub fn near_seen(reader: &Cache) -> u64 {
    reader.near_stats().map_or(0, |stats| stats.invalidations)
}

/// Waits until `reader` sees a write another handle made after
/// [`near_seen`] returned `seen`, where a near cache may still serve its
/// copy from before the write within the window the README documents
/// ("Near cache", the guarantee per backend). A near cache relaxes
/// coherence across handles (processes) by that window and no more; tests
/// that read another handle's write at once wait it out here, and only on
/// the near setups:
///
/// - Redis: until the write's change arrived through `reader`'s feed (its
///   invalidation count moved): a signal, no clock.
/// - memcached, which announces nothing: a copy is served for `trust`
///   after it was last checked, then checked by CAS. Nothing signals the
///   end of that window in `reader`, so this waits it out: `trust` since
///   the write, plus the tier's millisecond rounding.
///
/// Returns at once without a near cache.
pub async fn until_seen(reader: &Cache, seen: u64) {
    if reader.near_cache().is_none() {
        return;
    }
    if reader.backend_kind() == "memcached" {
        tokio::time::sleep(NEAR_TRUST + Duration::from_millis(2)).await;
        return;
    }
    let started = std::time::Instant::now();
    while near_seen(reader) == seen {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the write never reached the near cache's feed"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until `cache` has `count` lock keys with waiters (a signal the
/// cache exposes), failing after five seconds.
pub async fn until_waiting(cache: &Cache, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while cache.waiting_lock_keys() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {count} keys have waiters",
            cache.waiting_lock_keys()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Asserts that `elapsed` lies in `[low, high]`, with a readable message.
#[track_caller]
pub fn assert_between(what: &str, elapsed: Duration, low: Duration, high: Duration) {
    assert!(
        elapsed >= low && elapsed <= high,
        "{what} took {elapsed:?}, expected between {low:?} and {high:?}"
    );
}
