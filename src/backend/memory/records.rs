//! Where lock records are kept safe from size eviction: a table of their
//! own with no size bound, from which moka reclaims a record only once its
//! lease is over.
//!
//! This is the seam for moving lock records to a faster concurrent map
//! (issue #15). The [key space](super::keyspace) asks it for three things
//! only, `get`, `put` and `remove` by key, and always under that key's
//! lock, so the map needs no atomic operation of its own. A replacement
//! must keep the two promises this one keeps: nothing is ever evicted to
//! make room, and records whose lease has ended are reclaimed eventually
//! (until then they are ignored on access, like every expired entry).

use moka::future::Cache as MokaCache;

use super::entry::{Entry, ReclaimAtExpiry, Table};

/// The keys in `table` that start with `prefix`.
pub(super) fn keys_with_prefix(table: &Table, prefix: &str) -> Vec<String> {
    table
        .iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .map(|(key, _)| String::clone(&key))
        .collect()
}

/// Lock records by key. See the module docs.
pub(super) struct Records {
    table: Table,
}

impl Records {
    /// An empty table: unbounded, reclaiming records when their lease ends.
    pub(super) fn new() -> Records {
        Records {
            table: MokaCache::builder().expire_after(ReclaimAtExpiry).build(),
        }
    }

    /// The record at `key`, live or not.
    pub(super) async fn get(&self, key: &str) -> Option<Entry> {
        self.table.get(key).await
    }

    /// Keeps `record` at `key`, replacing any record there.
    pub(super) async fn put(&self, key: &str, record: Entry) {
        self.table.insert(key.to_owned(), record).await;
    }

    /// Drops the record at `key`, if any.
    pub(super) async fn remove(&self, key: &str) {
        self.table.invalidate(key).await;
    }

    /// The keys of every record kept (live or not) that start with `prefix`.
    pub(super) fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        keys_with_prefix(&self.table, prefix)
    }

    /// About how many records are kept (moka counts lazily).
    pub(super) fn len(&self) -> u64 {
        self.table.entry_count()
    }

    /// Applies moka's pending bookkeeping, so that `len` is exact.
    #[cfg(test)]
    pub(super) async fn settle(&self) {
        self.table.run_pending_tasks().await;
    }
}
