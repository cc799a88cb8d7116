//! Whole-call helpers on [`Cache`]: run a closure under a lock, and drop
//! every held lock at shutdown.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use super::claim::release_record;
use super::RedLock;
use crate::{Cache, Error, Result};

/// The lease of `#[synchronized]` when it gives none: renewed in the
/// background while the body runs, so it only bounds how long others wait
/// after a crash.
pub const DEFAULT_SYNCHRONIZED_LEASE: Duration = Duration::from_secs(30);

impl RedLock {
    /// Runs `work` while holding this lock, exclusively, as
    /// [`Cache::synchronized`] does, but with this lock's
    /// [`wait_timeout`](RedLock::wait_timeout) and
    /// [`auto_renew`](RedLock::auto_renew) settings. `#[synchronized]`
    /// expands to it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    /// use stampede::{Cache, RedLock};
    ///
    /// let cache = Cache::memory();
    /// let lock = RedLock::new(&cache, "export:7", Duration::from_secs(30))
    ///     .auto_renew(true)
    ///     .wait_timeout(Duration::from_secs(120));
    /// let rows = lock.synchronized(|| async { 1_000 }).await?;
    /// assert_eq!(rows, 1_000);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] when the lease is lost while `work` runs (and
    /// `work` is cancelled); [`Error::LockTimeout`] past the wait timeout;
    /// bad input or a backend failure while taking the lock.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops `work` and releases the lock in the background.
    pub async fn synchronized<F, Fut, T>(&self, work: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let guard = self.lock().await?;
        let work = pin!(work());
        let output = tokio::select! {
            output = work => output,
            () = guard.lost() => {
                return Err(Error::LockLost { key: self.key().to_owned() });
            }
        };
        if let Err(error) = guard.release().await {
            tracing::warn!(
                lock = self.key(),
                %error,
                "could not release after synchronized work; the lease will run out on its own"
            );
        }
        Ok(output)
    }
}

impl Cache {
    /// Runs `work` while holding the exclusive lock `name`, renewed in the
    /// background, and releases it afterwards. Waits as long as it takes to
    /// get the lock. The name can be built from the call's arguments, so one
    /// lock guards one resource (tooz's `synchronized`, as manila uses it).
    ///
    /// If the lease is lost while `work` runs (the record was deleted or
    /// taken, or renewals failed until it ran out), `work` is **cancelled**
    /// (its future dropped) and the call fails with [`Error::LockLost`]:
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
    /// [`Error::LockLost`] as above; bad input or a backend failure while
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
        let held = self.held_locks().drain();
        tracing::info!(locks = held.len(), "releasing every held lock");
        let releases = held.iter().map(|(key, owner)| async move {
            release_record(self, key, *owner)
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
