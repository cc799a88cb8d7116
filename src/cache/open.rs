//! Opening a [`Cache`]: from a URL, or from each backend's own
//! configuration. The backends know nothing of the handle; this is where
//! each one is put behind it.

use crate::backend::dispatch::AnyBackend;
#[cfg(feature = "memcached")]
use crate::backend::memcached::{MemcachedBackend, MemcachedConfig};
use crate::backend::memory::MemoryBackend;
#[cfg(any(feature = "redis-cluster", feature = "redis-sentinel"))]
use crate::backend::redis::deadpool_redis;
#[cfg(feature = "redis")]
use crate::backend::redis::{RedisBackend, RedisOptions, RedisSource};
use crate::backend::Backend;
use crate::url::CacheUrl;
use crate::{Cache, Error, Result};

impl Cache {
    /// An embedded in-process cache on moka with the default capacity
    /// ([`DEFAULT_MAX_CAPACITY`](crate::backend::memory::DEFAULT_MAX_CAPACITY)).
    /// Locks taken on it exclude callers in this process only.
    pub fn memory() -> Cache {
        Cache::from(MemoryBackend::default())
    }

    /// A cache over your own [`Backend`].
    pub fn custom(backend: impl Backend) -> Cache {
        Cache::from_backend(AnyBackend::Custom(Box::new(backend)))
    }

    /// Opens a cache from a URL.
    ///
    /// | URL | backend | parameters |
    /// |---|---|---|
    /// | `memory://` | in-process | `max_capacity` (bytes, at least [`MIN_MAX_CAPACITY`](crate::backend::memory::MIN_MAX_CAPACITY)) |
    /// | `redis://[user:pass@]host[:port][/db]` | Redis (feature `redis`) | `timeout_ms`, `protocol` (`resp2`/`resp3`) |
    /// | `rediss://…` | Redis over TLS (feature `redis-tls`) | as above, and `insecure=true` |
    /// | `memcached://host[:port][,host[:port]…]` | memcached (feature `memcached`) | `timeout_ms`, `poll_ms`, `first_poll_ms`, `max_value_size` |
    ///
    /// Every URL also takes `?namespace=<name>`, the same as
    /// [`with_namespace`](Cache::with_namespace). Unknown parameters are
    /// refused, so a misspelt option cannot be silently ignored.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the problem (an unknown scheme, a
    /// backend whose feature is off, a bad parameter), never showing a
    /// password. Network backends connect lazily, on the first operation.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let cache = stampede::Cache::from_url("memory://?max_capacity=1048576&namespace=app").await?;
    /// assert_eq!(cache.backend_kind(), "memory");
    /// let err = stampede::Cache::from_url("mongodb://localhost").await.unwrap_err();
    /// assert!(err.is_invalid_input());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops whatever was being set up (for memcached,
    /// the connections being opened); nothing is left running.
    pub async fn from_url(url: &str) -> Result<Cache> {
        let mut parsed = CacheUrl::parse(url)?;
        let namespace = parsed.take("namespace");
        let near = crate::near::NearCache::from_url(&mut parsed)?;
        let announce = match parsed.take("announce_writes").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Error::invalid_config(
                    url,
                    format!("announce_writes must be true or false, not {other:?}"),
                ))
            }
        };
        let backend = AnyBackend::from_url(&mut parsed).await?;
        parsed.finish()?;
        let mut cache = Cache::from_backend(backend);
        if let Some(near) = near {
            cache = cache.try_with_near_cache(near)?;
        }
        if announce {
            cache = cache.announce_writes();
        }
        Ok(match namespace {
            Some(namespace) => cache.with_namespace(&namespace),
            None => cache,
        })
    }
}

impl From<MemoryBackend> for Cache {
    fn from(backend: MemoryBackend) -> Cache {
        Cache::from_backend(AnyBackend::Memory(backend))
    }
}

#[cfg(feature = "redis")]
impl Cache {
    /// A cache on Redis, from a [`deadpool_redis::Config`] or a pool your
    /// application already has (with a [`redis::Client`] for the same
    /// server, which opens the pub/sub connection); see [`RedisSource`].
    /// Every call is bounded by [`DEFAULT_TIMEOUT`](crate::backend::redis::DEFAULT_TIMEOUT); use
    /// [`redis_with`](Cache::redis_with) to choose another.
    ///
    /// Nothing is sent until the first operation.
    ///
    /// ```
    /// use stampede::backend::redis::{deadpool_redis, redis};
    /// use stampede::Cache;
    ///
    /// let url = "redis://127.0.0.1:6379/0";
    /// let cache = Cache::redis(deadpool_redis::Config::from_url(url))?;
    ///
    /// // Or share the application's pool:
    /// let pool = deadpool_redis::Config::from_url(url)
    ///     .create_pool(Some(deadpool_redis::Runtime::Tokio1))
    ///     .expect("valid config");
    /// let shared = Cache::redis((pool, redis::Client::open(url)?))?;
    /// # let _ = (cache, shared);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an unusable address or pool configuration.
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(source: impl Into<RedisSource>) -> Result<Cache> {
        Cache::redis_with(source, RedisOptions::default())
    }

