//! Building the pool and the pub/sub dialer for a Redis Cluster or a
//! Sentinel deployment from deadpool-redis's configurations.

use deadpool_redis::Runtime;

use super::config::{bounded, invalid_reason, RedisOptions, Resolved};
use super::subscriber::Dialer;
use super::topology::RedisPool;
use crate::{Error, Result};

/// What a configuration is called in errors: its URLs, or a placeholder.
fn described(urls: Option<&Vec<String>>, what: &str) -> String {
    match urls {
        Some(urls) => urls.join(","),
        None => format!("{what} {{ connections: .. }}"),
    }
}

/// The nodes a configuration names, by `urls` or by `connections`.
fn nodes(
    urls: &Option<Vec<String>>,
    connections: &Option<Vec<deadpool_redis::ConnectionInfo>>,
    described: &dyn Fn() -> String,
) -> Result<Vec<redis::ConnectionInfo>> {
    let parsed: redis::RedisResult<Vec<redis::ConnectionInfo>> = match (urls, connections) {
        (Some(urls), None) => urls
            .iter()
            .map(|url| redis::IntoConnectionInfo::into_connection_info(url.as_str()))
            .collect(),
        (None, Some(connections)) => connections
            .iter()
            .map(|info| redis::IntoConnectionInfo::into_connection_info(info.clone()))
            .collect(),
        (None, None) => Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "the config names no node: set `urls` or `connections`",
        ))),
        (Some(_), Some(_)) => Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "the config takes either `urls` or `connections`, not both",
        ))),
    };
    let nodes = parsed.map_err(|e| Error::invalid_config(described(), invalid_reason(&e)))?;
    if nodes.is_empty() {
        return Err(Error::invalid_config(
            described(),
            "the config names no node: `urls` or `connections` is empty",
        ));
    }
    Ok(nodes)
}

/// The pool a deadpool-redis cluster or Sentinel `$config` describes, with
/// the backend's timeouts where it sets none. (A macro: the two pool
/// builders are different types with the same methods.)
macro_rules! build_pool {
    ($config:expr, $options:expr, $described:expr) => {
        $config
            .builder()
            .map_err(|e| Error::invalid_config($described(), e.to_string()))?
            .config(bounded($config.get_pool_config(), $options))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::invalid_config($described(), e.to_string()))?
    };
}

/// A cluster: redis-rs's cluster client behind deadpool, and a sharded
/// pub/sub link through the same seed nodes.
#[cfg(feature = "redis-cluster")]
pub(super) fn cluster(
    config: &deadpool_redis::cluster::Config,
    options: &RedisOptions,
) -> Result<Resolved> {
    let described = || described(config.urls.as_ref(), "deadpool_redis::cluster::Config");
    if config.read_from_replicas {
        return Err(Error::invalid_config(
            described(),
            "read_from_replicas is not supported: locks and compare-and-set read what was \
             just written, and replicas lag behind their master",
        ));
    }
    let nodes = nodes(&config.urls, &config.connections, &described)?;
    let pool = build_pool!(config, options, described);
    Ok(Resolved {
        pool: RedisPool::Cluster(pool),
        dialer: Dialer::Cluster(nodes),
    })
}

/// A Sentinel deployment: deadpool asks the sentinels for the master at
/// each new connection, and so does the pub/sub dialer.
#[cfg(feature = "redis-sentinel")]
pub(super) fn sentinel(
    config: &deadpool_redis::sentinel::Config,
    options: &RedisOptions,
) -> Result<Resolved> {
    use deadpool_redis::sentinel::SentinelServerType;
    let described = || described(config.urls.as_ref(), "deadpool_redis::sentinel::Config");
    if let SentinelServerType::Replica = config.server_type {
        return Err(Error::invalid_config(
            described(),
            "server_type Replica is not supported: stampede writes (locks, values), so it \
             talks to the master",
        ));
    }
    let nodes = nodes(&config.urls, &config.connections, &described)?;
    let sentinel = redis::sentinel::SentinelClient::build(
        nodes,
        config.master_name.clone(),
        config.node_connection_info.clone().map(Into::into),
        redis::sentinel::SentinelServerType::Master,
    )
    .map_err(|e| Error::invalid_config(described(), invalid_reason(&e)))?;
    let pool = build_pool!(config, options, described);
    Ok(Resolved {
        pool: RedisPool::Sentinel(pool),
        dialer: Dialer::Sentinel(tokio::sync::Mutex::new(sentinel)),
    })
}
