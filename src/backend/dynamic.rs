//! Object-safe view of [`Backend`] for user-supplied backends.
//!
//! Kept apart from the enum dispatch in `any.rs` so that only one of the two
//! traits is in scope there (both would match `b.get(..)` on a built-in
//! backend).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::Notify;

use super::{
    Backend, CasToken, Fencing, FillRead, FilledValue, LeaseToken, LockAttempt, LockRecord,
    ReleaseWatch,
};
use crate::Result;

/// A user's backend behind a box.
pub(crate) type BoxedBackend = Box<dyn DynBackend>;

/// [`Backend`] with boxed futures, so a user's backend can sit behind a
/// `Box<dyn …>`. Blanket-implemented for every [`Backend`].
pub(crate) trait DynBackend: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>>;
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>>;
    fn add<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool>>;
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn gets<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<(Bytes, CasToken)>>>;
    fn cas<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        expected: Option<&'a CasToken>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool>>;
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a [u8],
        lease: Duration,
        fencing: Fencing,
    ) -> BoxFuture<'a, Result<LockAttempt>>;
    fn lock_record<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<LockRecord>>>;
    fn release<'a>(&'a self, key: &'a str, owner: &'a [u8]) -> BoxFuture<'a, Result<bool>>;
    fn extend<'a>(
        &'a self,
        key: &'a str,
        owner: &'a [u8],
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool>>;
    fn watch_releases<'a>(
        &'a self,
        key: &'a str,
        wake: Arc<Notify>,
    ) -> BoxFuture<'a, Result<ReleaseWatch>>;
    fn read_for_fill<'a>(
        &'a self,
        key: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<FillRead>>;
    fn peek_for_fill<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<FillRead>>>;
    fn store_filled<'a>(
        &'a self,
        key: &'a str,
        lease: &'a LeaseToken,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool>>;
    fn release_fill<'a>(
        &'a self,
        key: &'a str,
        lease: &'a LeaseToken,
    ) -> BoxFuture<'a, Result<bool>>;
    fn mark_stale<'a>(&'a self, key: &'a str, grace: Duration) -> BoxFuture<'a, Result<bool>>;
    fn watch_fills<'a>(
        &'a self,
        key: &'a str,
        wake: Arc<Notify>,
    ) -> BoxFuture<'a, Result<ReleaseWatch>>;
    fn lease_life(&self, lease: Duration) -> Duration;
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Bytes>>>>;
    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>>;
    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<usize>>;
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn touch<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>>;
    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64>>;
    fn clears_by_prefix(&self) -> bool;
    fn clear<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<()>>;
    fn read_for_fill_many<'a>(
        &'a self,
        keys: &'a [&'a str],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<FillRead>>>;
    fn store_filled_many<'a>(
        &'a self,
        entries: &'a [FilledValue<'a>],
    ) -> BoxFuture<'a, Result<Vec<bool>>>;
}

