//! How a [`RedisBackend`](super::RedisBackend) is configured: where its
//! connections come from ([`RedisSource`]), its timeout ([`RedisOptions`]),
//! and the `redis://` URL form.

use std::time::Duration;

use deadpool_redis::{Config, Manager, Pool, PoolConfig, Runtime};
use redis::AsyncConnectionConfig;

use crate::url::CacheUrl;
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
/// notifications over a pub/sub connection opened with a [`redis::Client`].
///
/// Build one with `From`:
///
/// - from a [`deadpool_redis::Config`]: stampede builds the pool (with its
///   [timeout](RedisOptions::timeout)) and the pub/sub client from the same
///   address;
/// - from a `(Pool, redis::Client)` pair: a pool your application already
///   has, and a client for the same server. A pooled connection cannot be
///   turned into a subscriber, and a pool does not reveal its address, so
///   the client has to be given.
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

/// The pool and pub/sub client a backend runs on.
pub(super) struct Resolved {
    pub(super) pool: Pool,
    pub(super) subscriber: redis::Client,
}

impl RedisSource {
    pub(super) fn resolve(self, options: &RedisOptions) -> Result<Resolved> {
        options.check()?;
        match self {
            RedisSource::Pool { pool, subscriber } => Ok(Resolved { pool, subscriber }),
            RedisSource::Config(config) => build(&config, options),
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

    let mut pool_config: PoolConfig = config.get_pool_config();
    let timeouts = &mut pool_config.timeouts;
    for timeout in [
        &mut timeouts.wait,
        &mut timeouts.create,
        &mut timeouts.recycle,
    ] {
        timeout.get_or_insert(options.timeout);
    }
    let pool = Pool::builder(manager)
        .config(pool_config)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| Error::invalid_config(described(), e.to_string()))?;
    Ok(Resolved { pool, subscriber })
}

fn invalid_reason(error: &redis::RedisError) -> String {
    format!("not a usable Redis address: {error}")
}

/// Reads a `redis://` or `rediss://` URL: the address, `protocol` and
/// `insecure` go to the redis crate, `timeout_ms` is ours. `namespace` was
/// taken already; any other parameter is left for [`CacheUrl::finish`] to
/// refuse.
pub(super) fn from_url(url: &mut CacheUrl<'_>) -> Result<(Config, RedisOptions)> {
    let mut options = RedisOptions::default();
    if let Some(timeout) = url.take_millis("timeout_ms")? {
        options.timeout = timeout;
    }
    if url.scheme == "rediss" && !cfg!(feature = "redis-tls") {
        return Err(Error::invalid_config(
            url.original,
            "rediss:// needs TLS, which this build of stampede lacks; enable its `redis-tls` feature",
        ));
    }
    if url.rest.is_empty() {
        return Err(Error::invalid_config(
            url.original,
            "a redis:// URL needs a host, as in redis://127.0.0.1:6379/0",
        ));
    }
    // The one query parameter the redis crate reads from a TCP URL.
    let protocol = match url.take("protocol").as_deref() {
        None => "",
        Some("2" | "resp2") => "?protocol=resp2",
        Some("3" | "resp3") => "?protocol=resp3",
        Some(other) => {
            return Err(Error::invalid_config(
                url.original,
                format!("parameter `protocol` must be resp2 or resp3, not {other:?}"),
            ))
        }
    };
    // redis-rs reads "skip certificate checks" from a `#insecure` fragment,
    // which cannot follow our query; it is a parameter here.
    let insecure = match url.take("insecure").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Error::invalid_config(
                url.original,
                format!("parameter `insecure` must be true or false, not {other:?}"),
            ))
        }
    };
    if insecure && url.scheme != "rediss" {
        return Err(Error::invalid_config(
            url.original,
            "parameter `insecure` only applies to rediss:// URLs",
        ));
    }
    let fragment = if insecure { "#insecure" } else { "" };
    let address = format!("{}://{}{protocol}{fragment}", url.scheme, url.rest);
    // Parsed here so that a bad address is a configuration error now, not a
    // failure at the first command.
    redis::IntoConnectionInfo::into_connection_info(address.as_str())
        .map_err(|e| Error::invalid_config(url.original, invalid_reason(&e)))?;
    Ok((Config::from_url(address), options))
}
