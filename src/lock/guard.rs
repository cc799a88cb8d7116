//! What a caller holds after [`RedLock::acquire`](crate::RedLock::acquire),
//! and how a lock record is let go of, on purpose or by `Drop`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::OwnerToken;
use crate::backend::Backend;
use crate::{Cache, Result};

/// Our claim on a lock record, from just before the create is sent until the
/// record is released.
///
/// Rust has no async drop, so a claim dropped while still armed (a guard
/// dropped without `release`, a panic, a task cancelled while the create was
/// in flight) releases the record from a background task on the current
/// tokio runtime. The release is owner-checked, so it can never remove a
/// record that someone else holds by then.
pub(crate) struct Claim {
    cache: Cache,
    key: Arc<str>,
    owner: OwnerToken,
    armed: AtomicBool,
}

impl Claim {
    /// A claim on `key` with a fresh owner token, armed.
    pub(crate) fn new(cache: &Cache, key: Arc<str>) -> Self {
        Claim {
            cache: cache.clone(),
            key,
            owner: OwnerToken::new(),
            armed: AtomicBool::new(true),
        }
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn owner(&self) -> &[u8] {
        self.owner.as_bytes()
    }

    /// Whether we may still hold the record (not released, not given up).
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// Forgets the claim without touching the backend: we know we do not
    /// hold the record.
    pub(crate) fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
    }

    /// Releases the record if it is still ours and wakes its waiters.
    /// `Ok(false)` when it was not ours any more or was already released. On
    /// error the claim stays armed, so a later call or `Drop` tries again.
    pub(crate) async fn release(&self) -> Result<bool> {
        if !self.is_armed() {
            return Ok(false);
        }
        let removed = release_record(&self.cache, &self.key, self.owner).await?;
        self.disarm();
        Ok(removed)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.is_armed() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                lock = &*self.key,
                "lock guard dropped outside a tokio runtime; the record stays until its lease runs out"
            );
            return;
        };
        let (cache, key, owner) = (self.cache.clone(), Arc::clone(&self.key), self.owner);
        runtime.spawn(async move {
            if let Err(error) = release_record(&cache, &key, owner).await {
                tracing::warn!(
                    lock = &*key,
                    %error,
                    "background release of a dropped lock failed; the record stays until its lease runs out"
                );
            }
        });
    }
}

/// Owner-checked delete of the record, then a wake-up of this process's
/// waiters when it was ours.
async fn release_record(cache: &Cache, key: &str, owner: OwnerToken) -> Result<bool> {
    let removed = cache.backend().release(key, owner.as_bytes()).await?;
    if removed {
        cache.wakeups().wake(key);
    }
    tracing::debug!(lock = key, removed, "released");
    Ok(removed)
}

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