impl<B: Backend> DynBackend for B {
    fn kind(&self) -> &'static str {
        Backend::kind(self)
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Box::pin(Backend::get(self, key))
    }
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Backend::set(self, key, value, ttl))
    }
    fn add<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Backend::add(self, key, value, ttl))
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Backend::delete(self, key))
    }
    fn gets<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<(Bytes, CasToken)>>> {
        Box::pin(Backend::gets(self, key))
    }
    fn cas<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        expected: Option<&'a CasToken>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Backend::cas(self, key, value, expected, ttl))
    }
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a [u8],
        lease: Duration,
        fencing: Fencing,
    ) -> BoxFuture<'a, Result<LockAttempt>> {
        Box::pin(Backend::try_lock(self, key, owner, lease, fencing))
    }
    fn lock_record<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<LockRecord>>> {
        Box::pin(Backend::lock_record(self, key))
    }
    fn release<'a>(&'a self, key: &'a str, owner: &'a [u8]) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Backend::release(self, key, owner))
    }
    fn extend<'a>(
        &'a self,
        key: &'a str,
        owner: &'a [u8],
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Backend::extend(self, key, owner, lease))
    }
    fn watch_releases<'a>(
        &'a self,
        key: &'a str,
        wake: Arc<Notify>,
    ) -> BoxFuture<'a, Result<ReleaseWatch>> {
        Box::pin(Backend::watch_releases(self, key, wake))
    }
    fn read_for_fill<'a>(
        &'a self,
        key: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<FillRead>> {
        Box::pin(Backend::read_for_fill(self, key, lease))
    }
    fn peek_for_fill<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<FillRead>>> {
        Box::pin(Backend::peek_for_fill(self, key))
    }
    fn store_filled<'a>(
        &'a self,
        key: &'a str,
        lease: &'a LeaseToken,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Backend::store_filled(self, key, lease, value, ttl))
    }
    fn release_fill<'a>(
        &'a self,
        key: &'a str,
        lease: &'a LeaseToken,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Backend::release_fill(self, key, lease))
    }
    fn mark_stale<'a>(&'a self, key: &'a str, grace: Duration) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Backend::mark_stale(self, key, grace))
    }
    fn watch_fills<'a>(
        &'a self,
        key: &'a str,
        wake: Arc<Notify>,
    ) -> BoxFuture<'a, Result<ReleaseWatch>> {
        Box::pin(Backend::watch_fills(self, key, wake))
    }
    fn lease_life(&self, lease: Duration) -> Duration {
        Backend::lease_life(self, lease)
    }
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Bytes>>>> {
        Box::pin(Backend::get_many(self, keys))
    }
    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Backend::set_many(self, entries, ttl))
    }
    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<usize>> {
        Box::pin(Backend::delete_many(self, keys))
    }
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Backend::exists(self, key))
    }
    fn touch<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Backend::touch(self, key, ttl))
    }
    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64>> {
        Box::pin(Backend::increment(self, key, delta))
    }
    fn clears_by_prefix(&self) -> bool {
        Backend::clears_by_prefix(self)
    }
    fn clear<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Backend::clear(self, prefix))
    }
    fn read_for_fill_many<'a>(
        &'a self,
        keys: &'a [&'a str],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<FillRead>>> {
        Box::pin(Backend::read_for_fill_many(self, keys, lease))
    }
    fn store_filled_many<'a>(
        &'a self,
        entries: &'a [FilledValue<'a>],
    ) -> BoxFuture<'a, Result<Vec<bool>>> {
        Box::pin(Backend::store_filled_many(self, entries))
    }
}

/// Lets `AnyBackend::Custom(b)` dispatch through the same macro arms as the
/// built-in backends.
impl Backend for BoxedBackend {
    fn kind(&self) -> &'static str {
        DynBackend::kind(&**self)
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        DynBackend::get(&**self, key).await
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        DynBackend::set(&**self, key, value, ttl).await
    }
    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        DynBackend::add(&**self, key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        DynBackend::delete(&**self, key).await
    }
    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        DynBackend::gets(&**self, key).await
    }
    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        DynBackend::cas(&**self, key, value, expected, ttl).await
    }
    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        DynBackend::try_lock(&**self, key, owner, lease, fencing).await
    }
    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        DynBackend::lock_record(&**self, key).await
    }
    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        DynBackend::release(&**self, key, owner).await
    }
    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        DynBackend::extend(&**self, key, owner, lease).await
    }
    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        DynBackend::watch_releases(&**self, key, wake).await
    }
    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        DynBackend::read_for_fill(&**self, key, lease).await
    }
    async fn peek_for_fill(&self, key: &str) -> Result<Option<FillRead>> {
        DynBackend::peek_for_fill(&**self, key).await
    }
    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        DynBackend::store_filled(&**self, key, lease, value, ttl).await
    }
    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        DynBackend::release_fill(&**self, key, lease).await
    }
    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        DynBackend::mark_stale(&**self, key, grace).await
    }
    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        DynBackend::watch_fills(&**self, key, wake).await
    }
    fn lease_life(&self, lease: Duration) -> Duration {
        DynBackend::lease_life(&**self, lease)
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        DynBackend::get_many(&**self, keys).await
    }
    async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        DynBackend::set_many(&**self, entries, ttl).await
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        DynBackend::delete_many(&**self, keys).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        DynBackend::exists(&**self, key).await
    }
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool> {
        DynBackend::touch(&**self, key, ttl).await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        DynBackend::increment(&**self, key, delta).await
    }
    fn clears_by_prefix(&self) -> bool {
        DynBackend::clears_by_prefix(&**self)
    }
    async fn clear(&self, prefix: &str) -> Result<()> {
        DynBackend::clear(&**self, prefix).await
    }
    async fn read_for_fill_many(&self, keys: &[&str], lease: Duration) -> Result<Vec<FillRead>> {
        DynBackend::read_for_fill_many(&**self, keys, lease).await
    }
    async fn store_filled_many(&self, entries: &[FilledValue<'_>]) -> Result<Vec<bool>> {
        DynBackend::store_filled_many(&**self, entries).await
    }
}
