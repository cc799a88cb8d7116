//! What a caller holds after [`RedLock::acquire`](crate::RedLock::acquire).

use super::claim::Claim;
use crate::Result;

/// The result of [`RedLock::acquire`](crate::RedLock::acquire): either we
/// hold the lock, or we waited until its holder released it or its lease ran
/// out.
///
/// Dropping a holding guard without [`release`](LockGuard::release) still
/// releases the lock, from a background task on the current tokio runtime
/// (Rust has no async drop). Outside a runtime the record is left to expire
/// with its lease. Call `release` where you can: it reports errors and wakes
/// waiters sooner.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stampede::Result<()> {
/// use std::time::Duration;
/// use stampede::{Cache, RedLock};
///
/// let cache = Cache::memory();
/// let guard = RedLock::new(&cache, "report", Duration::from_secs(5)).acquire().await?;
/// assert!(guard.holds_lock());
/// assert!(guard.release().await?);  // removed our record
/// assert!(!guard.release().await?); // a second release removes nothing
/// assert!(!guard.holds_lock());
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping the guard releases the lock"]
pub struct LockGuard {
    claim: Option<Claim>,
    woken: bool,
}

impl LockGuard {
    pub(crate) fn holding(claim: Claim) -> Self {
        claim.mark_held();
        LockGuard {
            claim: Some(claim),
            woken: false,
        }
    }

    pub(crate) fn waited(woken: bool) -> Self {
        LockGuard { claim: None, woken }
    }

    /// `true` while we hold the lock: we created the record and have not
    /// released it. `false` when we waited instead (the holder released or
    /// its lease ran out), and after [`release`](LockGuard::release).
    pub fn holds_lock(&self) -> bool {
        self.claim.as_ref().is_some_and(Claim::is_armed)
    }

    /// For a guard that waited: `true` when the holder's release woke us,
    /// `false` when we stopped waiting because the lease ran out. Always
    /// `false` for the guard that held the lock.
    pub fn was_woken(&self) -> bool {
        self.woken
    }

    /// Releases the lock if we hold it: deletes the record only if it still
    /// carries our owner token, then wakes this process's waiters (other
    /// processes' waiters are told by the backend where it can).
    ///
    /// Returns `Ok(true)` when our record was removed; `Ok(false)` for a guard
    /// that did not hold the lock, a second release, or a lease that ran out
    /// (whoever holds the lock now keeps it).
    ///
    /// # Errors
    ///
    /// A backend failure. The guard still counts as holding, so calling again
    /// (or dropping it) retries.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before the backend answers, the
    /// guard still counts as holding and its `Drop` releases in the background.
    pub async fn release(&self) -> Result<bool> {
        match &self.claim {
            Some(claim) => claim.release().await,
            None => Ok(false),
        }
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.claim.as_ref().map(Claim::key))
            .field("holds_lock", &self.holds_lock())
            .field("woken", &self.woken)
            .finish()
    }
}
