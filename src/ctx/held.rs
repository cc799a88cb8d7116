//! The locks a [`Cache`](crate::Cache) holds right now, so that
//! [`Cache::release_all`](crate::Cache::release_all) can drop them all at
//! shutdown, as Synapse's lock store does.
//!
//! Every acquire and release passes through here, so the registry is split
//! into shards by registration id: tasks taking different locks rarely
//! meet on one mutex.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A lock owner's identity: a fresh uuid v4 in its 36-byte text form, so a
/// record read with `redis-cli` or `cache.get("k-lock")` is legible.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnerToken([u8; 36]);

impl OwnerToken {
    pub(crate) fn new() -> Self {
        let mut text = [0u8; 36];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        OwnerToken(text)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for OwnerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.0).unwrap_or("<invalid>"))
    }
}

/// Shards of the registry; a power of two.
const SHARDS: usize = 16;

type Shard = HashMap<u64, (Arc<str>, OwnerToken), BuildHasherDefault<IdHasher>>;

/// Held lock records by registration id.
#[derive(Debug, Default)]
pub(crate) struct HeldLocks {
    last_id: AtomicU64,
    shards: [Mutex<Shard>; SHARDS],
}

impl HeldLocks {
    fn shard(&self, id: u64) -> MutexGuard<'_, Shard> {
        // Every statement leaves a shard consistent; a poisoned lock is fine.
        self.shards[id as usize % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that we hold `key` as `owner`; returns the id to forget it by.
    pub(crate) fn insert(&self, key: Arc<str>, owner: OwnerToken) -> u64 {
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.shard(id).insert(id, (key, owner));
        id
    }

    pub(crate) fn remove(&self, id: u64) {
        self.shard(id).remove(&id);
    }

    /// Takes every record out of the registry.
    pub(crate) fn drain(&self) -> Vec<(Arc<str>, OwnerToken)> {
        (0..SHARDS as u64)
            .flat_map(|shard| {
                self.shard(shard)
                    .drain()
                    .map(|(_, held)| held)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        (0..SHARDS as u64)
            .map(|shard| self.shard(shard).len())
            .sum()
    }
}

/// Hashes registration ids, which are unique counters we hand out (no
/// caller chooses them), by one multiplication that spreads their bits.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8 | u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_and_drained_across_shards() {
        let held = HeldLocks::default();
        let ids: Vec<u64> = (0..100)
            .map(|i| held.insert(Arc::from(format!("k{i}")), OwnerToken::new()))
            .collect();
        assert_eq!(held.len(), 100);
        for id in &ids[..50] {
            held.remove(*id);
        }
        assert_eq!(held.len(), 50);
        let mut drained: Vec<_> = held.drain().into_iter().map(|(key, _)| key).collect();
        drained.sort();
        let mut expected: Vec<Arc<str>> = (50..100).map(|i| Arc::from(format!("k{i}"))).collect();
        expected.sort();
        assert_eq!(drained, expected);
        assert_eq!(held.len(), 0);
    }
}
