//! How a [`RedisBackend`](super::RedisBackend) is configured: where its
//! connections come from ([`RedisSource`]), its timeout ([`RedisOptions`]),
//! and the `redis://` URL form.

use std::time::Duration;

use deadpool_redis::{Config, Manager, Pool, PoolConfig, Runtime};
use redis::AsyncConnectionConfig;

use super::subscriber::Dialer;
use super::topology::RedisPool;
use crate::{Error, Result};

/// Default bound on every Redis call: 2 seconds.
///
/// ```
/// use stampede::backend::redis::{RedisOptions, DEFAULT_TIMEOUT};
///
/// assert_eq!(RedisOptions::default().timeout, DEFAULT_TIMEOUT);
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of a [`RedisBackend`](super::RedisBackend) beyond its connections.
///
/// Plain data with a builder; the defaults are listed field by field.
///
/// ```
/// use std::time::Duration;
/// use stampede::backend::redis::RedisOptions;
///
/// let options = RedisOptions::default().timeout(Duration::from_millis(500));
/// assert_eq!(options.timeout, Duration::from_millis(500));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// The longest any one Redis call may take, connecting included: a
    /// command, a script, setting up a release watch. Past it the call fails
    /// with [`Error::BackendTimeout`]. For pools stampede builds, it is also
    /// the connect and response timeout of each connection, and the pool's
    /// wait, create and recycle timeouts (where the [`Config`] sets none).
    ///
    /// Default: [`DEFAULT_TIMEOUT`] (2 s). URL parameter: `timeout_ms`.
    pub timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl RedisOptions {
    /// Sets the `timeout` field; it must
    /// be longer than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stampede::backend::redis::RedisOptions;
    ///
    /// let options = RedisOptions::default().timeout(Duration::from_secs(1));
    /// assert_eq!(options.timeout, Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn check(&self) -> Result<()> {
        if self.timeout.is_zero() {
            return Err(Error::InvalidArgument {
                name: "timeout",
                reason: "a Redis timeout must be longer than zero",
            });
        }
        Ok(())
    }
}

/// Where a [`RedisBackend`](super::RedisBackend) gets its connections:
/// commands go over a connection from a deadpool-redis pool, and release
/// notifications over a pub/sub connection to the same deployment.
///
/// Build one with `From`:
///
/// - from a [`deadpool_redis::Config`]: stampede builds the pool (with its
///   [timeout](RedisOptions::timeout)) and the pub/sub client from the same
///   address;
/// - from a `(Pool, redis::Client)` pair: a pool your application already
///   has, and a client for the same server. A pooled connection cannot be
///   turned into a subscriber, and a pool does not reveal its address, so
///   the client has to be given;
/// - from a [`deadpool_redis::cluster::Config`] (feature `redis-cluster`)
///   or a [`deadpool_redis::sentinel::Config`] (feature `redis-sentinel`):
///   see [`Cache::redis_cluster`](crate::Cache::redis_cluster) and
///   [`Cache::redis_sentinel`](crate::Cache::redis_sentinel).
///
/// ```
/// use stampede::backend::redis::{deadpool_redis, redis, RedisSource};
///
/// let url = "redis://127.0.0.1:6379/0";
/// let from_config = RedisSource::from(deadpool_redis::Config::from_url(url));
///
/// let pool = deadpool_redis::Config::from_url(url)
///     .create_pool(Some(deadpool_redis::Runtime::Tokio1))
///     .unwrap();
/// let from_pool = RedisSource::from((pool, redis::Client::open(url).unwrap()));
/// # let _ = (from_config, from_pool);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisSource {
    /// A pool configuration; stampede builds the pool.
    Config(Config),
    /// A pool built elsewhere, with a client for the same server.
    Pool {
        /// The pool that commands are sent through.
        pool: Pool,
        /// Opens the pub/sub connection that hears releases.
        subscriber: redis::Client,
    },
    /// A Redis Cluster's configuration; stampede builds the pool.
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    Cluster(deadpool_redis::cluster::Config),
    /// A Sentinel deployment's configuration; stampede builds the pool.
    #[cfg(feature = "redis-sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-sentinel")))]
    Sentinel(deadpool_redis::sentinel::Config),
}

