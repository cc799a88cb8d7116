//! [`Retry`] and the body of `update`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::frame::Meta;
use crate::codec::{decode, encode, Codec};

use crate::key::check_ttl;
use crate::observe::{self, op_span};
use crate::{Error, LeaseGuard, OptimisticLock, RedLock, Result, Scope};

/// Conflicts an [`update`](crate::Cache::update) retries optimistically
/// before it queues on the key's lock (see [`Retry`]).
const CONFLICTS_BEFORE_LOCK: u32 = 3;

/// The lease of the lock an escalated [`update`](crate::Cache::update)
/// holds for its read-modify-write: it only bounds how long other updaters
/// wait if the holder dies; correctness rests on compare-and-set.
const UPDATE_LEASE: Duration = Duration::from_secs(5);

/// How [`update`](crate::Cache::update) retries on conflict: up to
/// `max_attempts` tries in all. The first few conflicts are retried
/// optimistically, sleeping a random time between zero and an exponentially
/// growing cap between them ("full jitter"), so that contending writers
/// spread out instead of colliding again in lockstep. After
/// three conflicts the update escalates: it takes the key's lock
/// ([`RedLock::lock`](crate::RedLock::lock) on `<key>-lock`, with a 5 s
/// lease that only matters if the holder dies) and retries under it at once, so contending updaters
/// queue on the lock instead of colliding until their attempts run out. Under
/// the lock only updaters still in their optimistic tries (and plain writes)
/// can make an attempt conflict.
///
/// ```
/// use std::time::Duration;
/// use stampede::typed::Retry;
///
/// let patient = Retry::default().max_attempts(1_000).backoff(Duration::from_millis(1), Duration::from_millis(200));
/// # let _ = patient;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Retry {
    max_attempts: u32,
    first_cap: Duration,
    max_cap: Duration,
}

impl Default for Retry {
    /// 100 attempts; backoff caps from 500 µs doubling to 50 ms.
    fn default() -> Self {
        Retry {
            max_attempts: 100,
            first_cap: Duration::from_micros(500),
            max_cap: Duration::from_millis(50),
        }
    }
}

impl Retry {
    /// At most `attempts` tries in all (at least one).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff cap after the first conflict, and the most it grows to.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_cap = first;
        self.max_cap = max.max(first);
        self
    }

    /// The pause after conflict number `conflicts` (1-based).
    fn pause(&self, conflicts: u32) -> Duration {
        let growth = 1u32 << conflicts.saturating_sub(1).min(16);
        let cap = self.first_cap.saturating_mul(growth).min(self.max_cap);
        cap.mul_f64(fastrand::f64())
    }
}

pub(crate) async fn update<C, T, F>(
    scope: &Scope,
    codec: &C,
    key: &str,
    ttl: Option<Duration>,
    retry: &Retry,
    mut f: F,
) -> Result<T>
where
    C: Codec,
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> T,
{
    let span = op_span!("update", scope.backend_kind(), key);
    observe::traced(span, async {
        let ttl = scope.ttl_or_default(ttl);
        check_ttl(ttl)?;
        // Held once the update has escalated; released (or, on an error,
        // dropped, which releases in the background) when it ends.
        let mut queued: Option<LeaseGuard> = None;
        for attempt in 1..=retry.max_attempts {
            if queued.is_none() && attempt > CONFLICTS_BEFORE_LOCK {
                tracing::trace!(
                    key,
                    attempt,
                    "update keeps conflicting; taking the key's lock"
                );
                queued = Some(RedLock::in_scope(scope, key, UPDATE_LEASE).lock().await?);
            }
            let lock = OptimisticLock::acquire_in(scope, key).await?;
            let old = match lock.value() {
                Some(bytes) => Some(decode(codec, key, bytes)?.1),
                None => None,
            };
            let new = f(old);
            let bytes = encode(codec, key, &new, Meta::fresh_for(ttl, Duration::ZERO))?;
            match lock.cas(bytes, ttl).await {
                Ok(()) => {
                    release(queued, key).await;
                    return Ok(new);
                }
                Err(error) if error.is_conflict() => {
                    tracing::trace!(key, attempt, "update conflicted; retrying");
                    // Under the lock, retry at once: the holder's turn is
                    // what the queue is for.
                    if attempt < retry.max_attempts && queued.is_none() {
                        tokio::time::sleep(retry.pause(attempt)).await;
                    }
                }
                Err(error) => return Err(error),
            }
        }
        release(queued, key).await;
        Err(Error::TooManyConflicts {
            key: key.to_owned(),
            attempts: retry.max_attempts,
        })
    })
    .await
}

/// Lets the next queued updater in. The update's outcome is already
/// decided; a failed release only delays the next one (the guard's drop
/// retries in the background, and the lease bounds it).
async fn release(queued: Option<LeaseGuard>, key: &str) {
    if let Some(guard) = queued {
        if let Err(error) = guard.release().await {
            tracing::debug!(key, %error, "releasing the update's lock failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_stay_under_a_growing_cap() {
        let retry = Retry::default().backoff(Duration::from_millis(1), Duration::from_millis(8));
        for conflicts in 1..40 {
            let cap = Duration::from_millis(1 << (conflicts - 1).min(3));
            assert!(retry.pause(conflicts) <= cap, "conflict {conflicts}");
        }
        assert_eq!(Retry::default().max_attempts(0).max_attempts, 1);
    }
}
