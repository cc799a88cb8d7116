//! Redis, a Redis Cluster and memcached for the benchmarks, started
//! exactly as the tests start them: the tests' `tests/common/servers.rs`
//! and `tests/common/topology.rs` are compiled in (as `crate::common`), so
//! a server runs on a free loopback port with persistence off and is
//! stopped by a watchdog shell when this process exits.
//! `STAMPEDE_REDIS_URL`, `STAMPEDE_REDIS_CLUSTER_URL` and
//! `STAMPEDE_MEMCACHED_URL` name servers of your own instead.

use crate::common::servers as shared;
use crate::common::topology;

/// The URL (`redis://127.0.0.1:<port>`) of this process's Redis: the one
/// named by `STAMPEDE_REDIS_URL`, or one started on first use.
///
/// # Panics
///
/// When `redis-server` is neither installed nor named; the message says
/// how to get it (`scripts/test.sh` installs it).
pub fn redis_url() -> String {
    shared::shared_url(shared::REDIS)
}

/// The URL (`redis+cluster://127.0.0.1:<port>,…`) of this process's Redis
/// Cluster, three masters and three replicas on loopback: the one named by
/// `STAMPEDE_REDIS_CLUSTER_URL`, or one started on first use (which takes a
/// few seconds: the nodes, `redis-cli --cluster create`, then waiting for
/// every node to agree on the slots).
///
/// # Panics
///
/// When `redis-server` or `redis-cli` is neither installed nor named; the
/// message says how to get them (`scripts/test.sh` installs both).
pub fn redis_cluster_url() -> String {
    topology::shared_cluster_url()
}

/// The seed nodes of a `redis+cluster://[user:pass@]host:port,…[?…]` URL
/// as `redis://` URLs, one per node, for redis-rs's `ClusterClient`. The
/// user-info, which the cluster URL gives once, goes on every node.
///
/// ```
/// use stampede_benches::servers::cluster_nodes;
///
/// assert_eq!(
///     cluster_nodes("redis+cluster://127.0.0.1:7000,127.0.0.1:7001?namespace=x"),
///     ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
/// );
/// assert_eq!(cluster_nodes("redis+cluster://u:p@h:1,h:2"), ["redis://u:p@h:1", "redis://u:p@h:2"]);
/// ```
pub fn cluster_nodes(url: &str) -> Vec<String> {
    let list = host_port(url);
    let (user_info, hosts) = match list.rsplit_once('@') {
        Some((user_info, hosts)) => (format!("{user_info}@"), hosts.to_owned()),
        None => (String::new(), list),
    };
    hosts
        .split(',')
        .map(|host| format!("redis://{user_info}{host}"))
        .collect()
}

/// The URL (`memcached://127.0.0.1:<port>`) of this process's memcached:
/// the one named by `STAMPEDE_MEMCACHED_URL`, or one started on first use.
///
/// # Panics
///
/// When `memcached` is neither installed nor named.
pub fn memcached_url() -> String {
    shared::shared_url(shared::MEMCACHED)
}

/// `host:port` of a `scheme://host:port[/…][?…]` URL, for clients that
/// take an address rather than a URL (user-info included, if any).
///
/// ```
/// assert_eq!(stampede_benches::servers::host_port("redis://127.0.0.1:6379/0"), "127.0.0.1:6379");
/// assert_eq!(stampede_benches::servers::host_port("memcached://127.0.0.1:11211"), "127.0.0.1:11211");
/// ```
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    rest[..end].to_owned()
}
