//! The Redis URL forms, one per deployment:
//!
//! - `redis://[user:password@]host[:port][/db]` (`rediss://` for TLS);
//! - `redis+cluster://[user:password@]host:port,host:port,…` (`rediss+cluster://`):
//!   any reachable nodes of the cluster, the rest are discovered;
//! - `redis+sentinel://[user:password@]host:port,host:port,…/master[/db]`
//!   (`rediss+sentinel://`): the sentinels, and the name of the master they
//!   watch. The user-info is the data nodes' (master's) credentials;
//!   `sentinel_username` / `sentinel_password` parameters authenticate to
//!   the sentinels themselves when they require it.
//!
//! Parameters shared by all: `timeout_ms` (ours), `protocol` and `insecure`
//! (given to the redis crate). `namespace` was taken already; any other is
//! left for [`CacheUrl::finish`] to refuse.

use deadpool_redis::Config;

use super::config::{invalid_reason, RedisOptions, RedisSource};
use crate::url::CacheUrl;
use crate::{Error, Result};

/// What every Redis URL form shares.
struct Common {
    /// `redis` or `rediss`: the scheme each node is reached by.
    scheme: &'static str,
    /// `?protocol=…` for each node's URL, or nothing.
    protocol: &'static str,
    /// `#insecure` for each node's URL, or nothing.
    fragment: &'static str,
}

impl Common {
    /// The URL of one node, `user_info@host` (or `host`) and an optional
    /// path, checked now so that a bad address is a configuration error
    /// now rather than a failure at the first command.
    fn node(&self, url: &CacheUrl<'_>, address: &str) -> Result<String> {
        let node = format!(
            "{}://{address}{}{}",
            self.scheme, self.protocol, self.fragment
        );
        redis::IntoConnectionInfo::into_connection_info(node.as_str())
            .map_err(|e| Error::invalid_config(url.original, invalid_reason(&e)))?;
        Ok(node)
    }
}

/// Reads any Redis URL into a source and options.
pub(super) fn from_url(url: &mut CacheUrl<'_>) -> Result<(RedisSource, RedisOptions)> {
    let mut options = RedisOptions::default();
    if let Some(timeout) = url.take_millis("timeout_ms")? {
        options.timeout = timeout;
    }
    let (base, deployment) = match url.scheme.split_once('+') {
        Some((base, deployment)) => (base.to_owned(), deployment.to_owned()),
        None => (url.scheme.clone(), String::new()),
    };
    let common = common(url, &base)?;
    if url.rest.is_empty() {
        return Err(Error::invalid_config(
            url.original,
            format!(
                "a {}:// URL needs a host, as in {}",
                url.scheme,
                example(&deployment)
            ),
        ));
    }
    let source = match deployment.as_str() {
        "" => RedisSource::Config(Config::from_url(common.node(url, url.rest)?)),
        "cluster" => cluster(url, &common)?,
        "sentinel" => sentinel(url, &common)?,
        other => {
            return Err(Error::invalid_config(
                url.original,
                format!("unknown Redis deployment `{other}`; expected redis://, redis+cluster:// or redis+sentinel://"),
            ))
        }
    };
    Ok((source, options))
}

fn example(deployment: &str) -> &'static str {
    match deployment {
        "cluster" => "redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
        "sentinel" => "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster",
        _ => "redis://127.0.0.1:6379/0",
    }
}

/// The scheme, `protocol` and `insecure`.
fn common(url: &mut CacheUrl<'_>, base: &str) -> Result<Common> {
    let scheme = match base {
        "redis" => "redis",
        "rediss" if cfg!(feature = "redis-tls") => "rediss",
        "rediss" => {
            return Err(Error::invalid_config(
                url.original,
                format!(
                    "{}:// needs TLS, which this build of stampede lacks; enable its `redis-tls` feature",
                    url.scheme
                ),
            ))
        }
        other => {
            return Err(Error::invalid_config(
                url.original,
                format!("unknown scheme `{other}`"),
            ))
        }
    };
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
    if insecure && scheme != "rediss" {
        return Err(Error::invalid_config(
            url.original,
            "parameter `insecure` only applies to TLS (rediss…://) URLs",
        ));
    }
    let fragment = if insecure { "#insecure" } else { "" };
    Ok(Common {
        scheme,
        protocol,
        fragment,
    })
}

