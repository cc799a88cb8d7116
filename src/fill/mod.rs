//! The body of `get_or_fill`: lease-checked fills.
//!
//! A read that misses (or finds a value marked stale) takes the backend's
//! *fill lease* in the same round trip ([`Backend::read_for_fill`]); only the
//! lease holder fills, and its write-back is accepted only while its lease
//! is valid: any write to the key meanwhile (`set`, `add`, `cas`, `delete`,
//! `mark_stale`) voids it, and so does the lease running out. A fill that
//! read old data can therefore never store it over a newer write.
//!
//! Callers in one process share one flight per key ([`super::flight`]);
//! callers that find someone else's lease wait to be woken when it ends
//! (in this process at once, in others through the backend), then read
//! again. A caller never waits on others for more than twice the lease
//! ([`Backend::lease_life`]): past that it fills without a lease and does not
//! store (someone else's lease that never runs out cannot hang it).
//!
//! Values still stored but due for a refresh (XFetch, the
//! stale-while-revalidate window, or past their time while the backend
//! keeps them a little longer) are replaced under the key's
//! [`RedLock`](crate::RedLock) with a compare-and-set ([`refresh`]).
//!
//! - `options`: [`Fill`] and how a value is judged;
//! - `job`: one call's context, and a read turned into the next step;
//! - `lease`: filling under a fill lease;
//! - `refresh`: replacing a stored value.

mod claims;
mod job;
mod lease;
mod many;
mod near;
mod options;
mod policy;
mod refresh;
mod wait;

use std::future::Future;
use std::pin::pin;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use self::job::{Job, Need, Step};
use self::refresh::Refresher;
use crate::backend::LeaseToken;
use crate::codec::Codec;
use crate::ctx::flights::{Follower, Joined, Leader};
use crate::observe::{self, op_span};
use crate::{Error, LockGuard, RedLock, Result, Scope};
pub(crate) use many::get_or_fill_many;
pub use options::{Fill, DEFAULT_FILL_LEASE};
pub use policy::{CacheIf, StoreAll, StorePolicy, TtlWith};