#[cfg(feature = "redis-cluster")]
impl From<deadpool_redis::cluster::Config> for RedisSource {
    fn from(config: deadpool_redis::cluster::Config) -> Self {
        RedisSource::Cluster(config)
    }
}

#[cfg(feature = "redis-sentinel")]
impl From<deadpool_redis::sentinel::Config> for RedisSource {
    fn from(config: deadpool_redis::sentinel::Config) -> Self {
        RedisSource::Sentinel(config)
    }
}

impl From<Config> for RedisSource {
    fn from(config: Config) -> Self {
        RedisSource::Config(config)
    }
}

impl From<(Pool, redis::Client)> for RedisSource {
    fn from((pool, subscriber): (Pool, redis::Client)) -> Self {
        RedisSource::Pool { pool, subscriber }
    }
}

/// The pool and pub/sub dialer a backend runs on.
pub(super) struct Resolved {
    pub(super) pool: RedisPool,
    pub(super) dialer: Dialer,
}

impl RedisSource {
    pub(super) fn resolve(self, options: &RedisOptions) -> Result<Resolved> {
        options.check()?;
        match self {
            RedisSource::Pool { pool, subscriber } => Ok(Resolved {
                pool: RedisPool::Standalone(pool),
                dialer: Dialer::Server(subscriber),
            }),
            RedisSource::Config(config) => build(&config, options),
            #[cfg(feature = "redis-cluster")]
            RedisSource::Cluster(config) => super::deploy::cluster(&config, options),
            #[cfg(feature = "redis-sentinel")]
            RedisSource::Sentinel(config) => super::deploy::sentinel(&config, options),
        }
    }
}

/// Builds the pool and client described by `config`.
fn build(config: &Config, options: &RedisOptions) -> Result<Resolved> {
    let described = || match &config.url {
        Some(url) => url.to_owned(),
        None => "deadpool_redis::Config { connection: .. }".to_owned(),
    };
    let connection_info = match (&config.url, &config.connection) {
        (Some(url), None) => redis::IntoConnectionInfo::into_connection_info(url.as_str()),
        (None, Some(info)) => redis::IntoConnectionInfo::into_connection_info(info.clone()),
        (None, None) => redis::IntoConnectionInfo::into_connection_info(
            deadpool_redis::ConnectionInfo::default(),
        ),
        (Some(_), Some(_)) => {
            return Err(Error::invalid_config(
                described(),
                "a Redis config takes either `url` or `connection`, not both",
            ))
        }
    }
    .map_err(|e| Error::invalid_config(described(), invalid_reason(&e)))?;

    let subscriber = redis::Client::open(connection_info.clone())
        .map_err(|e| Error::invalid_config(described(), invalid_reason(&e)))?;
    let connection_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(options.timeout))
        .set_response_timeout(Some(options.timeout));
    let manager = Manager::new_with_config(connection_info, connection_config)
        .map_err(|e| Error::invalid_config(described(), invalid_reason(&e)))?;

    let pool = Pool::builder(manager)
        .config(bounded(config.get_pool_config(), options))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| Error::invalid_config(described(), e.to_string()))?;
    Ok(Resolved {
        pool: RedisPool::Standalone(pool),
        dialer: Dialer::Server(subscriber),
    })
}

/// `config` with the backend's timeout wherever it sets none: waiting for,
/// creating and recycling a connection.
pub(super) fn bounded(mut config: PoolConfig, options: &RedisOptions) -> PoolConfig {
    let timeouts = &mut config.timeouts;
    for timeout in [
        &mut timeouts.wait,
        &mut timeouts.create,
        &mut timeouts.recycle,
    ] {
        timeout.get_or_insert(options.timeout);
    }
    config
}

pub(super) fn invalid_reason(error: &redis::RedisError) -> String {
    format!("not a usable Redis address: {error}")
}
