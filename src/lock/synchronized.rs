//! [`RedLock::synchronized`]: run a closure while holding the lock.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use super::RedLock;
use crate::{Error, Result};

/// The lease of `#[synchronized]` when it gives none: renewed in the
/// background while the body runs, so it only bounds how long others wait
/// after a crash.
pub const DEFAULT_SYNCHRONIZED_LEASE: Duration = Duration::from_secs(30);

impl RedLock {
    /// Runs `work` while holding this lock, exclusively, as
    /// [`Cache::synchronized`](crate::Cache::synchronized) does, but with this lock's
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
