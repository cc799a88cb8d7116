//! The Redis backend, over [`deadpool_redis`] (feature `redis`).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> stampede::Result<()> {
//! use stampede::Cache;
//!
//! let cache = Cache::from_url("redis://127.0.0.1:6379/0?namespace=app&timeout_ms=500").await?;
//! cache.set("greeting", b"hello", None).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Or from a pool configuration, or a pool the application already has:
//! [`Cache::redis`](crate::Cache::redis), [`Cache::redis_with`](crate::Cache::redis_with).
//! The client crates are re-exported ([`deadpool_redis`], [`redis`]) so that
//! the versions match.
//!
//! # URLs
//!
//! | deployment | URL | feature |
//! |---|---|---|
//! | one server | `redis://[user:password@]host[:port][/db]` | `redis` |
//! | Redis Cluster | `redis+cluster://[user:password@]host:port,host:port,…` | `redis-cluster` |
//! | Sentinel | `redis+sentinel://[user:password@]host:port,host:port,…/master[/db]` | `redis-sentinel` |
//!
//! Each has a TLS form, `rediss://`, `rediss+cluster://`,
//! `rediss+sentinel://` (feature `redis-tls`; without it such a URL is an
//! [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the
//! feature, as is a deployment whose feature is off). A cluster URL lists
//! any reachable nodes (the rest are discovered) and has no database; the
//! user-info is every node's. A Sentinel URL lists the sentinels and names
//! the master they watch; its user-info is the master's credentials.
//! Building the cache does not connect; the first operation does.
//!
//! | parameter | meaning | default |
//! |---|---|---|
//! | `namespace` | prefix every key, as [`Cache::with_namespace`](crate::Cache::with_namespace) | none |
//! | `timeout_ms` | bound on every call, connecting included ([`RedisOptions::timeout`]) | `2000` |
//! | `protocol` | `resp2` or `resp3`, passed to the redis crate | `resp2` |
//! | `insecure` | `true`: skip TLS certificate checks (TLS URLs only) | `false` |
//! | `sentinel_username`, `sentinel_password` | credentials of the sentinels themselves (Sentinel only) | none |
//!
//! Any other parameter is refused, so a misspelt one is an error rather than
//! a silent default.
//!
//! # How each operation maps to Redis
//!
//! Every operation is one round trip (`clear` and cluster batches aside):
//! one command, one pipeline or one Lua script. Scripts live next to this
//! file as `*.lua`, each with its contract in its first line, and run
//! through [`redis::Script`] (`EVALSHA`, loading the script again on
//! `NOSCRIPT`). Keys and values reach scripts only as `KEYS`/`ARGV`. TTLs
//! are sent in milliseconds, rounded up.
//!
//! | operation | Redis |
//! |---|---|
//! | `get`, `gets` | `GET` |
//! | `set` | `SET key v [PX ttl]` |
//! | `add` | `SET key v NX [PX ttl]` |
//! | `delete` | `delete.lua`: `DEL` the key and its fill lease |
//! | `cas` | `cas.lua`: compare, then `SET [PX]` |
//! | `try_lock`, no fence | `SET key owner NX PX lease` |
//! | `try_lock`, fenced | `lock_fenced.lua`: `SET PX` if absent, `INCR` and `PEXPIRE` the fence counter |
//! | `lock_record` | `lock_record.lua`: `GET`, `PTTL` |
//! | `release` | `release.lua`: owner check, `DEL`, `PUBLISH` (`SPUBLISH` on a cluster) |
//! | `extend` | `extend.lua`: owner check, `PEXPIRE` |
//! | `read_for_fill` | `fill_read.lua`: `GET`, and the fill lease by `SET` when absent or stale |
//! | `store_filled` | `fill_store.lua`: lease and key check, `SET`, `PUBLISH` |
//! | `release_fill` | `fill_release.lua`: lease check, `DEL`, `PUBLISH` |
//! | `mark_stale` | `mark_stale.lua`: stale marker by `SETRANGE`, TTL cut to the grace |
//! | `exists` | `EXISTS` |
//! | `touch` | `PEXPIRE` (a value marked stale stays stale) |
//! | `increment` | `incr.lua`: `INCRBY`, an enveloped value unwrapped first; TTL kept |
//! | `get_many` | `MGET` |
//! | `set_many`, `delete_many` | a pipeline of `SET`s, of `delete.lua` |
//! | `read_for_fill_many`, `store_filled_many` | a pipeline of `fill_read.lua`, of `fill_store.lua` |
//! | `clear` | `SCAN MATCH` (the prefix, then its keys' companions) and `UNLINK`; no prefix: `FLUSHDB` |
//!
//! A batch is one request per server; on a cluster, one per slot, sent
//! together, since a pipeline must keep to one slot. The fill leases are
//! described in the `backend` module: the record [`fill_lease_key`] beside
//! the value, voided by every write.
//!
//! # Reserved names
//!
//! Beside a key the backend keeps companions, each named after the key:
//!
//! | name | what | for |
//! |---|---|---|
//! | [`fence_key`]`(<lock key>)` | the fencing counter (an integer) | fenced locks |
//! | [`fill_lease_key`]`(<key>)` | the fill lease record | `get_or_fill` |
//! | [`release_channel`]`(<key>)` | a pub/sub channel | lock releases, ends of fill leases |
//!
//! Every companion name starts with the byte `0xFF`, then a letter (`t`,
//! `w` or `n`: how it keeps the key's cluster hash tag) and `:`; say
//! `\xFFw:{app:report-lock}:fence`. No UTF-8 text contains the byte `0xFF`,
//! and keys are `&str`, so no key a caller writes, in any namespace, can
//! read, overwrite or delete a companion: namespace `{B` with key
//! `x-lock}:fence` is just a key of its own. And no two keys share one. The
//! whole space of keys starting with `0xFF` is the backend's; other
//! programs should not write there.
//!
//! # Fencing tokens
//!
//! A fenced lock's token is its key's counter ([`fence_key`]) after an
//! `INCR`, in the same script as the create. Two rules keep tokens rising
//! for good, not just while the counter lives:
//!
//! - **Never below the clock.** A token is the larger of the counter plus
//!   one and the server's clock (`TIME`) in microseconds since the epoch.
//!   So a counter that is gone (never used, expired, lost to `FLUSHALL` or
//!   to a restart without persistence) or behind (a failover to a replica
//!   that missed the last increments) still hands out a token above every
//!   one it gave out before, as long as it gave out fewer than one token
//!   per microsecond on average. Where the counter is intact, tokens rise
//!   whatever the clock does.
//! - **It expires an hour after the last lease.** Every fenced lock sets
//!   the counter's TTL to its lease plus one hour, so counters of locks no
//!   longer used go away instead of piling up (one key per lock name
//!   ever fenced). The hour is the margin for the server clock: when a
//!   counter is seeded again, the clock has moved on by at least the last
//!   lease plus an hour, so tokens still rise even if it stepped back by up
//!   to an hour meanwhile (an NTP correction, a failover to a replica whose
//!   clock lags). It costs one small key per lock for an hour after use.
//!
//! Tokens are therefore large (about 1.8 × 10¹⁵ in 2026) and not
//! consecutive across counters; they fit in an `i64` until the year
//! 294,000 and Lua counts them exactly until 2255.
//!
//! # The value envelope: CAS tokens without a second key
//!
//! Redis has no per-key version, so values written by `set`, `add` and
//! `cas` carry one. The stored bytes are a 14-byte header and then the
//! caller's bytes:
//!
//! ```text
//! 00 73 74 6d 70 01   8 random bytes   payload…
//! "\0stmp\x01"        (the nonce)
//! ```
//!
//! Each write draws a fresh nonce, so writing the very same bytes again
//! still changes the key's [`CasToken`](crate::CasToken), and `cas` detects it (no ABA) with
//! no extra read or key. `get` and `gets` strip the header.
//!
//! - A value **without** the marker, written by another Redis client with a
//!   plain `SET`, is returned as it is; its token is the whole value. `cas`
//!   with such a token succeeds only while the bytes are unchanged (another
//!   client writing the same bytes again cannot be told apart).
//! - Any plain `SET` over one of our values is always a `cas` conflict: the
//!   marker and nonce are gone.
//! - Other clients reading a key stampede wrote see the 14-byte header in
//!   front of the value; they must skip it (or write and read through
//!   stampede only).
//! - Lock records (`<key>-lock`) hold the bare owner token, no envelope.
//!
//! # Cross-process wake-ups
//!
//! A release publishes on the lock key's release channel, inside the same
//! script that deletes the record. Each backend keeps one pub/sub connection
//! (opened on the first wait) and subscribes the channels of the lock keys
//! this process waits on, so a waiter in another process wakes as soon as
//! the release lands instead of sitting out the lease. If that connection
//! drops, it is re-established with backoff, every channel subscribed again,
//! and waiters whose record vanished meanwhile are woken; until then they
//! fall back to the lease bound.
//!
//! # Redis Cluster and Sentinel
//!
//! On a **cluster** (feature `redis-cluster`) commands go through
//! redis-rs's cluster client, which sends each one to the master of its
//! key's slot and follows the cluster through `MOVED` and failovers. Every
//! script keeps to one slot: each companion name hashes to its key's slot
//! (the reserved prefix comes before the `{`, where it does not count).
//! Releases are published with `SPUBLISH` on the key's channel, and the
//! pub/sub link `SSUBSCRIBE`s each watched channel on the node that owns
//! it (sharded pub/sub: Redis 7 or later, RESP3 on the link). If a node's
//! link drops or the topology changes, the subscriber dials again,
//! subscribes every channel where it now lives, and wakes the waiters of
//! records that went meanwhile.
//!
//! On **Sentinel** (feature `redis-sentinel`) each new connection, command
//! or pub/sub, asks the sentinels for the current master. After a failover
//! the first call on the old connection fails (the old master is gone, or
//! answers `READONLY`), and the next one reaches the new master.
//!
//! **Replication is asynchronous**, on both. A failover can lose the last
//! writes the old master acknowledged: a lock record just created, a value
//! just stored. A lost lock record lets a second holder in while the first
//! still works; the fencing token is what protects the resource then (it
//! rises across the failover, see above). Check it where the work lands.
//!
//! # Connections and timeouts
//!
//! Commands share one multiplexed connection taken from the pool: deadpool
//! `PING`s a connection every time it hands one out, which would make every
//! operation two round trips. When a call fails in a way that may have
//! broken the connection (I/O error, dropped connection, timeout), the
//! connection is dropped and the next call takes a fresh one from the pool,
//! so a restarted server is picked up by the same [`Cache`](crate::Cache), with nothing to
//! rebuild. Reads (`get`, `gets`, `lock_record`) and `extend` are sent again
//! at once on the fresh connection, since running them twice changes
//! nothing. Writes are not: whether a command on a lost connection ran
//! cannot be known, and running `add`, `cas` or `try_lock` twice, or even a
//! `set` (its nonce landing twice could revive an old CAS token), is not the
//! same as once. So the first write on a connection whose server went away
//! fails, and the next call reconnects.
//!
//! Every call is bounded by [`RedisOptions::timeout`] (2 s by default,
//! `?timeout_ms=` in URLs), connecting included: past it the call fails with
//! [`Error::BackendTimeout`](crate::Error::BackendTimeout); a refused or lost connection is
//! [`Error::Backend`](crate::Error::Backend). Nothing waits forever on a dead or hung server.
//!
//! # A request that times out
//!
//! A timed-out call stops waiting, but its request may already be on the
//! wire, and a frozen server runs it when it resumes; the connection is
//! dropped, and the next call takes a fresh one. What happens to the
//! request then:
//!
//! - **Creates are taken back.** A lock create (`try_lock`, `lock`,
//!   `acquire`) or a fill lease read that timed out, or whose future was
//!   dropped, after it was sent is followed on the same connection by its
//!   owner-checked release. Redis runs one connection's commands in order,
//!   so whenever the create runs, the release runs right after it: no
//!   record is left held by nobody, and the next caller gets the lock at
//!   once instead of after the lease. (A fenced create still uses up a
//!   token.) If the connection *broke* instead (reset, I/O error), the
//!   create either ran before the break or never will: a lock's record is
//!   then released by its guard's background release, a fill lease runs
//!   out with its lease.
//! - **Other writes may land late.** A `set`, `add`, `cas`, `delete`,
//!   `mark_stale`, fill store, `extend` or release that timed out may still
//!   be applied when the server resumes; the caller was told it failed
//!   ([`is_timeout`](crate::Error::is_timeout)) and cannot know. Releases
//!   and extends are owner-checked, and fill stores lease-checked, so a
//!   late one never touches someone else's record or value.