/// What a caller does, decided before the fill closure is touched.
enum Decision<'a, T> {
    /// Return this value.
    Value(T),
    /// Fill under the lease, for the flight.
    Lead(Leader<'a>, LeaseToken),
    /// Fill under the lease, outside the flight (another caller leads it).
    Fill(LeaseToken),
    /// Replace a value past its time, holding the fill lock.
    Replace(Leader<'a>, LockGuard, crate::CasToken),
    /// Return the stale value; someone (this caller) refreshes.
    Refresh(T, Refresher),
    /// Out of patience with someone else's lease.
    Unguarded(Leader<'a>),
}

/// What [`run`] leaves to its caller: a result, or a refresh to make.
enum Ran<T, E, F> {
    Done(Result<T, E>),
    /// A value due for a refresh, which this caller won, and the closure.
    Refresh(T, Refresher, F),
}

/// Decides, and does everything but a refresh of a value that is there.
async fn run<C, P, T, E, F, Fut>(job: &Job<'_, C, P>, f: F) -> Result<Ran<T, E, F>, E>
where
    C: Codec,
    P: StorePolicy<T>,
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // Everything past a hit is boxed, here and in `decide`: inline, the
    // fill's and the waits' futures would make every hit move kilobytes.
    let decision = decide(job).await?;
    let outcome = match decision {
        Decision::Value(value) => Ok(value),
        Decision::Lead(leader, lease) => {
            Box::pin(lease::fill_leased(job, Some(&leader), lease, f)).await
        }
        Decision::Fill(lease) => Box::pin(lease::fill_leased(job, None, lease, f)).await,
        Decision::Replace(leader, guard, seen) => {
            Box::pin(refresh::fill_replacing(job, Some(&leader), guard, seen, f)).await
        }
        Decision::Refresh(stale, by) => return Ok(Ran::Refresh(stale, by, f)),
        Decision::Unguarded(leader) => Box::pin(lease::fill_unguarded(job, Some(&leader), f)).await,
    };
    Ok(Ran::Done(outcome))
}

/// `get_or_fill`: the caller that refreshes waits for its own fill.
pub(crate) async fn get_or_fill<C, P, T, E, F, Fut>(
    scope: &Scope,
    codec: &C,
    key: &str,
    fill: &Fill<P>,
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
    let span = op_span!("get_or_fill", scope.backend_kind(), key);
    let outcome = async {
        fill.check()?;
        let job = Job::new(scope, codec, key, fill).await?;
        match run(&job, f).await? {
            Ran::Done(outcome) => outcome,
            Ran::Refresh(_, by, f) => Box::pin(refresh::refresh(&job, by, f)).await,
        }
    }
    .instrument(span.clone())
    .await;
    span.record("outcome", if outcome.is_ok() { "ok" } else { "error" });
    outcome
}

/// `get_or_fill_detached`: a caller that reads a value due for a refresh
/// returns it at once and the refresh runs on a spawned task.
pub(crate) async fn get_or_fill_detached<C, P, T, E, F, Fut>(
    scope: &Scope,
    codec: &C,
    key: &str,
    fill: &Fill<P>,
    f: F,
) -> Result<T, E>
where
    C: Codec,
    P: StorePolicy<T> + Clone + Send + Sync + 'static,
    T: Serialize + DeserializeOwned + Send + 'static,
    E: From<Error> + std::fmt::Display + Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let span = op_span!("get_or_fill_detached", scope.backend_kind(), key);
    let ran = async {
        fill.check()?;
        let job = Job::new(scope, codec, key, fill).await?;
        run(&job, f).await
    }
    .instrument(span.clone())
    .await;
    span.record("outcome", if ran.is_ok() { "ok" } else { "error" });
    let (stale, by, f) = match ran? {
        Ran::Done(outcome) => return outcome,
        Ran::Refresh(stale, by, f) => (stale, by, f),
    };
    let (scope, codec, key, fill) = (scope.clone(), codec.clone(), key.to_owned(), fill.clone());
    tokio::spawn(async move {
        let refreshed = match Job::new(&scope, &codec, &key, &fill).await {
            Ok(job) => refresh::refresh(&job, by, f).await,
            Err(error) => Err(E::from(error)),
        };
        if let Err(error) = refreshed {
            tracing::warn!(key, %error, "background refresh failed; the old value stays");
        }
    });
    Ok(stale)
}

/// Reads (or follows this process's flight) until the caller has a value or
/// knows what to fill.
async fn decide<'a, C: Codec, P, T: DeserializeOwned>(
    job: &'a Job<'_, C, P>,
) -> Result<Decision<'a, T>> {
    let flights = job.scope.flights();
    let near = job.scope.near().is_some();
    if near {
        if let Some(value) = near::fresh_copy(job)? {
            observe::hits(job.scope.backend_kind(), "get_or_fill", 1);
            return Ok(Decision::Value(value));
        }
    }
    loop {
        // A fill for this key is under way in this process: wait for it
        // without touching the backend.
        if let Some(follower) = flights.in_progress(&job.full_key) {
            match Box::pin(follow(job, follower)).await? {
                Some(value) => {
                    // Served by this process's fill: a hit for this caller.
                    observe::hits(job.scope.backend_kind(), "get_or_fill", 1);
                    return Ok(Decision::Value(value));
                }
                None => continue, // it failed, was cancelled or could not store
            }
        }
        // With a near cache, this process had no copy: no peek, the
        // flight's leader reads with the lease (keeping a copy).
        let first = if near {
            Step::Need(Need::Ask)
        } else {
            job.first_read::<T>().await?
        };
        let need = match first {
            Step::Done(value, _) => {
                observe::hits(job.scope.backend_kind(), "get_or_fill", 1);
                return Ok(Decision::Value(value));
            }
            Step::Refresh(value, _, seen) => {
                observe::hits(job.scope.backend_kind(), "get_or_fill", 1);
                // One caller refreshes; everyone else keeps what they read.
                let lock = RedLock::in_scope(job.scope, job.key, job.fill.lease);
                return Ok(match Box::pin(lock.try_acquire()).await? {
                    Some(guard) => Decision::Refresh(value, Refresher::Lock(guard, seen)),
                    None => Decision::Value(value),
                });
            }
            Step::ServeStale(value, Some(lease)) => {
                observe::stale_served(job.scope.backend_kind());
                return Ok(Decision::Refresh(value, Refresher::Lease(lease)));
            }
            Step::ServeStale(value, None) => {
                observe::stale_served(job.scope.backend_kind());
                return Ok(Decision::Value(value));
            }
            Step::Need(need) => {
                observe::misses(job.scope.backend_kind(), "get_or_fill", 1);
                need
            }
        };
        match flights.join(&job.full_key) {
            Joined::Lead(leader) => return Box::pin(lead(job, leader, need)).await,
            Joined::Follow(follower) => {
                // Another caller here leads, waiting on a lease: ours (its
                // read came back busy before ours was granted). We fill
                // outside the flight; our store wakes the leader, which
                // reads the value and lands it for everyone.
                if let Need::Lease(lease) = need {
                    return Ok(Decision::Fill(lease));
                }
                if let Some(value) = Box::pin(follow(job, follower)).await? {
                    return Ok(Decision::Value(value));
                }
            }
        }
    }
}

