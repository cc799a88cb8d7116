//! The locks a [`Cache`](crate::Cache) holds right now, so that
//! [`Cache::release_all`](crate::Cache::release_all) can drop them all at
//! shutdown, as Synapse's lock store does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::OwnerToken;

/// Held lock records by registration id.
#[derive(Debug, Default)]
pub(crate) struct HeldLocks {
    last_id: AtomicU64,
    held: Mutex<HashMap<u64, (Arc<str>, OwnerToken)>>,
}

impl HeldLocks {
    fn held(&self) -> MutexGuard<'_, HashMap<u64, (Arc<str>, OwnerToken)>> {
        // Every statement leaves the map consistent; a poisoned lock is fine.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that we hold `key` as `owner`; returns the id to forget it by.
    pub(crate) fn insert(&self, key: Arc<str>, owner: OwnerToken) -> u64 {
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.held().insert(id, (key, owner));
        id
    }

    pub(crate) fn remove(&self, id: u64) {
        self.held().remove(&id);
    }

    /// Takes every record out of the registry.
    pub(crate) fn drain(&self) -> Vec<(Arc<str>, OwnerToken)> {
        self.held().drain().map(|(_, held)| held).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.held().len()
    }
}
