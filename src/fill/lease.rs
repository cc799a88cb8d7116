//! Filling under a fill lease: run the fill, store the value only while the
//! lease is still valid, and give the lease back on every other way out.

use bytes::Bytes;
use tokio::time::Instant;

use super::job::Job;
use super::policy::StorePolicy;
use super::Filler;
use crate::backend::{Backend, LeaseToken};
use crate::codec::Codec;
use crate::ctx::flights::Leader;
use crate::Scope;

/// A fill lease we hold. Dropped while still held (the fill panicked, or the
/// caller's future was dropped), it is given back from a background task,
/// so that a waiter takes over at once rather than after the lease.
struct LeaseClaim {
    scope: Scope,
    key: String,
    lease: Option<LeaseToken>,
}

impl LeaseClaim {
    fn new(scope: &Scope, key: &str, lease: LeaseToken) -> Self {
        LeaseClaim {
            scope: scope.clone(),
            key: key.to_owned(),
            lease: Some(lease),
        }
    }

    /// Stores `value` under the lease. `Ok(false)`: the lease was void.
    async fn store(
        &mut self,
        value: &[u8],
        ttl: Option<std::time::Duration>,
    ) -> crate::Result<bool> {
        let Some(lease) = &self.lease else {
            return Ok(false);
        };
        let stored = self
            .scope
            .backend()
            .store_filled(&self.key, lease, value, ttl)
            .await;
        // Stored or refused, the lease is over; after an error, `Drop`
        // gives it back in case it is not.
        if stored.is_ok() {
            self.lease = None;
        }
        self.scope.fill_wakeups().wake(&self.key);
        stored
    }

    /// Gives the lease back now; failures are logged (it runs out anyway).
    async fn give_back(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        give_back(&self.scope, &self.key, &lease).await;
    }
}

impl Drop for LeaseClaim {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                key = self.key,
                "fill lease dropped outside a tokio runtime; it runs out on its own"
            );
            return;
        };
        let (scope, key) = (self.scope.clone(), std::mem::take(&mut self.key));
        runtime.spawn(async move { give_back(&scope, &key, &lease).await });
    }
}

/// Gives a fill lease back and wakes this process's waiters.
pub(super) async fn give_back(scope: &Scope, key: &str, lease: &LeaseToken) {
    if let Err(error) = scope.backend().release_fill(key, lease).await {
        tracing::warn!(key, %error, "could not give a fill lease back; waiters fall back to its end");
    }
    scope.fill_wakeups().wake(key);
}

impl<C: Codec, P: StorePolicy<F::Value>, F: Filler> Job<'_, C, P, F> {
    /// Holding the fill lease: fill, store while the lease holds, land the
    /// stored bytes for the flight's followers. The caller gets what `f`
    /// computed whether or not it could be stored, unless the backend
    /// refused it as invalid input (a TTL it cannot represent, a value over
    /// its limit).
    pub(super) async fn fill_leased(
        &self,
        leader: Option<&Leader<'_>>,
        lease: LeaseToken,
        f: F,
    ) -> Result<F::Value, F::Error> {
        let mut claim = LeaseClaim::new(self.scope, &self.full_key, lease);
        let started = Instant::now();
        let value = match f.fill().await {
            Ok(value) => value,
            Err(error) => {
                crate::observe::fill_error(self.scope.backend_kind(), started.elapsed());
                tracing::debug!(
                    key = self.key,
                    "fill failed; giving the lease back so that a waiter takes over"
                );
                claim.give_back().await;
                return Err(error);
            }
        };
        let Some(ttl) = self.store_for(&value) else {
            // The policy keeps it out of the cache. This process's followers
            // still get it; everyone else fills again.
            tracing::debug!(
                key = self.key,
                "the fill's policy declined the value; not storing"
            );
            claim.give_back().await;
            if let Some(leader) = leader {
                leader.land(self.encode(&value, started.elapsed(), self.fill.ttl)?);
            }
            return Ok(value);
        };
        let bytes = self.encode(&value, started.elapsed(), ttl)?;
        if started.elapsed() >= self.fill.lease {
            // Our lease has run out: someone else may hold the next one and
            // may have read newer data than we did. Only they store.
            tracing::debug!(key = self.key, took = ?started.elapsed(), "fill outlived its lease; not storing");
            claim.give_back().await;
            return Ok(value);
        }
        self.store_leased(claim, leader, bytes, ttl, started)
            .await?;
        Ok(value)
    }

    /// Stores the filled bytes under the lease and lands them. Only a
    /// backend's refusal of invalid input is an error: a void lease or a
    /// failed store leaves the value unstored, and the caller still gets it.
    async fn store_leased(
        &self,
        mut claim: LeaseClaim,
        leader: Option<&Leader<'_>>,
        bytes: Bytes,
        ttl: Option<std::time::Duration>,
        started: Instant,
    ) -> crate::Result<()> {
        let stored = claim.store(&bytes, self.fill.storage_ttl(ttl)).await;
        let kind = self.scope.backend_kind();
        crate::observe::fill(kind, matches!(stored, Ok(true)), started.elapsed());
        match stored {
            Ok(true) => {
                tracing::debug!(key = self.key, fill_time = ?started.elapsed(), "filled");
                if let Some(leader) = leader {
                    leader.land(bytes);
                }
            }
            Ok(false) => {
                tracing::debug!(
                    key = self.key,
                    "a write voided the fill lease; the fill's value is not stored"
                );
            }
            // A TTL or value the backend can never store: say so, rather
            // than hand the value back and refill it on every call.
            Err(error) if error.is_invalid_input() => return Err(error),
            Err(error) => {
                tracing::warn!(key = self.key, %error, "could not store the filled value");
            }
        }
        Ok(())
    }

    /// Past the caller's patience with someone else's lease (one that never
    /// runs out, or fills that keep outliving their leases): fill without a
    /// lease and without storing, as aiocache's waiters do after a lease.
    pub(super) async fn fill_unguarded(
        &self,
        leader: Option<&Leader<'_>>,
        f: F,
    ) -> Result<F::Value, F::Error> {
        tracing::warn!(
            key = self.key,
            "someone else's fill lease outlived twice its lease; filling without one, not storing"
        );
        let started = Instant::now();
        let value = f.fill().await?;
        if let Some(leader) = leader {
            leader.land(self.encode(&value, started.elapsed(), self.fill.ttl)?);
        }
        Ok(value)
    }
}