/// Waits for this process's flight to land, for at most one lease: a
/// leader still busy after that has outlived its lease (its value will not
/// be stored), so the flight is abandoned for newcomers and the caller goes
/// to the backend, where the lease has run out. `None`: nothing landed.
async fn follow<C: Codec, P, T: DeserializeOwned>(
    job: &Job<'_, C, P>,
    mut follower: Follower,
) -> Result<Option<T>> {
    match tokio::time::timeout_at(job.next_wake(), follower.landed()).await {
        Ok(Some(bytes)) => Ok(Some(job.decode(&bytes)?)),
        Ok(None) => Ok(None),
        Err(_) => {
            tracing::debug!(
                key = job.key,
                "the flight's leader outlived its lease; leaving it"
            );
            job.scope.flights().abandon(&job.full_key, &follower);
            Ok(None)
        }
    }
}

/// This process's one caller for the key: waits out other processes'
/// leases until it holds one, or reads what they stored.
async fn lead<'a, C: Codec, P, T: DeserializeOwned>(
    job: &'a Job<'_, C, P>,
    leader: Leader<'a>,
    first: Need,
) -> Result<Decision<'a, T>> {
    let mut need = first;
    let mut waiter = None;
    loop {
        let step = match need {
            Need::Lease(lease) => return Ok(Decision::Lead(leader, lease)),
            Need::Ask => job.read::<T>().await?,
            Need::Replace(_) | Need::Busy if job.out_of_patience() => {
                return Ok(Decision::Unguarded(leader))
            }
            Need::Replace(seen) => {
                let guard = RedLock::in_scope(job.scope, job.key, job.fill.lease)
                    .acquire()
                    .await?;
                if guard.holds_lock() {
                    return Ok(Decision::Replace(leader, guard, seen));
                }
                job.read::<T>().await? // waited for someone's replace
            }
            Need::Busy => {
                let waiter = match &mut waiter {
                    Some(waiter) => waiter,
                    None => {
                        let registered = job.scope.fill_wakeups().register(&job.full_key);
                        registered.watch_remote_fills(job.scope.backend()).await;
                        waiter.insert(registered)
                    }
                };
                // Enabled before the re-read, so a lease that ends right
                // after it still wakes us.
                let mut notified = pin!(waiter.notified());
                notified.as_mut().enable();
                let step = job.read::<T>().await?;
                if let Step::Need(Need::Busy) = step {
                    tokio::select! {
                        () = notified => tracing::debug!(key = job.key, "woken: a fill lease ended"),
                        () = tokio::time::sleep_until(job.next_wake()) => {}
                    }
                }
                step
            }
        };
        need = match step {
            Step::Done(value, bytes) | Step::Refresh(value, bytes, _) => {
                leader.land(bytes);
                return Ok(Decision::Value(value));
            }
            Step::ServeStale(value, Some(lease)) => {
                return Ok(Decision::Refresh(value, Refresher::Lease(lease)))
            }
            Step::ServeStale(value, None) => return Ok(Decision::Value(value)),
            Step::Need(need) => need,
        };
    }
}
