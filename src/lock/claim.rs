//! A claim on a lock record: the one place that knows how a record is let
//! go of, on purpose or by `Drop`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::OwnerToken;
use crate::backend::Backend;
use crate::{Result, Scope};

/// Our claim on a lock record, from just before the create is sent until the
/// record is released.
///
/// Rust has no async drop, so a claim dropped while still armed (a guard
/// dropped without `release`, a panic, a task cancelled while the create was
/// in flight) releases the record from a background task on the current
/// tokio runtime. The release is owner-checked, so it can never remove a
/// record that someone else holds by then.
pub(crate) struct Claim {
    scope: Scope,
    key: Arc<str>,
    owner: OwnerToken,
    armed: AtomicBool,
    /// Id in the cache's [`HeldLocks`](super::held::HeldLocks); 0 while not held.
    registration: AtomicU64,
}

impl Claim {
    /// A claim on `key` with a fresh owner token, armed.
    pub(crate) fn new(scope: &Scope, key: Arc<str>) -> Self {
        Claim {
            scope: scope.clone(),
            key,
            owner: OwnerToken::new(),
            armed: AtomicBool::new(true),
            registration: AtomicU64::new(0),
        }
    }

    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn owner(&self) -> &[u8] {
        self.owner.as_bytes()
    }

    /// Records that the create succeeded: the cache now counts the lock as
    /// held, for [`Cache::release_all`](crate::Cache::release_all).
    pub(crate) fn mark_held(&self) {
        let id = self
            .scope
            .held_locks()
            .insert(Arc::clone(&self.key), self.owner);
        self.registration.store(id, Ordering::Release);
    }

    /// Whether we may still hold the record (not released, not given up).
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// Forgets the claim without touching the backend: we know we do not
    /// hold the record.
    pub(crate) fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
        let id = self.registration.swap(0, Ordering::AcqRel);
        if id != 0 {
            self.scope.held_locks().remove(id);
        }
    }

    /// Releases the record if it is still ours and wakes its waiters.
    /// `Ok(false)` when it was not ours any more or was already released. On
    /// error the claim stays armed, so a later call or `Drop` tries again.
    pub(crate) async fn release(&self) -> Result<bool> {
        if !self.is_armed() {
            return Ok(false);
        }
        let removed = release_record(&self.scope, &self.key, self.owner).await?;
        self.disarm();
        Ok(removed)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.is_armed() {
            return;
        }
        self.disarm();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                lock = &*self.key,
                "lock guard dropped outside a tokio runtime; the record stays until its lease runs out"
            );
            return;
        };
        let (scope, key, owner) = (self.scope.clone(), Arc::clone(&self.key), self.owner);
        runtime.spawn(async move {
            if let Err(error) = release_record(&scope, &key, owner).await {
                tracing::warn!(
                    lock = &*key,
                    %error,
                    "background release of a dropped lock failed; unless the backend took back its create, the record stays until its lease runs out"
                );
            }
        });
    }
}

/// Owner-checked delete of the record, then a wake-up of this process's
/// waiters when it was ours.
pub(crate) async fn release_record(scope: &Scope, key: &str, owner: OwnerToken) -> Result<bool> {
    let removed = scope.backend().release(key, owner.as_bytes()).await?;
    if removed {
        scope.wakeups().wake(key);
    }
    tracing::debug!(lock = key, removed, "released");
    Ok(removed)
}
