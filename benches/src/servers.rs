//! Redis and memcached for the benchmarks, started exactly as the tests
//! start them: the tests' `tests/common/servers.rs` is compiled in here, so
//! a server runs on a free loopback port with persistence off and is
//! stopped by a watchdog shell when this process exits.
//! `STAMPEDE_REDIS_URL` and `STAMPEDE_MEMCACHED_URL` name servers of your
//! own instead.

#[allow(dead_code)]
#[path = "../../tests/common/servers.rs"]
mod shared;

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
/// take an address rather than a URL.
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
