//! Replacing a value that is still stored: a refresh (early, or within the
//! stale-while-revalidate window) or a value past its time. One caller does
//! it, under the key's [`RedLock`](crate::RedLock), and stores with a
//! compare-and-set against the version it read, so a write that landed
//! meanwhile is never overwritten. A value marked stale is refreshed under
//! the fill lease the backend granted instead.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::job::Job;
use super::policy::StorePolicy;
use super::Filler;
use crate::backend::{Backend, CasToken, LeaseToken};
use crate::codec::Codec;
use crate::ctx::flights::Leader;
use crate::LockGuard;

/// What entitles a caller to refresh.
pub(super) enum Refresher {
    /// The backend's fill lease on a value marked stale.
    Lease(LeaseToken),
    /// The key's fill lock, and the version of the value read.
    Lock(LockGuard, CasToken),
}

impl<C: Codec, P: StorePolicy<F::Value>, F: Filler> Job<'_, C, P, F> {
    /// Refreshes the key and returns the new value.
    pub(super) async fn refresh(&self, by: Refresher, f: F) -> Result<F::Value, F::Error> {
        match by {
            Refresher::Lease(lease) => self.fill_leased(None, lease, f).await,
            Refresher::Lock(guard, seen) => self.fill_replacing(None, guard, seen, f).await,
        }
    }

    /// Holding the key's fill lock: re-check, fill, compare-and-set against
    /// `seen`, land, release.
    pub(super) async fn fill_replacing(
        &self,
        leader: Option<&Leader<'_>>,
        guard: LockGuard,
        seen: CasToken,
        f: F,
    ) -> Result<F::Value, F::Error> {
        // Someone may have replaced it between our read and our lock.
        if let Some((bytes, token)) = self.scope.backend().gets(&self.full_key).await? {
            if token != seen {
                let value = self.decode(&bytes)?;
                if let Some(leader) = leader {
                    leader.land(bytes);
                }
                release(&guard, self.key).await;
                return Ok(value);
            }
        }
        let started = Instant::now();
        let outcome = f.fill().await;
        if let Ok(value) = &outcome {
            let ttl = self.store_for(value);
            let bytes = self.encode(value, started.elapsed(), ttl.unwrap_or(self.fill.ttl))?;
            let in_time = started.elapsed() < self.fill.lease;
            let stored =
                in_time && ttl.is_some() && self.replace(&bytes, &seen, ttl.flatten()).await;
            tracing::debug!(key = self.key, stored, in_time, "refreshed");
            if stored {
                if let Some(leader) = leader {
                    leader.land(bytes);
                }
            }
            crate::observe::fill(self.scope.backend_kind(), stored, started.elapsed());
        } else {
            crate::observe::fill_error(self.scope.backend_kind(), started.elapsed());
            tracing::warn!(key = self.key, "refresh failed; the old value stays");
        }
        release(&guard, self.key).await;
        self.wake_waiters();
        outcome
    }

    /// Compare-and-sets the refreshed bytes against `seen`; a failure is
    /// logged and counts as not stored (the old value stays).
    async fn replace(&self, bytes: &Bytes, seen: &CasToken, ttl: Option<Duration>) -> bool {
        let ttl = self.fill.storage_ttl(ttl);
        self.scope
            .backend()
            .cas(&self.full_key, bytes, Some(seen), ttl)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(key = self.key, %error, "could not store the refreshed value");
                false
            })
    }
}

/// Releases the fill lock; a failure only delays waiters until the lease
/// runs out (the guard's drop retries), so it is logged, not returned.
async fn release(guard: &LockGuard, key: &str) {
    if let Err(error) = guard.release().await {
        tracing::warn!(key, %error, "could not release the fill lock; waiters fall back to its lease");
    }
}
