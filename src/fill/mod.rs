//! The stampede guard: the body of `get_or_fill`, `get_or_fill_detached`
//! and `get_or_fill_many`.
//!
//! **Leases.** A read that misses (or finds a value marked stale) takes the
//! backend's *fill lease* in the same round trip
//! ([`Backend::read_for_fill`]); only the lease holder fills, and its
//! write-back is accepted only while its lease is valid: any write to the
//! key meanwhile (`set`, `add`, `cas`, `delete`, `mark_stale`) voids it, and
//! so does the lease running out. A fill that read old data can therefore
//! never store it over a newer write. A lease is given back on every way
//! out, from `Drop` when the caller's future is dropped (`lease`).
//!
//! **Flights and waits.** Callers in one process share one flight per key
//! ([`Flights`](crate::ctx::flights)): its leader alone goes to the
//! backend, the others wait for the bytes it lands. A leader that finds
//! someone else's lease waits to be woken when it ends (in this process at
//! once, in others through the backend), registered before it reads again
//! so that no wake-up is lost, then reads again. A caller never waits on
//! others for more than twice the lease ([`Backend::lease_life`]): past that
//! it fills without a lease and does not store (someone else's lease that
//! never runs out cannot hang it). A follower waits for a flight for at most
//! one lease: a leader still busy after that has outlived its lease, so the
//! follower abandons the flight and goes to the backend itself.
//!
//! **Refreshes.** Values still stored but due for a refresh (XFetch, the
//! stale-while-revalidate window, or past their time while the backend keeps
//! them a little longer) are replaced under the key's
//! [`RedLock`](crate::RedLock) with a compare-and-set (`refresh`).
//!
//! **The state machine.** One call is a [`State`] moved on by one loop,
//! [`Job::run`], read top-down: `Start` (a copy this process keeps) → `Flight` (this
//! process's flight) → `Read` (the backend) → `Join` (lead or follow the
//! flight) → `Lead` (wait out other processes' leases) → an end: `Done`, a
//! fill (`Fill`, `Replace`, `Unguarded`) or a `Refresh` left to the caller,
//! which runs it inline (`get_or_fill`) or on a spawned task
//! (`get_or_fill_detached`). Every state past a hit runs boxed, so that a
//! hit's future stays small.
//!
//! **Bounds.** What the fill closure must be is declared once, by
//! [`Filler`] (and [`FillsMany`](many::FillsMany) for a set of keys); the
//! call's context, [`Job`], carries the codec, the policy and the closure
//! type, and each file has one `impl` block over them.
//!
//! - `options`, `policy`: [`Fill`] and how a value is judged and stored;
//! - `job`: one call's context, and a read turned into the next step;
//! - `lease`: filling under a fill lease; `refresh`: replacing a stored value;
//! - `copy`: a fresh copy this process keeps (a near tier's) as a hit;
//! - `many`, `wait`, `claims`: `get_or_fill_many`.

mod claims;
mod copy;
mod job;
mod lease;
mod many;
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
use crate::backend::{CasToken, LeaseToken};
use crate::codec::Codec;
use crate::ctx::flights::{Follower, Joined, Leader};
use crate::ctx::wakeups::Waiter;
use crate::observe::{self, op_span};
use crate::{Error, LockGuard, RedLock, Result, Scope};
pub(crate) use many::get_or_fill_many;
pub use options::{Fill, DEFAULT_FILL_LEASE};
pub use policy::{CacheIf, StoreAll, StorePolicy, TtlWith};

/// A `get_or_fill` closure, with the value it fills and its error: the
/// bounds every step of the guard shares, declared once. Every closure the
/// public methods accept is one.
pub(crate) trait Filler {
    type Value: Serialize + DeserializeOwned;
    type Error: From<Error>;
    type Filling: Future<Output = Result<Self::Value, Self::Error>>;

    /// Starts the fill.
    fn fill(self) -> Self::Filling;
}