use std::sync::Arc;
use std::time::Duration;

use crate::url::CacheUrl;
use crate::Result;

mod backend;
mod batch;
mod changes;
mod clear;
mod commands;
mod config;
mod conn;
#[cfg(any(feature = "redis-cluster", feature = "redis-sentinel"))]
mod deploy;
mod envelope;
mod naming;
mod scripts;
mod subscriber;
mod topology;
mod undo;
mod url;

pub use config::{RedisOptions, RedisSource, DEFAULT_TIMEOUT};
pub use deadpool_redis;
pub use naming::{fence_key, fill_lease_key, release_channel};
pub use redis;
pub use topology::RedisPool;

use conn::Connections;
use subscriber::Subscriber;

/// The largest value this backend stores: Redis's 512 MiB limit, less the
/// 14-byte envelope. Larger values fail with
/// [`Error::ValueTooLarge`](crate::Error::ValueTooLarge) before anything is
/// sent.
///
/// ```
/// assert_eq!(stampede::backend::redis::MAX_VALUE_SIZE, 512 * 1024 * 1024 - 14);
/// ```
pub const MAX_VALUE_SIZE: usize = 512 * 1024 * 1024 - envelope::HEADER_LEN;

/// The Redis backend. Most code builds it through
/// [`Cache::from_url`](crate::Cache::from_url) or
/// [`Cache::redis`](crate::Cache::redis); see the [module docs](self) for
/// how it stores values and locks.
///
/// Building one does not connect: the first operation does.
///
/// # Cancel safety
///
/// Every operation may be dropped at any point without harm to the backend:
/// a dropped read gives up its answer, a dropped write may or may not have
/// been applied, a dropped lock create or fill lease read is taken back
/// (see [A request that times out](self#a-request-that-times-out)), and a
/// dropped [`watch_releases`](crate::backend::Backend::watch_releases)
/// leaves no subscription behind.
///
/// ```
/// use stampede::backend::redis::{deadpool_redis, RedisBackend, RedisOptions};
/// use stampede::Cache;
///
/// let config = deadpool_redis::Config::from_url("redis://127.0.0.1:6379/0");
/// let backend = RedisBackend::new(config, RedisOptions::default())?;
/// let cache = Cache::from(backend);
/// assert_eq!(cache.backend_kind(), "redis");
/// # Ok::<(), stampede::Error>(())
/// ```
pub struct RedisBackend {
    conns: Arc<Connections>,
    subscriber: Subscriber,
    /// Announcing writes to near caches, once one is attached.
    changes: changes::Changes,
}

