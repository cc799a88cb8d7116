//! The floors: the same backend work as stampede's, done by hand with the
//! same client crates and nothing around it. What stampede adds on top of
//! a floor (key building, owner registry, wake-up map, timeouts, error
//! mapping) is its overhead.
//!
//! | floor | acquire + release | gets + cas |
//! |---|---|---|
//! | [`RedisFloor`] | `SET k owner NX PX`, `EVALSHA release.lua` | `GET`, `EVALSHA cas.lua` |
//! | [`RedisFloor`] fenced | `EVALSHA lock_fenced.lua`, `EVALSHA release.lua` | |
//! | [`ClusterFloor`] | the same, routed by slot | the same, routed by slot |
//! | [`MemcachedFloor`] | `ms k ME T`, `mg k v c`, `md k C<cas>` | `mg k v c`, `ms k C<cas>` |
//! | [`MemoryLockFloor`] | `DashMap` insert-if-absent of a fresh token, then compare-remove | |
//! | [`MemoryFloor`] | | moka `get`, then `and_compute_with` compare-put |
//! | [`MemoryHitFloor`] | a `get_or_fill` hit: moka `get`, then the codec's decode of the same bytes | |
//!
//! Batch reads (`MGET`, a pipelined `mg` batch, moka `get`s in a loop, and
//! [`MemoryBatchFloor`]) are in the `batch` submodule.
//!
//! The Redis floors use stampede's own Lua scripts (the files in
//! `src/backend/redis/`) with the same arguments: on one server over one
//! multiplexed connection taken from a deadpool pool, on a cluster over
//! redis-rs's `ClusterConnection` (one multiplexed link per node, each
//! command sent to its slot's master), as stampede does. Owner tokens are
//! 36 bytes, like stampede's uuids, but come from a counter, which costs
//! less.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use memcache::exp::{AsyncMetaClient, Delete, Get, GetStatus, Meta, MutationStatus, Set, Ttl};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::Script;

mod batch;
mod memory;

pub use self::batch::MemoryBatchFloor;
pub use self::memory::{MemoryFloor, MemoryHitFloor, MemoryLockFloor};

static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../src/backend/redis/release.lua")));
static LOCK_FENCED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../src/backend/redis/lock_fenced.lua")));
static CAS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../src/backend/redis/cas.lua")));

/// A fresh 36-byte owner token from a process-wide counter: the process
/// id and the count in hex, written without allocating.
pub fn owner_token() -> [u8; 36] {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut token = [b'0'; 36];
    let pid = u64::from(std::process::id());
    for (i, digit) in token[4..20].iter_mut().enumerate() {
        *digit = HEX[((pid >> (60 - 4 * i)) & 0xf) as usize];
    }
    for (i, digit) in token[20..36].iter_mut().enumerate() {
        *digit = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    token
}

/// Hand-written Redis operations over one connection `C`: by default one
/// multiplexed connection taken from a deadpool pool (one server); see
/// [`ClusterFloor`] for a cluster.
#[derive(Clone)]
pub struct RedisFloor<C = MultiplexedConnection> {
    conn: C,
    /// The publish command `release.lua` runs (its last argument):
    /// `PUBLISH`, or `SPUBLISH` on a cluster, as stampede sends.
    publish: &'static str,
}

/// The Redis floor on a cluster: redis-rs's cluster connection, releases
/// published with `SPUBLISH`.
pub type ClusterFloor = RedisFloor<ClusterConnection>;

impl<C> std::fmt::Debug for RedisFloor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFloor")
            .field("publish", &self.publish)
            .finish_non_exhaustive()
    }
}

impl RedisFloor {
    /// Takes one connection out of a new pool for `url`.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    pub async fn connect(url: &str) -> RedisFloor {
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .expect("a valid Redis URL");
        let conn = deadpool_redis::Connection::take(pool.get().await.expect("connect to Redis"));
        RedisFloor {
            conn,
            publish: "PUBLISH",
        }
    }
}

impl ClusterFloor {
    /// A cluster connection from `redis::cluster::ClusterClient` over the
    /// seed `nodes` (`redis://host:port` each; see
    /// [`cluster_nodes`](crate::servers::cluster_nodes)).
    ///
    /// # Panics
    ///
    /// When no seed node can be reached or the cluster's slots cannot be read.
    pub async fn connect_cluster(nodes: &[String]) -> ClusterFloor {
        let client = redis::cluster::ClusterClient::new(nodes.to_vec())
            .expect("valid Redis Cluster node URLs");
        let conn = client
            .get_async_connection()
            .await
            .expect("connect to the Redis Cluster");
        RedisFloor {
            conn,
            publish: "SPUBLISH",
        }
    }
}

