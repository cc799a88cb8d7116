//! The batch floors: many keys read in one request per server, by hand,
//! for the `get_many` rows of the comparison.
//!
//! | floor | writes (untimed) | the timed batch read |
//! |---|---|---|
//! | [`RedisFloor`] | `SET` of an enveloped value | one `MGET` of every key |
//! | [`ClusterFloor`](super::ClusterFloor) | the same | one `MGET`, which redis-rs splits by slot and sends to the masters at once |
//! | [`MemcachedFloor`] | `ms` of the bare value | one pipelined batch of `mg <k> v c t` through `run_many` |
//! | [`MemoryBatchFloor`] | moka `insert` | moka `get` of each key, in a loop |
//!
//! Each reads values of the size stampede stores for the same payload: on
//! Redis the 14-byte envelope plus the payload, on memcached and memory the
//! payload alone.

use bytes::Bytes;
use memcache::exp::{Get, GetStatus, Meta, Set};
use moka::future::Cache as MokaCache;
use redis::aio::ConnectionLike;

use super::{MemcachedFloor, RedisFloor};

impl<C: ConnectionLike + Clone + Send + Sync> RedisFloor<C> {
    /// `MGET` of `keys`; returns how many were present. On a cluster
    /// connection redis-rs splits the command by slot, sends the parts to
    /// their masters at once and puts the replies back in key order.
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub async fn mget(&self, keys: &[String]) -> usize {
        let mut conn = self.conn.clone();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .expect("MGET");
        values.iter().filter(|value| value.is_some()).count()
    }
}

impl MemcachedFloor {
    /// `ms key <value>`: the payload bare, as stampede's memcached backend
    /// stores it. Panics unless it was stored.
    pub async fn set(&self, key: &str, value: &[u8]) {
        let stored = self.client.run(Set::new(key, value)).await.expect("ms");
        assert_eq!(stored.status, memcache::exp::MutationStatus::Applied);
    }

    /// One pipelined batch of `mg <k> v c t` (value, CAS and TTL: what
    /// stampede's memcached reads ask for), through the client's
    /// `run_many`, which sends one batch per server; returns how many hit.
    ///
    /// # Panics
    ///
    /// When the batch or any read in it fails.
    pub async fn get_many(&self, keys: &[String]) -> usize {
        let reads = keys
            .iter()
            .map(|key| Get::new(key).meta(Meta::NONE.cas().ttl()));
        let results = self.client.run_many(reads).await.expect("mg batch");
        results
            .into_iter()
            .map(|result| result.expect("mg"))
            .filter(|result| result.status == GetStatus::Hit && result.value.is_some())
            .count()
    }
}

/// A moka table of the memory backend's shape: bounded by the bytes of
/// key and value plus 64 per entry, 128 MiB, with an expiry policy (values
/// stored without a TTL never expire). What a hand-written in-process
/// cache reads with.
#[derive(Clone)]
pub struct MemoryBatchFloor {
    values: MokaCache<String, Bytes>,
}

impl std::fmt::Debug for MemoryBatchFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBatchFloor").finish_non_exhaustive()
    }
}

/// Values without a TTL: moka keeps them until evicted.
struct NoTtl;

impl moka::Expiry<String, Bytes> for NoTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        _value: &Bytes,
        _created_at: std::time::Instant,
    ) -> Option<std::time::Duration> {
        None
    }
}

impl Default for MemoryBatchFloor {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBatchFloor {
    /// An empty table.
    pub fn new() -> MemoryBatchFloor {
        let values = MokaCache::builder()
            .max_capacity(stampede::backend::memory::DEFAULT_MAX_CAPACITY)
            .weigher(|key: &String, value: &Bytes| {
                u32::try_from(key.len() + value.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(NoTtl)
            .build();
        MemoryBatchFloor { values }
    }

    /// Stores `value` at `key`.
    pub async fn set(&self, key: &str, value: &[u8]) {
        self.values
            .insert(key.to_owned(), Bytes::copy_from_slice(value))
            .await;
    }

    /// Reads every key with moka's `get`, one after another, into a vector
    /// in key order, as a batch read would return them; returns how many
    /// were present.
    pub async fn get_many(&self, keys: &[String]) -> usize {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.values.get(key).await);
        }
        values.iter().filter(|value| value.is_some()).count()
    }
}