impl RedisBackend {
    /// A backend on `source` (a pool config, or a pool and a client).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an unusable address or pool
    /// configuration, [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a zero timeout.
    pub fn new(source: impl Into<RedisSource>, options: RedisOptions) -> Result<Self> {
        let resolved = source.into().resolve(&options)?;
        let conns = Arc::new(Connections::new(resolved.pool, options.timeout));
        let subscriber = Subscriber::new(resolved.dialer, Arc::clone(&conns));
        Ok(RedisBackend {
            conns,
            subscriber,
            changes: changes::Changes::default(),
        })
    }

    /// The backend for a Redis URL (`redis://`, `rediss://`,
    /// `redis+cluster://`, `redis+sentinel://`, …); see
    /// [`Cache::from_url`](crate::Cache::from_url).
    pub(crate) fn from_url(url: &mut CacheUrl<'_>) -> Result<Self> {
        let (source, options) = url::from_url(url)?;
        RedisBackend::new(source, options)
    }

    /// The pool commands are sent through: a standalone, cluster or
    /// Sentinel pool. The backend keeps one connection out of it and takes
    /// another only when that one breaks, so the pool's status shows the
    /// application's own use.
    ///
    /// ```
    /// use stampede::backend::redis::{deadpool_redis, RedisBackend, RedisOptions, RedisPool};
    ///
    /// let config = deadpool_redis::Config::from_url("redis://127.0.0.1:6379");
    /// let backend = RedisBackend::new(config, RedisOptions::default())?;
    /// assert!(matches!(backend.pool(), RedisPool::Standalone(_)));
    /// assert_eq!(backend.pool().status().size, 0); // nothing connected yet
    /// # Ok::<(), stampede::Error>(())
    /// ```
    pub fn pool(&self) -> &RedisPool {
        self.conns.pool()
    }

    /// Whether this backend talks to a Redis Cluster.
    ///
    /// ```
    /// use stampede::backend::redis::{deadpool_redis, RedisBackend, RedisOptions};
    ///
    /// let config = deadpool_redis::Config::from_url("redis://127.0.0.1:6379");
    /// let backend = RedisBackend::new(config, RedisOptions::default())?;
    /// assert!(!backend.is_cluster());
    /// # Ok::<(), stampede::Error>(())
    /// ```
    pub fn is_cluster(&self) -> bool {
        self.conns.pool().is_cluster()
    }

    /// The timeout every call is bounded by.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stampede::backend::redis::{deadpool_redis, RedisBackend, RedisOptions};
    ///
    /// let config = deadpool_redis::Config::from_url("redis://127.0.0.1:6379");
    /// let options = RedisOptions::default().timeout(Duration::from_millis(300));
    /// let backend = RedisBackend::new(config, options)?;
    /// assert_eq!(backend.timeout(), Duration::from_millis(300));
    /// # Ok::<(), stampede::Error>(())
    /// ```
    pub fn timeout(&self) -> Duration {
        self.conns.timeout()
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("connections", &self.conns)
            .field("subscriber", &self.subscriber)
            .finish()
    }
}
