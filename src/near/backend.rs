//! The near tier as a [`Backend`] that wraps a backend: once a tier is
//! attached, every call of the cache, the locks and the stampede guard goes
//! through it unchanged, and it keeps this process's copies on the way.
//!
//! - Reads (`get`, `get_many`, `exists`) answer from a copy that may be
//!   served; `get` reads through the tier (checking a copy past its trust
//!   window by version, keeping a copy of what it read).
//! - `set` and a fill's store (`store_filled`) write with the write's
//!   version where the store reports one: the copy becomes the write.
//! - Every other write (`add`, `delete`, `cas`, `mark_stale`, `touch`,
//!   `increment`, the batches, `store_filled_many`) drops the copy when it
//!   may have changed the key, and a refused `cas` drops it too (the store
//!   holds another write than the caller read); `clear` flushes the tier.
//! - The fill's reads: the peek (`peek_for_fill`) is a copy, checked by
//!   version where it is past its trust window, and never a backend read:
//!   without a copy it answers "not asked", so that one caller per process
//!   (the flight's leader) reads with the lease (`read_for_fill`), which
//!   keeps a copy of a fresh value. A copy due for a refresh thus reaches
//!   the guard as the peek's value, and one caller refreshes it, as on the
//!   store alone.
//! - Locks, lease records and wake-ups pass through untouched.
//!
//! The synchronous hit path (a copy that answers `get` or `get_or_fill`
//! without a future) is the context's: [`Ctx::copy`](crate::ctx::Ctx::copy).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::stats::Counters;
use super::tier::{Entry, Found};
use super::{Near, Written};
use tokio::sync::Notify;

use crate::backend::{
    Backend, CasToken, Coherence, Fencing, FillLease, FillRead, FilledValue, LeaseToken,
    LockAttempt, LockRecord, ReleaseWatch, Revalidated,
};
use crate::Result;

/// A backend with a near tier in front of it.
pub(crate) struct NearBackend<B> {
    inner: B,
    tier: Near,
}

impl<B: Backend> NearBackend<B> {
    /// `inner` behind `tier` (made for `inner` by [`Near::new`]).
    pub(crate) fn new(inner: B, tier: Near) -> NearBackend<B> {
        NearBackend { inner, tier }
    }

    /// After a write that `result` reports, when `changed` says the key
    /// may have changed: this process keeps no copy of it.
    fn forget_if<T>(&self, key: &str, result: &Result<T>, changed: impl Fn(&T) -> bool) {
        if result.as_ref().is_ok_and(changed) {
            self.tier.forget(key);
        }
    }

    /// A copy past its trust window, checked by its version: `Some` while
    /// it is still the stored write (kept with the TTL the store has now),
    /// else it goes. Of an older write, or of this process's own write
    /// whose version is not known, it would otherwise be checked again on
    /// every read while the key holds nothing to copy (a stale value, a
    /// delete).
    async fn checked(&self, key: &str, entry: Arc<Entry>) -> Result<Option<Arc<Entry>>> {
        if let Some(version) = &entry.version {
            let ticket = self.tier.ticket(key);
            Counters::bump(&self.tier.tier.counters.revalidations);
            if let Revalidated::Same(ttl) = self.inner.revalidate(key, version).await? {
                let value = entry.value.clone();
                self.tier
                    .tier
                    .offer(key, ticket, value, version.clone(), ttl);
                return Ok(Some(entry));
            }
        }
        self.tier.forget(key);
        Ok(None)
    }

    /// Reads `key` from the store and keeps a copy.
    async fn read(&self, key: &str) -> Result<Option<Bytes>> {
        self.inner.follow_changes();
        let ticket = self.tier.ticket(key);
        Counters::bump(&self.tier.tier.counters.backend_reads);
        let Some(read) = self.inner.read_versioned(key).await? else {
            return Ok(None);
        };
        Counters::bump(&self.tier.tier.counters.value_reads);
        if let Some(version) = read.version {
            self.tier
                .tier
                .offer(key, ticket, read.value.clone(), version, read.ttl);
        }
        Ok(Some(read.value))
    }
}

