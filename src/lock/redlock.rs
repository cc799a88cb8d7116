//! [`RedLock`]: a lease lock on `<key>-lock`.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::claim::Claim;
use super::guard::LockGuard;
use super::lease::LeaseGuard;

use crate::backend::{Backend, Fencing, LockAttempt};
use crate::clock;
use crate::key::check_lease;
use crate::observe::{self, op_span};
use crate::{Error, Result, Scope};

/// A lease lock on the record `<key>-lock`, with aiocache's `RedLock`
/// semantics for [`acquire`](RedLock::acquire): a stampede guard.
///
/// The first caller to [`acquire`](RedLock::acquire) creates the record (a
/// fresh uuid v4, with a TTL of `lease`) and holds the lock. Every other
/// caller waits until the holder releases it (woken at once, not by polling)
/// or its lease runs out, whichever comes first, and then goes on *without*
/// the lock. A caller never waits longer than `lease`. This bounds how many
/// callers run an expensive fill; it is not mutual exclusion.
///
/// Waiters in this process share one wake-up per key through the
/// [`Cache`](crate::Cache); waiters in other processes are woken by the backend where it
/// can (Redis pub/sub) and otherwise fall back to re-checking or the lease.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stampede::Result<()> {
/// use std::time::Duration;
/// use stampede::{Cache, RedLock};
///
/// let cache = Cache::memory();
/// let lock = RedLock::new(&cache, "report", Duration::from_millis(500));
///
/// let guard = lock.acquire().await?;
/// if guard.holds_lock() {
///     // We fill; everyone else waits for us (at most the lease).
///     cache.set("report", b"expensive", None).await?;
///     guard.release().await?;
/// }
/// // Holder or not, the value is (very likely) there now.
/// assert!(cache.get("report").await?.is_some());
/// # Ok(())
/// # }
/// ```
///
/// A `RedLock` is cheap to clone and can be acquired many times; each
/// [`acquire`](RedLock::acquire) is an independent attempt with a fresh owner
/// token.
#[derive(Clone)]
pub struct RedLock {
    scope: Scope,
    key: String,
    /// The record's key, built once; `None` when `key` is invalid (the error
    /// is reported by each acquire).
    lock_key: Option<Arc<str>>,
    lease: Duration,
    wait_timeout: Option<Duration>,
    auto_renew: bool,
}

impl RedLock {
    /// [`RedLock::new`] on a handle's scope.
    pub(crate) fn in_scope(scope: &Scope, key: impl Into<String>, lease: Duration) -> Self {
        let key = key.into();
        let lock_key = scope.namespace().lock_key(&key).ok().map(Arc::from);
        RedLock {
            scope: scope.clone(),
            key,
            lock_key,
            lease,
            wait_timeout: None,
            auto_renew: false,
        }
    }

