//! The [`Backend`] primitives on memcached's meta protocol (the table is
//! in the [module docs](super)).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use memcache::exp::{Meta, MutationStatus, Set};
use tokio::sync::Notify;

use super::client::{self, unexpected};
use super::{keys, ttl, watch, MemcachedBackend, KIND};
use crate::backend::{
    Backend, CasToken, Coherence, Fencing, FillRead, FilledValue, LeaseToken, LockAttempt,
    LockRecord, ReleaseWatch, Revalidated, Versioned,
};
use crate::{Error, Result};

impl Backend for MemcachedBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let key = keys::wire_key(key)?;
        self.bounded("get", async {
            let item = self.plain_read("get", &key).await?;
            Ok(item.map(|item| item.value))
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let wire = keys::wire_key(key)?;
        let set = self.store_op(key, &wire, value, ttl)?;
        self.bounded("set", async {
            match self.client.store("set", set).await? {
                MutationStatus::Applied => Ok(()),
                other => Err(unexpected("set", other)),
            }
        })
        .await
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let wire = keys::wire_key(key)?;
        let set = self.store_op(key, &wire, value, ttl)?;
        self.bounded("add", self.create("add", &wire, set)).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed = self.removals("delete", &[key]).await?;
        Ok(removed.first() == Some(&true))
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        let key = keys::wire_key(key)?;
        self.bounded("gets", async {
            let Some(item) = self.plain_read("gets", &key).await? else {
                return Ok(None);
            };
            let cas = item
                .cas
                .ok_or_else(|| Error::backend(KIND, "gets", "memcached sent no CAS unique"))?;
            Ok(Some((item.value, CasToken::from_version(cas))))
        })
        .await
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let wire = keys::wire_key(key)?;
        let set = self.store_op(key, &wire, value, ttl)?;
        let Some(token) = expected else {
            return self.bounded("cas", self.create("cas", &wire, set)).await;
        };
        // A token from another backend (a value token) can never match.
        let Some(version) = token.version() else {
            return Ok(false);
        };
        self.bounded("cas", async {
            match self.client.store("cas", set.compare_cas(version)).await? {
                MutationStatus::Applied => Ok(true),
                MutationStatus::CasMismatch | MutationStatus::NotFound => Ok(false),
                other => Err(unexpected("cas", other)),
            }
        })
        .await
    }

    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        self.lock(key, owner, lease, fencing).await
    }

    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        let key = keys::wire_key(key)?;
        self.bounded("lock_record", async {
            let item = self
                .client
                .read("lock_record", &key, Meta::NONE.ttl())
                .await?;
            Ok(item.map(|item| LockRecord {
                owner: item.value,
                remaining: item.ttl,
            }))
        })
        .await
    }

    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        let key = keys::wire_key(key)?;
        self.bounded("release", self.release_record("release", &key, owner))
            .await
    }

    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        self.extend_record(key, owner, lease).await
    }

    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        let key = keys::wire_key(key)?.into_owned();
        Ok(watch::poll(
            self.client.clone(),
            key,
            wake,
            self.polls,
            watch::Until::Released,
        ))
    }

    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        self.fill_read(key, lease).await
    }

    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.fill_store(key, lease, value, ttl).await
    }

    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        self.fill_release(key, lease).await
    }

    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        self.stale_mark(key, grace).await
    }

    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        let key = keys::wire_key(key)?.into_owned();
        Ok(watch::poll(
            self.client.clone(),
            key,
            wake,
            self.polls,
            watch::Until::Filled,
        ))
    }

    fn lease_life(&self, lease: Duration) -> Duration {
        Duration::from_secs(u64::from(ttl::lease_secs(lease)))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.many_get(keys).await
    }

    async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        self.many_set(entries, ttl).await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        let removed = self.removals("delete_many", keys).await?;
        Ok(removed.into_iter().filter(|&removed| removed).count())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.key_exists(key).await
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.touch_key(key, ttl).await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.increment_by(key, delta).await
    }

    /// memcached cannot list its keys: a namespace is cleared by moving
    /// it to a new generation, above this trait.
    fn clears_by_prefix(&self) -> bool {
        false
    }

    /// `flush_all` on every server for an empty prefix;
    /// [`Error::Unsupported`] for any other.
    async fn clear(&self, prefix: &str) -> Result<()> {
        self.flush(prefix).await
    }

    async fn read_for_fill_many(&self, keys: &[&str], lease: Duration) -> Result<Vec<FillRead>> {
        self.many_fill_reads(keys, lease).await
    }

    async fn store_filled_many(&self, entries: &[FilledValue<'_>]) -> Result<Vec<bool>> {
        self.many_fill_stores(entries).await
    }

    // The near cache's methods, by revalidation (`near.rs`).

    fn coherence(&self) -> Coherence {
        Coherence::Revalidate
    }

    async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        MemcachedBackend::read_versioned(self, key).await
    }

    async fn read_for_fill_near(
        &self,
        key: &str,
        lease: Duration,
    ) -> Result<(FillRead, Option<Option<Duration>>)> {
        self.fill_read_near(key, lease).await
    }

    async fn set_versioned(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<CasToken>> {
        MemcachedBackend::set_versioned(self, key, value, ttl).await
    }

    async fn store_filled_versioned(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<Option<CasToken>>> {
        self.fill_store_versioned(key, lease, value, ttl).await
    }

    async fn revalidate(&self, key: &str, version: &CasToken) -> Result<Revalidated> {
        MemcachedBackend::revalidate(self, key, version).await
    }
}

/// What the primitives share: the call bound, checked stores, and plain reads.
impl MemcachedBackend {
    /// Runs `call` under the configured timeout.
    pub(super) async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(self.client.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(Error::BackendTimeout {
                    backend: KIND,
                    operation,
                    after: self.client.timeout,
                })
            })
    }

    /// Refuses a value over the configured size before it is sent.
    pub(super) fn check_size(&self, key: &str, value: &[u8]) -> Result<()> {
        if value.len() > self.max_value_size {
            return Err(Error::ValueTooLarge {
                key: key.to_owned(),
                size: value.len(),
                limit: Some(self.max_value_size),
                backend: KIND,
            });
        }
        Ok(())
    }

    /// A store of `value` at `key` with `ttl`, checked and ready to send.
    pub(super) fn store_op(
        &self,
        key: &str,
        wire_key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Set> {
        self.check_size(key, value)?;
        let set = Set::new(wire_key, value);
        Ok(match ttl {
            Some(ttl) => set.ttl(ttl::exptime(ttl, "ttl")?),
            None => set,
        })
    }

    /// `ms … ME`: `Ok(false)` when the key holds a value. A fill's empty
    /// placeholder is not a value: it is replaced, which voids the fill
    /// (see [`replace_placeholder`](Self::replace_placeholder)).
    pub(super) async fn create(
        &self,
        operation: &'static str,
        wire: &str,
        set: Set,
    ) -> Result<bool> {
        // Kept for the rare placeholder case; a `Set` clone copies the value.
        let fallback = set.clone();
        match self.client.store(operation, set.add()).await? {
            MutationStatus::Applied => Ok(true),
            MutationStatus::AlreadyExists => {
                self.replace_placeholder(operation, wire, fallback).await
            }
            other => Err(unexpected(operation, other)),
        }
    }

    /// A plain read (`mg <k> v c t`); hands back a stale item's refresh
    /// token if the read won it by accident.
    pub(super) async fn plain_read(
        &self,
        operation: &'static str,
        wire: &str,
    ) -> Result<Option<client::Item>> {
        let item = self
            .client
            .read(operation, wire, Meta::NONE.cas().ttl())
            .await?;
        if let Some(item) = &item {
            if item.stale && item.won {
                self.give_back_win(wire, item.cas, item.ttl).await;
            }
        }
        Ok(item)
    }
}
