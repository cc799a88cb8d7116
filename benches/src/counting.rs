//! A [`Backend`] that forwards every call to another and logs which
//! methods were called: how the comparison counts the backend calls of a
//! `get_or_fill` on the memory backend, where there is no wire to watch.
//!
//! ```
//! # #![recursion_limit = "256"]
//! use stampede::backend::memory::MemoryBackend;
//! use stampede::{Cache, Fill};
//! use stampede_benches::counting::CountingBackend;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> stampede::Result<()> {
//! let (backend, calls) = CountingBackend::new(MemoryBackend::default());
//! let cache = Cache::custom(backend);
//! let fill = Fill::ttl(std::time::Duration::from_secs(60));
//! let v: u32 = cache.get_or_fill("k", fill, || async { Ok::<_, stampede::Error>(7) }).await?;
//! assert_eq!(v, 7);
//! assert_eq!(calls.take(), ["read_for_fill", "store_filled"]);
//! # Ok(())
//! # }
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use stampede::backend::{
    Backend, CasToken, Fencing, FillRead, LeaseToken, LockAttempt, LockRecord, ReleaseWatch,
};
use stampede::Result;
use tokio::sync::Notify;

/// The names of the backend methods called, in order; shared by the
/// [`CountingBackend`] and whoever reads it.
#[derive(Clone, Debug, Default)]
pub struct Calls(Arc<Mutex<Vec<&'static str>>>);

impl Calls {
    fn push(&self, method: &'static str) {
        self.0.lock().expect("call log").push(method);
    }

    /// The calls logged since the last `take`, and a fresh log.
    pub fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.0.lock().expect("call log"))
    }
}

/// Forwards every [`Backend`] method to `inner`, logging each async call
/// (each one a round trip on a networked backend). `kind` and
/// `lease_life` are forwarded without logging: they compute, they do not
/// reach the store.
#[derive(Debug)]
pub struct CountingBackend<B> {
    inner: B,
    calls: Calls,
}

impl<B: Backend> CountingBackend<B> {
    /// Wraps `inner`; the [`Calls`] handle reads the log.
    pub fn new(inner: B) -> (Self, Calls) {
        let calls = Calls::default();
        (
            CountingBackend {
                inner,
                calls: calls.clone(),
            },
            calls,
        )
    }
}

impl<B: Backend> Backend for CountingBackend<B> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.calls.push("get");
        self.inner.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.calls.push("set");
        self.inner.set(key, value, ttl).await
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        self.calls.push("add");
        self.inner.add(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.calls.push("delete");
        self.inner.delete(key).await
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        self.calls.push("gets");
        self.inner.gets(key).await
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.calls.push("cas");
        self.inner.cas(key, value, expected, ttl).await
    }

    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        self.calls.push("try_lock");
        self.inner.try_lock(key, owner, lease, fencing).await
    }

    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        self.calls.push("lock_record");
        self.inner.lock_record(key).await
    }

    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        self.calls.push("release");
        self.inner.release(key, owner).await
    }

    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        self.calls.push("extend");
        self.inner.extend(key, owner, lease).await
    }

    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        self.calls.push("watch_releases");
        self.inner.watch_releases(key, wake).await
    }

    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        self.calls.push("read_for_fill");
        self.inner.read_for_fill(key, lease).await
    }

    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.calls.push("store_filled");
        self.inner.store_filled(key, lease, value, ttl).await
    }

    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        self.calls.push("release_fill");
        self.inner.release_fill(key, lease).await
    }

    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        self.calls.push("mark_stale");
        self.inner.mark_stale(key, grace).await
    }

    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        self.calls.push("watch_fills");
        self.inner.watch_fills(key, wake).await
    }

    fn lease_life(&self, lease: Duration) -> Duration {
        self.inner.lease_life(lease)
    }
}