    /// [`Cache::redis`] with [`RedisOptions`], such as a shorter timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stampede::backend::redis::{deadpool_redis, RedisOptions};
    /// use stampede::Cache;
    ///
    /// let config = deadpool_redis::Config::from_url("redis://127.0.0.1:6379/0");
    /// let options = RedisOptions::default().timeout(Duration::from_millis(250));
    /// let cache = Cache::redis_with(config, options)?;
    /// # let _ = cache;
    /// # Ok::<(), stampede::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Cache::redis`]; also [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a zero
    /// timeout.
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis_with(source: impl Into<RedisSource>, options: RedisOptions) -> Result<Cache> {
        RedisBackend::new(source, options).map(Cache::from)
    }

    /// A cache on a Redis Cluster (feature `redis-cluster`): any reachable
    /// nodes, the rest are discovered. Each operation goes to the master
    /// of its key's slot; lock releases wake other processes through
    /// sharded pub/sub (Redis 7 or later). Same as the URL
    /// `redis+cluster://host:port,host:port,…`.
    ///
    /// ```
    /// use stampede::backend::redis::deadpool_redis;
    /// use stampede::Cache;
    ///
    /// let cache = Cache::redis_cluster(deadpool_redis::cluster::Config::from_urls(vec![
    ///     "redis://10.0.0.1:7000".to_owned(),
    ///     "redis://10.0.0.2:7000".to_owned(),
    /// ]))?;
    /// assert_eq!(cache.backend_kind(), "redis");
    /// # Ok::<(), stampede::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an
    /// unusable address, a config with both or neither of `urls` and
    /// `connections`, or `read_from_replicas` (locks and compare-and-set
    /// must read what was just written; replicas lag).
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn redis_cluster(config: deadpool_redis::cluster::Config) -> Result<Cache> {
        Cache::redis(config)
    }

    /// A cache on the master of a Redis Sentinel deployment (feature
    /// `redis-sentinel`): the sentinels are asked for the master at every
    /// new connection, so after a failover the same cache reaches the new
    /// one. Same as the URL `redis+sentinel://host:port,host:port/master`.
    ///
    /// ```
    /// use stampede::backend::redis::deadpool_redis::sentinel::{Config, SentinelServerType};
    /// use stampede::Cache;
    ///
    /// let sentinels = vec!["redis://10.0.0.1:26379".to_owned(), "redis://10.0.0.2:26379".to_owned()];
    /// let config = Config::from_urls(sentinels, "mymaster".to_owned(), SentinelServerType::Master);
    /// let cache = Cache::redis_sentinel(config)?;
    /// assert_eq!(cache.backend_kind(), "redis");
    /// # Ok::<(), stampede::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an
    /// unusable address, no sentinel, or `server_type` `Replica` (stampede
    /// writes, so it talks to the master).
    #[cfg(feature = "redis-sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-sentinel")))]
    pub fn redis_sentinel(config: deadpool_redis::sentinel::Config) -> Result<Cache> {
        Cache::redis(config)
    }
}

#[cfg(feature = "redis")]
impl From<RedisBackend> for Cache {
    fn from(backend: RedisBackend) -> Cache {
        Cache::from_backend(AnyBackend::Redis(backend))
    }
}

#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
impl From<MemcachedBackend> for Cache {
    fn from(backend: MemcachedBackend) -> Cache {
        Cache::from_backend(AnyBackend::Memcached(backend))
    }
}

#[cfg(feature = "memcached")]
impl Cache {
    /// A cache on memcached. Keys are spread across
    /// [`config.servers`](MemcachedConfig::servers); locks taken on it
    /// exclude every process that uses the same servers.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use stampede::backend::memcached::MemcachedConfig;
    /// use stampede::Cache;
    ///
    /// let cache = Cache::memcached(MemcachedConfig::new(["127.0.0.1:11211"])).await?;
    /// assert_eq!(cache.backend_kind(), "memcached");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`MemcachedConfig::connect`]: a bad configuration, or a host
    /// name that does not resolve. A server that is down is not an error
    /// here; calls fail until it is back.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is kept from a dropped attempt.
    #[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
    pub async fn memcached(config: MemcachedConfig) -> Result<Cache> {
        Ok(Cache::from(config.connect().await?))
    }
}