/// Reads from copies, writes that keep or drop them; the rest passed on.
impl<B: Backend> Backend for NearBackend<B> {
    // Passed through: identity, compare-and-set reads, locks, leases and
    // wake-ups. (`forward_backend!` cannot be used inside the crate that
    // defines it: a `macro_export` macro from a macro expansion.) The
    // coherence family takes the trait's defaults: no second tier in
    // front of this one, and the versioned writes go through this tier.

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        self.inner.gets(key).await
    }

    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        self.inner.try_lock(key, owner, lease, fencing).await
    }

    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        self.inner.lock_record(key).await
    }

    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        self.inner.release(key, owner).await
    }

    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        self.inner.extend(key, owner, lease).await
    }

    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        self.inner.watch_releases(key, wake).await
    }

    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        self.inner.release_fill(key, lease).await
    }

    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        self.inner.watch_fills(key, wake).await
    }

    fn lease_life(&self, lease: Duration) -> Duration {
        self.inner.lease_life(lease)
    }

    fn clears_by_prefix(&self) -> bool {
        self.inner.clears_by_prefix()
    }

    async fn read_for_fill_many(&self, keys: &[&str], lease: Duration) -> Result<Vec<FillRead>> {
        self.inner.read_for_fill_many(keys, lease).await
    }

    /// A copy that may be served, else read through the tier.
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let entry = match self.tier.tier.lookup(key) {
            Found::Serve(entry) => {
                Counters::bump(&self.tier.tier.counters.hits);
                return Ok(Some(entry.value.clone()));
            }
            Found::Check(entry) => Some(entry),
            Found::Miss => None,
        };
        Counters::bump(&self.tier.tier.counters.misses);
        if let Some(entry) = entry {
            if let Some(entry) = self.checked(key, entry).await? {
                return Ok(Some(entry.value.clone()));
            }
        }
        self.read(key).await
    }

    /// The store reports the write's version where it can, and this
    /// process's copy becomes the write.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let ticket = self.tier.ticket(key);
        let version = self.inner.set_versioned(key, value, ttl).await?;
        let written = Written {
            value: Bytes::copy_from_slice(value),
            ttl,
            version,
        };
        self.tier.wrote(key, ticket, Some(written));
        Ok(())
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let added = self.inner.add(key, value, ttl).await;
        self.forget_if(key, &added, |added| *added);
        added
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed = self.inner.delete(key).await;
        self.forget_if(key, &removed, |_| true);
        removed
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let stored = self.inner.cas(key, value, expected, ttl).await;
        // Refused too: the key is not the write the caller read, so this
        // process's copy may be older than what the store holds (memcached
        // announces nothing; on Redis the writer's announcement may still
        // be on its way). The store has just said so: the copy goes.
        self.forget_if(key, &stored, |_| true);
        stored
    }

    /// The fill's read, keeping a copy of a fresh value it finds.
    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        self.inner.follow_changes();
        let ticket = self.tier.ticket(key);
        Counters::bump(&self.tier.tier.counters.backend_reads);
        let (read, copy) = self.inner.read_for_fill_near(key, lease).await?;
        if read.value.is_some() {
            Counters::bump(&self.tier.tier.counters.value_reads);
        }
        if let (Some(ttl), Some((value, token))) = (copy, &read.value) {
            self.tier
                .tier
                .offer(key, ticket, value.clone(), token.clone(), ttl);
        }
        Ok(read)
    }

    /// A copy (its version is the store's compare-and-set token), checked
    /// first if past its trust window; without one, "not asked": the
    /// flight's leader reads with the lease, once per process.
    async fn peek_for_fill(&self, key: &str) -> Result<Option<FillRead>> {
        // A copy served here was counted as a hit by the guard's look
        // before its flight.
        let copy = match self.tier.tier.lookup(key) {
            Found::Serve(entry) => Some(entry),
            Found::Check(entry) => self.checked(key, entry).await?,
            Found::Miss => None,
        };
        let versioned = copy.and_then(|entry| Some((entry.value.clone(), entry.version.clone()?)));
        Ok(Some(match versioned {
            Some((value, version)) => FillRead::hit(value, version),
            None => FillRead::missing(FillLease::NotAsked),
        }))
    }

    /// The filler keeps a copy of what it stored, by its version.
    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let ticket = self.tier.ticket(key);
        let stored = self
            .inner
            .store_filled_versioned(key, lease, value, ttl)
            .await?;
        let kept = stored.is_some();
        let written = stored.map(|version| Written {
            value: Bytes::copy_from_slice(value),
            ttl,
            version,
        });
        self.tier.wrote(key, ticket, written);
        Ok(kept)
    }

    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        let marked = self.inner.mark_stale(key, grace).await;
        self.forget_if(key, &marked, |_| true);
        marked
    }

    /// Copies where they may be served, the rest in one batch from the
    /// store (of which no copies are kept: a batch read carries no
    /// versions).
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let mut values: Vec<Option<Bytes>> = keys.iter().map(|key| self.tier.hit(key)).collect();
        let missing: Vec<&str> = keys
            .iter()
            .zip(&values)
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| *key)
            .collect();
        if missing.is_empty() {
            return Ok(values);
        }
        let mut read = self.inner.get_many(&missing).await?.into_iter();
        for value in values.iter_mut().filter(|value| value.is_none()) {
            *value = read.next().flatten();
        }
        Ok(values)
    }

    async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        self.inner.set_many(entries, ttl).await?;
        for (key, _) in entries {
            self.tier.forget(key);
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        let removed = self.inner.delete_many(keys).await;
        for key in keys {
            self.tier.forget(key);
        }
        removed
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        if self.tier.hit(key).is_some() {
            return Ok(true);
        }
        self.inner.exists(key).await
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool> {
        let touched = self.inner.touch(key, ttl).await;
        // A copy may not outlive the value's new TTL.
        self.tier.forget(key);
        touched
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let counted = self.inner.increment(key, delta).await;
        self.tier.forget(key);
        counted
    }

    async fn clear(&self, prefix: &str) -> Result<()> {
        self.inner.clear(prefix).await?;
        self.tier.flush();
        Ok(())
    }

    /// The stored values' copies go (a batch store reports no versions).
    async fn store_filled_many(&self, entries: &[FilledValue<'_>]) -> Result<Vec<bool>> {
        let stored = self.inner.store_filled_many(entries).await;
        if let Ok(stored) = &stored {
            let kept = entries.iter().zip(stored).filter(|(_, stored)| **stored);
            for (entry, _) in kept {
                self.tier.forget(entry.key);
            }
        }
        stored
    }

    fn coherence(&self) -> Coherence {
        Coherence::Unsupported("this backend has a near cache in front of it already")
    }
}