impl<C: ConnectionLike + Clone + Send + Sync> RedisFloor<C> {
    /// `SET key owner NX PX lease`, then the owner-checked release script
    /// (which also publishes on `channel`). Panics unless both succeed.
    pub async fn acquire_release(&self, key: &str, channel: &[u8], lease: Duration) {
        let mut conn = self.conn.clone();
        let owner = owner_token();
        let set: redis::Value = redis::cmd("SET")
            .arg(key)
            .arg(&owner[..])
            .arg("NX")
            .arg("PX")
            .arg(lease.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .expect("SET NX PX");
        assert_eq!(set, redis::Value::Okay, "the lock was free");
        self.release(&mut conn, key, &owner, channel).await;
    }

    /// The fenced lock script (`SET NX PX`, `INCR` and `PEXPIRE` of `fence_key`), then
    /// the release script. Panics unless both succeed.
    pub async fn lock_release(&self, key: &str, fence_key: &[u8], channel: &[u8], lease: Duration) {
        let mut conn = self.conn.clone();
        let owner = owner_token();
        let (acquired, _fence): (u8, i64) = LOCK_FENCED
            .key(key)
            .key(fence_key)
            .arg(&owner[..])
            .arg(lease.as_millis() as u64)
            .arg(lease.as_millis() as u64 + 3_600_000)
            .invoke_async(&mut conn)
            .await
            .expect("lock script");
        assert_eq!(acquired, 1, "the lock was free");
        self.release(&mut conn, key, &owner, channel).await;
    }

    /// The release script for `owner`'s record at `key`, announcing on
    /// `channel` with this floor's publish command. Panics unless it
    /// removed the record.
    async fn release(&self, conn: &mut C, key: &str, owner: &[u8], channel: &[u8]) {
        let removed: u8 = RELEASE
            .key(key)
            .arg(owner)
            .arg(channel)
            .arg(self.publish)
            .invoke_async(conn)
            .await
            .expect("release script");
        assert_eq!(removed, 1);
    }

    /// `GET key`, then the CAS script against the 14-byte header read,
    /// writing `payload` under a fresh header. Returns whether it stored.
    pub async fn gets_cas(&self, key: &str, payload: &[u8]) -> bool {
        let mut conn = self.conn.clone();
        let current: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("GET");
        let mut invocation = CAS.key(key);
        match &current {
            Some(current) => invocation
                .arg("prefix")
                .arg(&current[..14.min(current.len())]),
            None => invocation.arg("absent").arg(""),
        };
        let stored: u8 = invocation
            .arg(sealed(payload))
            .arg("")
            .invoke_async(&mut conn)
            .await
            .expect("cas script");
        stored == 1
    }

    /// Stores `payload` under a fresh header, as stampede's `set` does.
    pub async fn set(&self, key: &str, payload: &[u8]) {
        let mut conn = self.conn.clone();
        let () = redis::cmd("SET")
            .arg(key)
            .arg(sealed(payload))
            .query_async(&mut conn)
            .await
            .expect("SET");
    }
}

/// stampede's value envelope: a 6-byte marker, an 8-byte nonce, the payload.
fn sealed(payload: &[u8]) -> Vec<u8> {
    static NONCE: AtomicU64 = AtomicU64::new(1);
    let mut stored = Vec::with_capacity(14 + payload.len());
    stored.extend_from_slice(b"\0stmp\x01");
    stored.extend_from_slice(&NONCE.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    stored.extend_from_slice(payload);
    stored
}

/// Hand-written memcached meta commands through `memcache::exp`.
#[derive(Clone)]
pub struct MemcachedFloor {
    client: AsyncMetaClient,
}

impl std::fmt::Debug for MemcachedFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedFloor").finish_non_exhaustive()
    }
}

impl MemcachedFloor {
    /// A client for `host:port`, with the same timeouts stampede sets.
    ///
    /// # Panics
    ///
    /// When the address does not resolve.
    pub async fn connect(host_port: &str) -> MemcachedFloor {
        let client = AsyncMetaClient::builder()
            .io_timeout(Some(Duration::from_secs(2)))
            .connect_timeout(Some(Duration::from_secs(2)))
            .connect_multiple_async(vec![host_port.to_owned()])
            .await
            .expect("connect to memcached");
        MemcachedFloor { client }
    }

    /// `ms key ME T<secs> c` (the create returns the record's CAS unique),
    /// then `md key C<cas>`: what an owner-checked release costs when the
    /// CAS from the create is kept. Panics unless the lock was free and the
    /// release removed it.
    pub async fn acquire_release(&self, key: &str, lease_secs: u32) {
        let owner = owner_token();
        let created = self
            .client
            .run(
                Set::new(key, owner)
                    .add()
                    .ttl(Ttl::secs(lease_secs))
                    .return_cas(),
            )
            .await
            .expect("ms ME c");
        assert_eq!(created.status, MutationStatus::Applied, "the lock was free");
        let cas = created.cas.expect("memcached >= 1.6.13 returns the CAS");
        let removed = self
            .client
            .run(Delete::new(key).compare_cas(cas))
            .await
            .expect("md C");
        assert_eq!(removed.status, MutationStatus::Applied);
    }

    /// `mg key v c`, then `ms key C<cas>` (or `ms key ME` when absent).
    /// Returns whether it stored.
    pub async fn gets_cas(&self, key: &str, value: &[u8]) -> bool {
        let read = self
            .client
            .run(Get::new(key).meta(Meta::NONE.cas()))
            .await
            .expect("mg v c");
        let set = match read.item.cas.filter(|_| read.status == GetStatus::Hit) {
            Some(cas) => Set::new(key, value).compare_cas(cas),
            None => Set::new(key, value).add(),
        };
        let stored = self.client.run(set).await.expect("ms C");
        stored.status == MutationStatus::Applied
    }
}
