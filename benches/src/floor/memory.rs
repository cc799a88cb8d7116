//! The memory backend's floors: the same work as stampede's, by hand, in
//! the same kind of map.

use std::sync::Arc;

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use moka::future::Cache as MokaCache;
use moka::ops::compute::{CompResult, Op};
use serde::de::DeserializeOwned;

use super::owner_token;

/// A lock record by hand: a fresh token inserted if the key is free, then
/// removed if it is still that token, in a `DashMap` hashed by foldhash,
/// as stampede keeps lock records. No deadline, no registry, no wake-ups:
/// what a lock costs at the least in this map.
#[derive(Clone, Default)]
pub struct MemoryLockFloor {
    map: Arc<DashMap<Box<str>, [u8; 36], foldhash::fast::RandomState>>,
}

impl std::fmt::Debug for MemoryLockFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLockFloor").finish_non_exhaustive()
    }
}

impl MemoryLockFloor {
    /// Insert-if-absent of a fresh owner, then remove-if-owner. Panics
    /// unless the lock was free and the remove took it.
    pub fn acquire_release(&self, key: &str) {
        let owner = owner_token();
        match self.map.entry(Box::from(key)) {
            Entry::Vacant(free) => {
                free.insert(owner);
            }
            Entry::Occupied(_) => panic!("the lock was free"),
        }
        let removed = self.map.remove_if(key, |_, held| *held == owner);
        assert!(removed.is_some(), "the remove took it");
    }
}

/// A `get_or_fill` hit by hand: a moka `get` of the bytes stampede stored,
/// then the codec's decode of the value in them (past the frame stampede
/// puts in front, which carries the value's freshness).
#[derive(Clone)]
pub struct MemoryHitFloor {
    values: MokaCache<String, Bytes, foldhash::fast::RandomState>,
    /// Where the encoded value starts in the stored bytes.
    frame: usize,
}

impl std::fmt::Debug for MemoryHitFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHitFloor").finish_non_exhaustive()
    }
}

impl MemoryHitFloor {
    /// A moka table holding `stored` (the bytes of a `get_or_fill` value,
    /// as `Cache::get` returns them) at each of `keys`; `value_len` is the
    /// length of the value's own JSON, so the frame is what comes before.
    pub async fn new(keys: &[String], stored: Bytes, value_len: usize) -> MemoryHitFloor {
        let values = MokaCache::builder()
            .max_capacity(128 * 1024 * 1024)
            .build_with_hasher(foldhash::fast::RandomState::default());
        for key in keys {
            values.insert(key.clone(), stored.clone()).await;
        }
        let frame = stored.len().checked_sub(value_len).expect("a framed value");
        MemoryHitFloor { values, frame }
    }

    /// The value at `key`, decoded. Panics on a miss.
    pub async fn hit<T: DeserializeOwned>(&self, key: &str) -> T {
        let bytes = self.values.get(key).await.expect("a hit");
        serde_json::from_slice(&bytes[self.frame..]).expect("decode")
    }
}

/// Hand-written moka operations: what the memory backend does underneath
/// for values.
#[derive(Clone)]
pub struct MemoryFloor {
    values: MokaCache<String, FloorEntry, foldhash::fast::RandomState>,
}

#[derive(Clone)]
struct FloorEntry {
    /// Stored as stampede stores it; never read back here.
    #[allow(dead_code)]
    value: Bytes,
    version: u64,
}

impl std::fmt::Debug for MemoryFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryFloor").finish_non_exhaustive()
    }
}

impl Default for MemoryFloor {
    fn default() -> Self {
        MemoryFloor::new()
    }
}

impl MemoryFloor {
    /// A moka table of values, hashed as stampede's is.
    pub fn new() -> MemoryFloor {
        MemoryFloor {
            values: MokaCache::builder()
                .max_capacity(128 * 1024 * 1024)
                .build_with_hasher(foldhash::fast::RandomState::default()),
        }
    }

    /// `get`, then put-if-same-version with the next version. Returns
    /// whether it stored.
    pub async fn gets_cas(&self, key: &str, value: &[u8]) -> bool {
        let seen = self.values.get(key).await.map(|entry| entry.version);
        let result = self
            .values
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let now = current.as_ref().map(|entry| entry.value().version);
                std::future::ready(if now == seen {
                    Op::Put(FloorEntry {
                        value: Bytes::copy_from_slice(value),
                        version: seen.map_or(1, |v| v + 1),
                    })
                } else {
                    Op::Nop
                })
            })
            .await;
        matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        )
    }
}