/// `user_info@` (or nothing), and the rest after it.
#[cfg(any(feature = "redis-cluster", feature = "redis-sentinel"))]
fn split_user_info(rest: &str) -> (&str, &str) {
    match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    }
}

/// The comma-separated hosts, each `host:port`.
#[cfg(any(feature = "redis-cluster", feature = "redis-sentinel"))]
fn hosts<'a>(url: &CacheUrl<'_>, list: &'a str) -> Result<Vec<&'a str>> {
    let hosts: Vec<&str> = list.split(',').collect();
    if hosts.iter().any(|host| host.is_empty()) {
        return Err(Error::invalid_config(
            url.original,
            "an empty host in the list; separate hosts with single commas",
        ));
    }
    Ok(hosts)
}

#[cfg(feature = "redis-cluster")]
fn cluster(url: &mut CacheUrl<'_>, common: &Common) -> Result<RedisSource> {
    let (user_info, after) = split_user_info(url.rest);
    let list = match after.split_once('/') {
        None => after,
        Some((list, "" | "0")) => list,
        Some(_) => {
            return Err(Error::invalid_config(
                url.original,
                "a Redis Cluster has only database 0; drop the /db from the URL",
            ))
        }
    };
    let nodes = hosts(url, list)?
        .into_iter()
        .map(|host| common.node(url, &format!("{user_info}{host}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(RedisSource::Cluster(
        deadpool_redis::cluster::Config::from_urls(nodes),
    ))
}

#[cfg(not(feature = "redis-cluster"))]
fn cluster(url: &mut CacheUrl<'_>, _: &Common) -> Result<RedisSource> {
    Err(Error::invalid_config(
        url.original,
        "this build of stampede has no Redis Cluster support; enable its `redis-cluster` feature",
    ))
}

#[cfg(feature = "redis-sentinel")]
fn sentinel(url: &mut CacheUrl<'_>, common: &Common) -> Result<RedisSource> {
    use deadpool_redis::sentinel::{
        Config as SentinelConfig, SentinelNodeConnectionInfo, SentinelServerType, TlsMode,
    };
    let (user_info, after) = split_user_info(url.rest);
    let Some((list, path)) = after.split_once('/').filter(|(_, path)| !path.is_empty()) else {
        return Err(Error::invalid_config(
            url.original,
            "a redis+sentinel:// URL names the master after the hosts, as in \
             redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster",
        ));
    };
    let (master, db) = path.split_once('/').unwrap_or((path, ""));
    let sentinel_auth = match (url.take("sentinel_username"), url.take("sentinel_password")) {
        (None, None) => String::new(),
        (user, password) => format!(
            "{}:{}@",
            user.as_deref().map(encode).unwrap_or_default(),
            password.as_deref().map(encode).unwrap_or_default()
        ),
    };
    let sentinels = hosts(url, list)?
        .into_iter()
        .map(|host| common.node(url, &format!("{sentinel_auth}{host}")))
        .collect::<Result<Vec<_>>>()?;
    // The master's credentials and database, read the way redis-rs reads a
    // node URL.
    let data_node = common.node(url, &format!("{user_info}sentinel-master/{db}"))?;
    let data_node = redis::IntoConnectionInfo::into_connection_info(data_node.as_str())
        .map_err(|e| Error::invalid_config(url.original, invalid_reason(&e)))?;
    let tls_mode = match common.scheme {
        "rediss" if common.fragment.is_empty() => Some(TlsMode::Secure),
        "rediss" => Some(TlsMode::Insecure),
        _ => None,
    };
    let node_info = SentinelNodeConnectionInfo {
        tls_mode,
        redis_connection_info: Some(data_node.redis_settings().clone().into()),
    };
    let config =
        SentinelConfig::from_urls(sentinels, master.to_owned(), SentinelServerType::Master)
            .with_node_connection_info(Some(node_info));
    Ok(RedisSource::Sentinel(config))
}

/// Percent-encodes a user name or password for a node URL.
#[cfg(feature = "redis-sentinel")]
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(not(feature = "redis-sentinel"))]
fn sentinel(url: &mut CacheUrl<'_>, _: &Common) -> Result<RedisSource> {
    Err(Error::invalid_config(
        url.original,
        "this build of stampede has no Redis Sentinel support; enable its `redis-sentinel` feature",
    ))
}
