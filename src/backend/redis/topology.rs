//! Where commands go: one standalone server, a Redis Cluster, or the master
//! that Sentinel names. The rest of the backend sees one [`Conn`] (a
//! [`ConnectionLike`]) and never which of the three it is on.
//!
//! - **Standalone** and **Sentinel** hand out a multiplexed connection to
//!   one server; a Sentinel pool asks the sentinels for the current master
//!   each time it opens one, so a fresh connection after a failover reaches
//!   the new master.
//! - **Cluster** hands out redis-rs's cluster connection, which routes each
//!   command (and each script, by its first key) to the master of its slot,
//!   follows `MOVED`/`ASK`, and refreshes the slot map after a failover.

use deadpool_redis::PoolError;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};

/// The pool a [`RedisBackend`](super::RedisBackend) takes its command
/// connection from, by deployment.
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
#[derive(Clone)]
#[non_exhaustive]
pub enum RedisPool {
    /// One server (`redis://`, `rediss://`).
    Standalone(deadpool_redis::Pool),
    /// A Redis Cluster (`redis+cluster://`; feature `redis-cluster`).
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    Cluster(deadpool_redis::cluster::Pool),
    /// The master that Sentinel names (`redis+sentinel://`; feature
    /// `redis-sentinel`).
    #[cfg(feature = "redis-sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-sentinel")))]
    Sentinel(deadpool_redis::sentinel::Pool),
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            RedisPool::Standalone(_) => "Standalone",
            #[cfg(feature = "redis-cluster")]
            RedisPool::Cluster(_) => "Cluster",
            #[cfg(feature = "redis-sentinel")]
            RedisPool::Sentinel(_) => "Sentinel",
        };
        f.debug_tuple(kind).field(&self.status()).finish()
    }
}

impl RedisPool {
    /// The pool's status (size, idle connections, waiters), whichever kind
    /// it is.
    ///
    /// ```
    /// use stampede::backend::redis::{deadpool_redis, RedisBackend, RedisOptions};
    ///
    /// let config = deadpool_redis::Config::from_url("redis://127.0.0.1:6379");
    /// let backend = RedisBackend::new(config, RedisOptions::default())?;
    /// assert_eq!(backend.pool().status().available, 0);
    /// # Ok::<(), stampede::Error>(())
    /// ```
    pub fn status(&self) -> deadpool_redis::Status {
        match self {
            RedisPool::Standalone(pool) => pool.status(),
            #[cfg(feature = "redis-cluster")]
            RedisPool::Cluster(pool) => pool.status(),
            #[cfg(feature = "redis-sentinel")]
            RedisPool::Sentinel(pool) => pool.status(),
        }
    }

    /// A connection taken out of the pool for good (the backend keeps it
    /// and multiplexes every call on it).
    pub(super) async fn take(&self) -> Result<Conn, PoolError> {
        Ok(match self {
            RedisPool::Standalone(pool) => {
                Conn::Single(deadpool_redis::Connection::take(pool.get().await?))
            }
            #[cfg(feature = "redis-cluster")]
            RedisPool::Cluster(pool) => {
                Conn::Cluster(deadpool_redis::cluster::Connection::take(pool.get().await?))
            }
            #[cfg(feature = "redis-sentinel")]
            RedisPool::Sentinel(pool) => Conn::Single(deadpool_redis::sentinel::Connection::take(
                pool.get().await?,
            )),
        })
    }

    /// Whether commands go to a cluster, where a pipeline or a script must
    /// keep to one slot and pub/sub is sharded.
    pub(super) fn is_cluster(&self) -> bool {
        #[cfg(feature = "redis-cluster")]
        if let RedisPool::Cluster(_) = self {
            return true;
        }
        false
    }
}

/// A command connection: cheap to clone, every clone sends on the same
/// link(s), and one link runs its commands in the order they were sent.
#[derive(Clone)]
pub(super) enum Conn {
    /// A standalone server or the Sentinel master.
    Single(MultiplexedConnection),
    /// A cluster: one multiplexed link per node, behind redis-rs's router.
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Conn {
    /// Lets replies on this clone take up to `timeout` (a cluster
    /// connection keeps its own response timeout; the caller bounds the
    /// wait itself).
    pub(super) fn be_patient(&mut self, timeout: std::time::Duration) {
        match self {
            Conn::Single(conn) => conn.set_response_timeout(timeout),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(_) => {}
        }
    }

    /// Sends `cmd` to the master of `slot` on a cluster: for commands
    /// without a key, which redis-rs would send to any node (`SCAN`). On
    /// one server it goes to that server.
    pub(super) async fn query_on<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        slot: u16,
    ) -> RedisResult<T> {
        match self {
            Conn::Single(conn) => {
                let _ = slot;
                cmd.query_async(conn).await
            }
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(conn) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let master =
                    SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
                let reply = conn
                    .route_command(cmd.clone(), RoutingInfo::SingleNode(master))
                    .await?;
                Ok(redis::from_redis_value(reply)?)
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}
