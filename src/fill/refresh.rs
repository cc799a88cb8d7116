//! Replacing a value that is still stored: a refresh (early, or within the
//! stale-while-revalidate window) or a value past its time. One caller does
//! it, under the key's [`RedLock`](crate::RedLock), and stores with a
//! compare-and-set against the version it read, so a write that landed
//! meanwhile is never overwritten. A value marked stale is refreshed under
//! the fill lease the backend granted instead.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use super::job::Job;
use super::lease::fill_leased;
use super::policy::StorePolicy;
use crate::backend::{Backend, CasToken, LeaseToken};
use crate::codec::Codec;
use crate::ctx::flights::Leader;
use crate::{Error, LockGuard};

/// What entitles a caller to refresh.
pub(super) enum Refresher {
    /// The backend's fill lease on a value marked stale.
    Lease(LeaseToken),
    /// The key's fill lock, and the version of the value read.
    Lock(LockGuard, CasToken),
}

/// Refreshes the key and returns the new value.
pub(super) async fn refresh<C, P, T, E, F, Fut>(
    job: &Job<'_, C, P>,
    by: Refresher,
    f: F,
) -> Result<T, E>
where
    C: Codec,
    P: StorePolicy<T>,
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match by {
        Refresher::Lease(lease) => fill_leased(job, None, lease, f).await,
        Refresher::Lock(guard, seen) => fill_replacing(job, None, guard, seen, f).await,
    }
}

/// Holding the key's fill lock: re-check, fill, compare-and-set against
/// `seen`, land, release.
pub(super) async fn fill_replacing<C, P, T, E, F, Fut>(
    job: &Job<'_, C, P>,
    leader: Option<&Leader<'_>>,
    guard: LockGuard,
    seen: CasToken,
    f: F,
) -> Result<T, E>
where
    C: Codec,
    P: StorePolicy<T>,
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let backend = job.scope.backend();
    // Someone may have replaced it between our read and our lock.
    if let Some((bytes, token)) = backend.gets(&job.full_key).await? {
        if token != seen {
            let value = job.decode(&bytes)?;
            if let Some(leader) = leader {
                leader.land(bytes);
            }
            release(&guard, job.key).await;
            return Ok(value);
        }
    }
    let started = Instant::now();
    let outcome = f().await;
    if let Ok(value) = &outcome {
        let ttl = job.store_for(value);
        let bytes = job.encode(value, started.elapsed(), ttl.unwrap_or(job.fill.ttl))?;
        let in_time = started.elapsed() < job.fill.lease;
        let stored = in_time
            && ttl.is_some()
            && backend
                .cas(
                    &job.full_key,
                    &bytes,
                    Some(&seen),
                    job.fill.storage_ttl(ttl.flatten()),
                )
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(key = job.key, %error, "could not store the refreshed value");
                    false
                });
        tracing::debug!(key = job.key, stored, in_time, "refreshed");
        if stored {
            if let Some(near) = job.scope.near() {
                near.forget(&job.full_key);
            }
            if let Some(leader) = leader {
                leader.land(bytes);
            }
        }
        crate::observe::fill(job.scope.backend_kind(), stored, started.elapsed());
    } else {
        crate::observe::fill_error(job.scope.backend_kind(), started.elapsed());
        tracing::warn!(key = job.key, "refresh failed; the old value stays");
    }
    release(&guard, job.key).await;
    job.wake_waiters();
    outcome
}

/// Releases the fill lock; a failure only delays waiters until the lease
/// runs out (the guard's drop retries), so it is logged, not returned.
async fn release(guard: &LockGuard, key: &str) {
    if let Err(error) = guard.release().await {
        tracing::warn!(key, %error, "could not release the fill lock; waiters fall back to its lease");
    }
}
