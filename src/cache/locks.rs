//! The lock calls on [`Cache`](crate::Cache): run a closure under a lock, drop every held
//! lock at shutdown, and the lock types' constructors that take a handle.

use std::future::Future;
use std::time::Duration;

use super::Cache;
use crate::lock::release_record;
use crate::{OptimisticLock, RedLock, Result};

impl Cache {
    /// Runs `work` while holding the exclusive lock `name`, renewed in the
    /// background, and releases it afterwards. Waits as long as it takes to
    /// get the lock. The name can be built from the call's arguments, so one
    /// lock guards one resource (tooz's `synchronized`, as manila uses it).
    ///
    /// If the lease is lost while `work` runs (the record was deleted or
    /// taken, or renewals failed until it ran out), `work` is **cancelled**
    /// (its future dropped) and the call fails with [`Error::LockLost`](crate::Error::LockLost):
    /// running on without the lock is what the lock exists to prevent. A
    /// failure to release once `work` has finished is logged, not returned
    /// (the lease runs out on its own), as Shipyard's api lock does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    ///
    /// let cache = stampede::Cache::memory();
    /// let user_id = 7;
    /// let balance = cache
    ///     .synchronized(format!("user:{user_id}"), Duration::from_secs(5), || async {
    ///         // read, change and write the user's record: nobody else can meanwhile
    ///         100
    ///     })
    ///     .await?;
    /// assert_eq!(balance, 100);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`](crate::Error::LockLost) as above; bad input or a backend failure while
    /// taking the lock (then `work` does not run).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops `work` and releases the lock in the background.
    pub async fn synchronized<F, Fut, T>(
        &self,
        name: impl Into<String>,
        lease: Duration,
        work: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        RedLock::new(self, name, lease)
            .auto_renew(true)
            .synchronized(work)
            .await
    }

    /// Releases every lock that this cache (any clone of this handle) holds
    /// right now, from [`RedLock::acquire`] or [`RedLock::lock`], and returns
    /// how many records it removed. For shutdown, as Synapse does, so that
    /// other processes need not wait out the leases. Their guards find the
    /// locks gone: leases turn [`Lost`](crate::LeaseState::Lost) at their
    /// next renewal or check.
    ///
    /// Errors are logged, not returned: the leases that could not be released
    /// run out on their own.
    ///
    /// # Cancel safety
    ///
    /// Locks not yet released when the future is dropped stay held until
    /// their guards go or their leases run out.
    pub async fn release_all(&self) -> usize {
        let held = self.scope.held.drain();
        tracing::info!(locks = held.len(), "releasing every held lock");
        let releases = held.iter().map(|(key, owner)| async move {
            release_record(&self.scope, key, *owner)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(lock = &**key, %error, "could not release at shutdown");
                    false
                })
        });
        futures::future::join_all(releases)
            .await
            .into_iter()
            .filter(|&removed| removed)
            .count()
    }
}

impl RedLock {
    /// A lock guarding `key` with the given lease. Nothing is sent yet; bad
    /// input (an empty key, a zero lease) is reported by each acquire.
    pub fn new(cache: &Cache, key: impl Into<String>, lease: Duration) -> Self {
        RedLock::in_scope(&cache.scope, key, lease)
    }
}

impl OptimisticLock {
    /// Reads `key` and captures its CAS token (or its absence). One round trip.
    ///
    /// # Errors
    ///
    /// An empty key, or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn acquire(cache: &Cache, key: impl Into<String>) -> Result<OptimisticLock> {
        OptimisticLock::acquire_in(&cache.scope, key).await
    }
}