    /// How long [`lock`](RedLock::lock) waits for the lock before failing
    /// with a timeout. Default: no limit, wait until held.
    #[must_use]
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = Some(timeout);
        self
    }

    /// Whether leases from [`lock`](RedLock::lock) and
    /// [`try_lock`](RedLock::try_lock) are renewed in the background every
    /// `lease / 3` while their guard lives. Default: `false` (the lease runs
    /// out after `lease` unless [`extend`](LeaseGuard::extend)ed).
    #[must_use]
    pub fn auto_renew(mut self, renew: bool) -> Self {
        self.auto_renew = renew;
        self
    }

    /// The key this lock guards, as given to [`new`](RedLock::new).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease: how long a record lives, and the longest any caller waits.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn checked_lock_key(&self) -> Result<Arc<str>> {
        check_lease(self.lease)?;
        match &self.lock_key {
            Some(lock_key) => Ok(Arc::clone(lock_key)),
            // Rebuilding it yields the error that stopped `new` from building it.
            None => self.scope.namespace().lock_key(&self.key).map(Arc::from),
        }
    }

    /// Takes the lock if it is free; otherwise waits until its holder
    /// releases it or its lease runs out, and returns without it. One
    /// backend round trip when the lock is free.
    ///
    /// Check [`LockGuard::holds_lock`] to learn which happened.
    ///
    /// # Errors
    ///
    /// An empty key or zero lease ([`Error::is_invalid_input`](crate::Error::is_invalid_input)),
    /// or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. A task cancelled while waiting unregisters its waiter and
    /// leaves nothing behind. Cancelled while the create was in flight, it
    /// releases the record in the background in case the create landed.
    pub async fn acquire(&self) -> Result<LockGuard> {
        let span = op_span!("acquire", self.scope.backend_kind(), &*self.key);
        observe::traced(span, async {
            if let Some(guard) = self.attempt_acquire().await? {
                tracing::debug!(lock = self.key, "acquired");
                return Ok(guard);
            }
            // Boxed: the wait's future is several times the size of the
            // attempt's, and would otherwise be moved on every uncontended
            // acquire too.
            Box::pin(self.wait_unheld()).await
        })
        .await
    }

    /// `acquire` after a failed attempt: waits for the holder.
    async fn wait_unheld(&self) -> Result<LockGuard> {
        let started = Instant::now();
        let lock_key = self.checked_lock_key()?;
        let woken = self
            .wait_for_release(&lock_key, clock::deadline(started, self.lease))
            .await?;
        let kind = self.scope.backend_kind();
        crate::observe::lock_wait(kind, "released", started.elapsed());
        Ok(LockGuard::waited(woken))
    }

    /// Waits until *we* hold the lock, exclusively, and returns its lease.
    ///
    /// Waiting works as for [`acquire`](RedLock::acquire): woken by the
    /// holder's release (in this process at once; in others through the
    /// backend's signal), or when the holder's lease runs out. Each wake-up
    /// costs one attempt, so many waiters do not hammer the backend.
    ///
    /// # Errors
    ///
    /// [`Error::LockTimeout`] ([`is_timeout`](Error::is_timeout)) once
    /// [`wait_timeout`](RedLock::wait_timeout) has passed; bad input or a
    /// backend failure.
    ///
    /// A lost or refused connection (an [`Error::Backend`] caused by an I/O
    /// failure: a restarted server, a failover) is not returned at once: the
    /// attempt is retried, with a jittered backoff from 10 ms doubling to
    /// 500 ms, until the wait timeout passes or, without one, for one lease
    /// of consecutive failures; only then is the last connection error
    /// returned. Other backend failures, and a backend call that timed out
    /// (its create may have landed), end the wait at once.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled wait leaves nothing behind, and a create
    /// that was in flight is released in the background.
    pub async fn lock(&self) -> Result<LeaseGuard> {
        let span = op_span!("lock", self.scope.backend_kind(), &*self.key);
        observe::traced(span, async {
            let lock_key = self.checked_lock_key()?;
            let started = Instant::now();
            let deadline = self
                .wait_timeout
                .map(|timeout| clock::deadline(started, timeout));
            if let Ok(guard) = self.attempt_riding_out(&lock_key, deadline).await? {
                return Ok(guard);
            }
            let backend = self.scope.backend();
            let waiter = self.scope.wakeups().register(&lock_key);
            waiter.watch_remote_releases(backend).await;
            tracing::debug!(lock = &*lock_key, "waiting to lock");
            loop {
                // Enabled before the attempt, so a release right after a failed
                // attempt still wakes us.
                let mut notified = pin!(waiter.notified());
                notified.as_mut().enable();
                let remaining = match self.attempt_riding_out(&lock_key, deadline).await? {
                    Ok(guard) => {
                        let kind = backend.kind();
                        crate::observe::lock_wait(kind, "acquired", started.elapsed());
                        return Ok(guard);
                    }
                    Err(remaining) => remaining,
                };
                let now = Instant::now();
                if deadline.is_some_and(|deadline| now >= deadline) {
                    crate::observe::lock_wait(backend.kind(), "timeout", now - started);
                    return Err(Error::LockTimeout {
                        key: self.key.clone(),
                        waited: now - started,
                    });
                }
                // Try again when the holder's record is sure to be gone, if
                // nobody wakes us first: not sooner, so a short lease that the
                // backend keeps longer (memcached: whole seconds) is not
                // hammered with attempts.
                let retry_at = clock::deadline(
                    now,
                    remaining
                        .unwrap_or_else(|| backend.lease_life(self.lease))
                        .max(Duration::from_millis(1)),
                );
                let wake_at = deadline.map_or(retry_at, |deadline| deadline.min(retry_at));
                tokio::select! {
                    () = notified => tracing::debug!(lock = &*lock_key, "woken"),
                    () = tokio::time::sleep_until(wake_at) => {}
                }
            }
        })
        .await
    }

    /// Takes the lock if it is free, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] ([`is_locked`](Error::is_locked)) when someone
    /// holds it; [`Error::remaining_lease`] tells how long until the holder's
    /// lease runs out, when the backend knows. Bad input or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a create that was in flight is released in the background.
    pub async fn try_lock(&self) -> Result<LeaseGuard> {
        let span = op_span!("try_lock", self.scope.backend_kind(), &*self.key);
        observe::traced(span, async {
            let lock_key = self.checked_lock_key()?;
            match self.attempt(&lock_key).await? {
                Ok(guard) => Ok(guard),
                Err(Some(remaining)) => Err(self.locked(Some(remaining))),
                Err(None) => {
                    let record = self.scope.backend().lock_record(&lock_key).await?;
                    Err(self.locked(record.and_then(|record| record.remaining)))
                }
            }
        })
        .await
    }

    fn locked(&self, remaining: Option<Duration>) -> Error {
        Error::Locked {
            key: self.key.clone(),
            remaining,
        }
    }

    /// [`attempt`](Self::attempt), retried while the connection is lost (see
    /// [`lock`](RedLock::lock)'s errors): until `deadline`, or without one
    /// for one lease from the first failure.
    async fn attempt_riding_out(
        &self,
        lock_key: &Arc<str>,
        deadline: Option<Instant>,
    ) -> Result<Result<LeaseGuard, Option<Duration>>> {
        let mut failures = 0u32;
        let mut give_up_at = deadline;
        loop {
            let error = match self.attempt(lock_key).await {
                Err(error) if is_connection_loss(&error) => error,
                outcome => return outcome,
            };
            let now = Instant::now();
            let give_up = *give_up_at.get_or_insert_with(|| clock::deadline(now, self.lease));
            if now >= give_up {
                return Err(error);
            }
            failures += 1;
            let cap = CONNECTION_BACKOFF_FIRST
                .saturating_mul(1 << failures.saturating_sub(1).min(16))
                .min(CONNECTION_BACKOFF_MAX);
            let pause = cap.mul_f64(0.5 + fastrand::f64() / 2.0);
            tracing::debug!(lock = &**lock_key, %error, ?pause, "connection lost while locking; retrying");
            tokio::time::sleep_until(give_up.min(clock::deadline(now, pause))).await;
        }
    }

    /// One fenced attempt: the guard, or the holder's remaining lease when
    /// the backend said.
    async fn attempt(&self, lock_key: &Arc<str>) -> Result<Result<LeaseGuard, Option<Duration>>> {
        let backend = self.scope.backend();
        let claim = Claim::new(&self.scope, Arc::clone(lock_key));
        let asked = Instant::now();
        match backend
            .try_lock(lock_key, claim.owner(), self.lease, Fencing::Issue)
            .await?
        {
            LockAttempt::Acquired { fence: Some(fence) } => Ok(Ok(LeaseGuard::new(
                claim,
                self.key.clone(),
                fence,
                self.lease,
                asked,
                self.auto_renew,
            ))),
            // A backend that breaks the contract; the claim's drop releases.
            LockAttempt::Acquired { fence: None } => Err(Error::backend(
                backend.kind(),
                "try_lock",
                "the backend took the lock but issued no fencing token",
            )),
            LockAttempt::Held { remaining } => {
                claim.disarm();
                Ok(Err(remaining))
            }
        }
    }

    /// Takes the lock if it is free and returns `None` at once if it is not:
    /// [`acquire`](RedLock::acquire) without the wait. One round trip.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    /// let cache = stampede::Cache::memory();
    /// let lock = stampede::RedLock::new(&cache, "refresh", Duration::from_secs(5));
    /// let first = lock.try_acquire().await?.expect("free");
    /// assert!(lock.try_acquire().await?.is_none());
    /// first.release().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Bad input or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a create that was in flight is released in the background.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>> {
        let span = op_span!("try_acquire", self.scope.backend_kind(), &*self.key);
        observe::traced(span, self.attempt_acquire()).await
    }

    /// One attempt at the stampede guard's record: `try_acquire` without
    /// its span (`acquire` has its own).
    async fn attempt_acquire(&self) -> Result<Option<LockGuard>> {
        let lock_key = self.checked_lock_key()?;
        let claim = Claim::new(&self.scope, lock_key);
        let attempt = self
            .scope
            .backend()
            .try_lock(claim.key(), claim.owner(), self.lease, Fencing::Skip)
            .await?;
        match attempt {
            LockAttempt::Acquired { .. } => Ok(Some(LockGuard::holding(claim))),
            LockAttempt::Held { .. } => {
                claim.disarm();
                Ok(None)
            }
        }
    }

    /// Waits until the record at `lock_key` is released (`true`) or the
    /// holder's lease or `deadline` passes (`false`).
    async fn wait_for_release(&self, lock_key: &str, deadline: Instant) -> Result<bool> {
        let backend = self.scope.backend();
        let waiter = self.scope.wakeups().register(lock_key);
        let mut notified = pin!(waiter.notified());
        notified.as_mut().enable();
        waiter.watch_remote_releases(backend).await;

        // Registered and watching: a release from now on wakes us, so a
        // record still present here cannot be released unseen.
        let deadline = match backend.lock_record(lock_key).await? {
            None => {
                tracing::debug!(lock = lock_key, "released before we waited");
                return Ok(true);
            }
            Some(record) => match record.remaining {
                Some(remaining) => deadline.min(clock::deadline(Instant::now(), remaining)),
                None => deadline,
            },
        };
        tracing::debug!(lock = lock_key, "waiting");
        tokio::select! {
            () = notified => {
                tracing::debug!(lock = lock_key, "woken by release");
                Ok(true)
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!(lock = lock_key, "lease ran out while waiting");
                Ok(false)
            }
        }
    }
}

/// The first pause after a lost connection in [`RedLock::lock`], doubled on
/// each failure in a row up to [`CONNECTION_BACKOFF_MAX`].
const CONNECTION_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const CONNECTION_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Whether `error` is a backend failure caused by the transport (an I/O
/// error anywhere in its sources): a connection lost or refused, which a
/// later attempt on a new connection may not meet. A server's reply, a
/// protocol error or a timeout is not.
fn is_connection_loss(error: &Error) -> bool {
    let Error::Backend { source, .. } = error else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(error) = cause {
        if error.is::<std::io::Error>() {
            return true;
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = error.downcast_ref::<redis::RedisError>() {
            if redis.is_io_error() || redis.is_connection_dropped() || redis.is_connection_refusal()
            {
                return true;
            }
        }
        cause = error.source();
    }
    false
}

impl std::fmt::Debug for RedLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedLock")
            .field("key", &self.key)
            .field("lease", &self.lease)
            .field("wait_timeout", &self.wait_timeout)
            .field("auto_renew", &self.auto_renew)
            .finish()
    }
}