impl<T, E, F, Fut> Filler for F
where
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Value = T;
    type Error = E;
    type Filling = Fut;

    fn fill(self) -> Fut {
        self()
    }
}

/// Where one call stands. [`Job::run`] moves it on until it ends.
enum State<'a, T> {
    /// Nothing known yet: a fresh copy this process keeps answers at once.
    Start,
    /// A flight for the key may be under way in this process.
    Flight,
    /// Waiting for this process's flight to land, for at most one lease.
    /// `missed`: this caller's miss is counted already.
    Follow { follower: Follower, missed: bool },
    /// Reading the backend.
    Read,
    /// A value due for a refresh: one caller takes the fill lock and
    /// refreshes, everyone else keeps what they read.
    Contend(T, CasToken),
    /// A miss: lead this process's flight, or follow it.
    Join(Need),
    /// Leading the flight: waiting out other processes' leases until this
    /// caller holds one, or reads what they stored. `waiter` is registered
    /// at the first wait and kept for the next ones.
    Lead {
        leader: Leader<'a>,
        need: Need,
        waiter: Option<Waiter<'a>>,
    },
    /// Ends. Return this value.
    Done(T),
    /// Fill under the lease; for the flight, with its leader.
    Fill(Option<Leader<'a>>, LeaseToken),
    /// Replace a value past its time, holding the fill lock.
    Replace(Leader<'a>, LockGuard, CasToken),
    /// Out of patience with someone else's lease: fill, do not store.
    Unguarded(Leader<'a>),
    /// Return the stale value; someone (this caller) refreshes.
    Refresh(T, Refresher),
}

/// What [`Job::run`] leaves to its caller: a result, or a refresh to make.
enum Ran<F: Filler> {
    Done(Result<F::Value, F::Error>),
    /// A value due for a refresh, which this caller won, and the closure.
    Refresh(F::Value, Refresher, F),
}

/// `get_or_fill`: the caller that refreshes waits for its own fill.
pub(crate) async fn get_or_fill<C: Codec, P: StorePolicy<F::Value>, F: Filler>(
    scope: &Scope,
    codec: &C,
    key: &str,
    fill: &Fill<P>,
    f: F,
) -> Result<F::Value, F::Error> {
    let span = op_span!("get_or_fill", scope.backend_kind(), key);
    let outcome = async {
        fill.check()?;
        let job = Job::<C, P, F>::new(scope, codec, key, fill).await?;
        match job.run(f).await? {
            Ran::Done(outcome) => outcome,
            Ran::Refresh(_, by, f) => Box::pin(job.refresh(by, f)).await,
        }
    }
    .instrument(span.clone())
    .await;
    span.record("outcome", if outcome.is_ok() { "ok" } else { "error" });
    outcome
}

/// `get_or_fill_detached`: a caller that reads a value due for a refresh
/// returns it at once and the refresh runs on a spawned task.
pub(crate) async fn get_or_fill_detached<C, P, F>(
    scope: &Scope,
    codec: &C,
    key: &str,
    fill: &Fill<P>,
    f: F,
) -> Result<F::Value, F::Error>
where
    C: Codec,
    P: StorePolicy<F::Value> + Clone + Send + Sync + 'static,
    F: Filler + Send + 'static,
    F::Value: Send + 'static,
    F::Error: std::fmt::Display + Send + 'static,
    F::Filling: Send + 'static,
{
    let span = op_span!("get_or_fill_detached", scope.backend_kind(), key);
    let ran = async {
        fill.check()?;
        let job = Job::<C, P, F>::new(scope, codec, key, fill).await?;
        job.run(f).await
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
        let refreshed = match Job::<C, P, F>::new(&scope, &codec, &key, &fill).await {
            Ok(job) => job.refresh(by, f).await,
            Err(error) => Err(F::Error::from(error)),
        };
        if let Err(error) = refreshed {
            tracing::warn!(key, %error, "background refresh failed; the old value stays");
        }
    });
    Ok(stale)
}

impl<C: Codec, P: StorePolicy<F::Value>, F: Filler> Job<'_, C, P, F> {
    /// The loop: moves the call from [`State`] to state until it has a
    /// value, has filled, or won a refresh it leaves to its caller.
    async fn run(&self, f: F) -> Result<Ran<F>, F::Error> {
        // Every state past a hit runs boxed: inline, the fills' and the
        // waits' futures would make every hit move kilobytes.
        let mut state = State::Start;
        loop {
            state = match state {
                State::Start => self.start()?,
                State::Flight => self.flight(),
                State::Follow { follower, missed } => {
                    Box::pin(self.follow(follower, missed)).await?
                }
                // Not boxed: the hit's read.
                State::Read => self.first_read().await?,
                State::Contend(value, seen) => Box::pin(self.contend(value, seen)).await?,
                State::Join(need) => self.join(need),
                State::Lead {
                    leader,
                    need,
                    waiter,
                } => Box::pin(self.lead(leader, need, waiter)).await?,
                State::Done(value) => return Ok(Ran::Done(Ok(value))),
                State::Refresh(value, by) => return Ok(Ran::Refresh(value, by, f)),
                State::Fill(leader, lease) => {
                    let filled = Box::pin(self.fill_leased(leader.as_ref(), lease, f)).await;
                    return Ok(Ran::Done(filled));
                }
                State::Replace(leader, guard, seen) => {
                    let filled = Box::pin(self.fill_replacing(Some(&leader), guard, seen, f));
                    return Ok(Ran::Done(filled.await));
                }
                State::Unguarded(leader) => {
                    let filled = Box::pin(self.fill_unguarded(Some(&leader), f)).await;
                    return Ok(Ran::Done(filled));
                }
            };
        }
    }

    /// `Start`: a fresh copy (a near tier's) is a hit, without a backend
    /// call or a boxed future.
    fn start(&self) -> Result<State<'_, F::Value>> {
        if let Some(value) = copy::fresh_copy(self)? {
            observe::hits(self.scope.backend_kind(), "get_or_fill", 1);
            return Ok(State::Done(value));
        }
        Ok(State::Flight)
    }

    /// `Flight`: a fill for this key under way in this process is waited
    /// for without touching the backend.
    fn flight(&self) -> State<'_, F::Value> {
        match self.scope.flights().in_progress(&self.full_key) {
            Some(follower) => State::Follow {
                follower,
                missed: false,
            },
            None => State::Read,
        }
    }

    /// `Follow`: waits for the flight to land, for at most one lease: a
    /// leader still busy after that has outlived its lease (its value will
    /// not be stored), so the flight is abandoned for newcomers and the
    /// caller goes to the backend, where the lease has run out.
    async fn follow(&self, mut follower: Follower, missed: bool) -> Result<State<'_, F::Value>> {
        let landed = match tokio::time::timeout_at(self.next_wake(), follower.landed()).await {
            Ok(landed) => landed,
            Err(_) => {
                tracing::debug!(
                    key = self.key,
                    "the flight's leader outlived its lease; leaving it"
                );
                self.scope.flights().abandon(&self.full_key, &follower);
                None
            }
        };
        let Some(bytes) = landed else {
            return Ok(State::Flight); // it failed, was cancelled or could not store
        };
        if !missed {
            // Served by this process's fill: a hit for this caller.
            observe::hits(self.scope.backend_kind(), "get_or_fill", 1);
        }
        Ok(State::Done(self.decode(&bytes)?))
    }

    /// `Read`: the first read of the key: the backend's peek where it has
    /// one (behind a near tier, a copy, or "not asked": the flight's leader
    /// then reads with the lease, once per process).
    async fn first_read(&self) -> Result<State<'_, F::Value>> {
        let first = self.peek_or_read().await?;
        let kind = self.scope.backend_kind();
        Ok(match first {
            Step::Done(value, _) => {
                observe::hits(kind, "get_or_fill", 1);
                State::Done(value)
            }
            Step::Refresh(value, _, seen) => {
                observe::hits(kind, "get_or_fill", 1);
                State::Contend(value, seen)
            }
            Step::ServeStale(value, lease) => {
                observe::stale_served(kind);
                match lease {
                    Some(lease) => State::Refresh(value, Refresher::Lease(lease)),
                    None => State::Done(value),
                }
            }
            Step::Need(need) => {
                observe::misses(kind, "get_or_fill", 1);
                State::Join(need)
            }
        })
    }

    /// `Contend`: whoever takes the key's fill lock refreshes.
    async fn contend(&self, value: F::Value, seen: CasToken) -> Result<State<'_, F::Value>> {
        let lock = RedLock::in_scope(self.scope, self.key, self.fill.lease);
        Ok(match lock.try_acquire().await? {
            Some(guard) => State::Refresh(value, Refresher::Lock(guard, seen)),
            None => State::Done(value),
        })
    }

    /// `Join`: the first caller here to miss leads the flight.
    fn join(&self, need: Need) -> State<'_, F::Value> {
        match (self.scope.flights().join(&self.full_key), need) {
            (Joined::Lead(leader), need) => State::Lead {
                leader,
                need,
                waiter: None,
            },
            // Another caller here leads, waiting on a lease: ours (its read
            // came back busy before ours was granted). We fill outside the
            // flight; our store wakes the leader, which reads the value and
            // lands it for everyone.
            (Joined::Follow(_), Need::Lease(lease)) => State::Fill(None, lease),
            (Joined::Follow(follower), _) => State::Follow {
                follower,
                missed: true,
            },
        }
    }

    /// `Lead`: one step of this process's one caller for the key: what
    /// the last read said it needs, and the next read.
    async fn lead<'j>(
        &'j self,
        leader: Leader<'j>,
        need: Need,
        mut waiter: Option<Waiter<'j>>,
    ) -> Result<State<'j, F::Value>> {
        let step = match need {
            Need::Lease(lease) => return Ok(State::Fill(Some(leader), lease)),
            Need::Ask => self.read().await?,
            Need::Replace(_) | Need::Busy if self.out_of_patience() => {
                return Ok(State::Unguarded(leader))
            }
            Need::Replace(seen) => {
                let guard = RedLock::in_scope(self.scope, self.key, self.fill.lease)
                    .acquire()
                    .await?;
                if guard.holds_lock() {
                    return Ok(State::Replace(leader, guard, seen));
                }
                self.read().await? // waited for someone's replace
            }
            Need::Busy => self.wait_busy(&mut waiter).await?,
        };
        Ok(match step {
            Step::Done(value, bytes) | Step::Refresh(value, bytes, _) => {
                leader.land(bytes);
                State::Done(value)
            }
            Step::ServeStale(value, Some(lease)) => State::Refresh(value, Refresher::Lease(lease)),
            Step::ServeStale(value, None) => State::Done(value),
            Step::Need(need) => State::Lead {
                leader,
                need,
                waiter,
            },
        })
    }

    /// Someone else holds the lease: reads again and, while it is still
    /// busy, sleeps until a lease ends or the next wake.
    async fn wait_busy<'j>(&'j self, waiter: &mut Option<Waiter<'j>>) -> Result<Step<F::Value>> {
        let waiter = match waiter {
            Some(waiter) => waiter,
            None => {
                let registered = self.scope.fill_wakeups().register(&self.full_key);
                registered.watch_remote_fills(self.scope.backend()).await;
                waiter.insert(registered)
            }
        };
        // Enabled before the re-read, so a lease that ends right after it
        // still wakes us.
        let mut notified = pin!(waiter.notified());
        notified.as_mut().enable();
        let step = self.read().await?;
        if let Step::Need(Need::Busy) = step {
            tokio::select! {
                () = notified => tracing::debug!(key = self.key, "woken: a fill lease ended"),
                () = tokio::time::sleep_until(self.next_wake()) => {}
            }
        }
        Ok(step)
    }
}
