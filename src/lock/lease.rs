//! [`LeaseGuard`]: an exclusive lease from [`RedLock::lock`](crate::RedLock::lock)
//! or [`RedLock::try_lock`](crate::RedLock::try_lock), with renewal, loss
//! detection and a fencing token.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::claim::Claim;
use crate::backend::Backend;
use crate::clock::deadline;
use crate::key::check_lease;
use crate::Result;

/// Where a [`LeaseGuard`] stands. Watch it with [`LeaseGuard::watch_state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseState {
    /// We hold the lock and the lease is fresh.
    Held,
    /// Renewals keep failing with errors and less than half of the lease is
    /// left (the DynamoDB lock client's "in danger"): finish or abort quickly.
    /// Failed renewals are retried sooner than usual; the state goes back to
    /// `Held` if one succeeds, and to `Lost` if none does before the lease
    /// runs out.
    InDanger,
    /// The lock is not ours any more: the lease ran out, or the record was
    /// deleted or taken by another owner. Stop acting on its behalf.
    Lost,
    /// We released it.
    Released,
}

/// What the guard and its renewal task share.
struct Lease {
    claim: Claim,
    key: String,
    lease: Duration,
    fence: u64,
    state: watch::Sender<LeaseState>,
    /// When the lease runs out as far as we know: moved by every successful
    /// renewal, measured from before the request was sent.
    expires_at: Mutex<Instant>,
}

impl Lease {
    fn expires_at(&self) -> Instant {
        *self
            .expires_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_over(&self) -> bool {
        matches!(
            *self.state.borrow(),
            LeaseState::Lost | LeaseState::Released
        )
    }

    fn renewed(&self, until: Instant) {
        *self
            .expires_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = until;
        self.state.send_if_modified(|state| {
            let was_in_danger = *state == LeaseState::InDanger;
            if was_in_danger {
                *state = LeaseState::Held;
            }
            was_in_danger
        });
    }

    fn mark_lost(&self, why: &str) {
        let changed = self.state.send_if_modified(|state| {
            let still_held = matches!(*state, LeaseState::Held | LeaseState::InDanger);
            if still_held {
                *state = LeaseState::Lost;
            }
            still_held
        });
        if changed {
            crate::observe::lease_lost(self.claim.scope().backend_kind());
            tracing::warn!(lock = self.claim.key(), why, "lease lost");
        }
    }

    async fn extend_by(&self, lease: Duration) -> Result<bool> {
        let asked = Instant::now();
        let extended = self
            .claim
            .scope()
            .backend()
            .extend(self.claim.key(), self.claim.owner(), lease)
            .await?;
        if extended {
            self.renewed(deadline(asked, lease));
            tracing::debug!(lock = self.claim.key(), ?lease, "renewed");
        } else {
            self.mark_lost("the record is gone or has another owner");
        }
        Ok(extended)
    }
}

/// Keeps the lease alive every `period` until the lease is over or the guard
/// is gone. A failed renewal is retried sooner (a quarter period, or half of
/// what is left), so a passing outage can heal before the lease runs out.
async fn renew(lease: Weak<Lease>, period: Duration) {
    let mut next = deadline(Instant::now(), period);
    loop {
        tokio::time::sleep_until(next).await;
        let Some(lease) = lease.upgrade() else { return };
        if lease.is_over() {
            return;
        }
        match lease.extend_by(lease.lease).await {
            Ok(true) => next = deadline(Instant::now(), period),
            Ok(false) => return,
            Err(error) => {
                let left = lease.expires_at().saturating_duration_since(Instant::now());
                if left.is_zero() {
                    lease.mark_lost("renewals failed until the lease ran out");
                    return;
                }
                tracing::warn!(lock = lease.claim.key(), %error, ?left, "lease renewal failed");
                if left < lease.lease / 2 {
                    lease.state.send_if_modified(|state| {
                        let now_in_danger = *state == LeaseState::Held;
                        if now_in_danger {
                            tracing::warn!(lock = lease.claim.key(), ?left, "lease in danger");
                            *state = LeaseState::InDanger;
                        }
                        now_in_danger
                    });
                }
                let retry_in = (period / 4).min(left / 2).max(Duration::from_millis(1));
                next = deadline(Instant::now(), retry_in);
            }
        }
    }
}

/// An exclusive lease on a lock: while you hold it and it is not
/// [lost](LeaseGuard::lost), nobody else does.
///
/// Made by [`RedLock::lock`](crate::RedLock::lock) and
/// [`RedLock::try_lock`](crate::RedLock::try_lock). With
/// [`auto_renew`](crate::RedLock::auto_renew) a background task extends the
/// lease every `lease / 3` (owner-checked) for as long as the guard lives.
///
/// A lease can be lost even so: the process stalls past its lease, the
/// backend loses the record, someone deletes it. Watch for it with
/// [`lost`](LeaseGuard::lost) or [`watch_state`](LeaseGuard::watch_state),
/// and protect downstream writes with the [fencing token](LeaseGuard::fencing_token).
///
/// Dropping the guard releases the lock from a background task (Rust has no
/// async drop); [`release`](LeaseGuard::release) does it now and reports
/// errors.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stampede::Result<()> {
/// use std::time::Duration;
/// use stampede::{Cache, RedLock};
///
/// let cache = Cache::memory();
/// let lock = RedLock::new(&cache, "job:42", Duration::from_secs(10)).auto_renew(true);
///
/// let guard = lock.lock().await?;
/// let err = lock.try_lock().await.unwrap_err(); // held: try_lock does not wait
/// assert!(err.is_locked());
///
/// let token = guard.fencing_token();
/// tokio::select! {
///     () = guard.lost() => panic!("lease lost"),
///     () = async { /* the work, writing `token` alongside */ } => {}
/// }
/// guard.release().await?;
///
/// let next = lock.lock().await?;
/// assert!(next.fencing_token() > token);
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping the guard releases the lock"]
pub struct LeaseGuard {
    lease: Arc<Lease>,
    renewal: Option<AbortHandle>,
}

impl LeaseGuard {
    /// Wraps a claim whose create succeeded with fencing token `fence`;
    /// `asked` is when the create was sent.
    pub(crate) fn new(
        claim: Claim,
        key: String,
        fence: u64,
        lease: Duration,
        asked: Instant,
        auto_renew: bool,
    ) -> LeaseGuard {
        claim.mark_held();
        let lease = Arc::new(Lease {
            claim,
            key,
            lease,
            fence,
            state: watch::Sender::new(LeaseState::Held),
            expires_at: Mutex::new(deadline(asked, lease)),
        });
        let renewal = auto_renew.then(|| {
            let period = (lease.lease / 3).max(Duration::from_millis(1));
            tokio::spawn(renew(Arc::downgrade(&lease), period)).abort_handle()
        });
        tracing::debug!(lock = lease.claim.key(), fence, "locked");
        LeaseGuard { lease, renewal }
    }

    /// The key this lock guards, as given to [`RedLock::new`](crate::RedLock::new).
    pub fn key(&self) -> &str {
        &self.lease.key
    }

    /// The fencing token of this lease: strictly greater than the token of
    /// every earlier holder of the same lock, in any process.
    ///
    /// Store it next to whatever the lock protects and have the store refuse
    /// writes that carry a smaller token than the last one it accepted. A
    /// holder that stalled past its lease (and lost the lock without
    /// noticing) then cannot overwrite its successor's work: its token is
    /// smaller. For example, in SQL:
    /// `UPDATE jobs SET result = $1, fence = $2 WHERE id = $3 AND fence < $2`.
    pub fn fencing_token(&self) -> u64 {
        self.lease.fence
    }

    /// Where the lease stands now.
    pub fn state(&self) -> LeaseState {
        *self.lease.state.borrow()
    }

    /// A receiver that sees every change of [`state`](LeaseGuard::state).
    pub fn watch_state(&self) -> watch::Receiver<LeaseState> {
        self.lease.state.subscribe()
    }

    /// Asks the backend whether the record still carries our owner token.
    /// `Ok(false)` (and the guard becomes [`LeaseState::Lost`]) when it does
    /// not.
    ///
    /// # Errors
    ///
    /// A backend failure; the state is left as it was.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn is_still_valid(&self) -> Result<bool> {
        if self.lease.is_over() {
            return Ok(false);
        }
        let claim = &self.lease.claim;
        let record = claim.scope().backend().lock_record(claim.key()).await?;
        let ours = record.is_some_and(|record| record.owner == claim.owner());
        if !ours {
            self.lease
                .mark_lost("the record is gone or has another owner");
        }
        Ok(ours)
    }

    /// Resets the lease to `lease` from now, if the record is still ours.
    /// `Ok(false)` (and the guard becomes [`LeaseState::Lost`]) if it is not.
    ///
    /// # Errors
    ///
    /// A zero `lease`, or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped the extension may or may not have happened;
    /// the lease is still at least what it was.
    pub async fn extend(&self, lease: Duration) -> Result<bool> {
        check_lease(lease)?;
        if self.lease.is_over() {
            return Ok(false);
        }
        self.lease.extend_by(lease).await
    }

    /// Resolves when the lease is lost: a renewal or check found the record
    /// gone or taken, renewals failed until the lease ran out, or (without
    /// auto-renew) the lease simply ran out. Never resolves while the lease
    /// holds, nor after [`release`](LeaseGuard::release).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; use it in `tokio::select!` against the work.
    pub async fn lost(&self) {
        let mut state = self.lease.state.subscribe();
        loop {
            // Copied out: the borrow must not live across an await.
            let current = *state.borrow_and_update();
            match current {
                LeaseState::Lost => return,
                LeaseState::Released => std::future::pending::<()>().await,
                LeaseState::Held | LeaseState::InDanger => {}
            }
            let expires_at = self.lease.expires_at();
            tokio::select! {
                changed = state.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                () = tokio::time::sleep_until(expires_at) => {
                    if Instant::now() >= self.lease.expires_at() {
                        self.lease.mark_lost("the lease ran out");
                    }
                }
            }
        }
    }

    /// Stops renewing and releases the lock if the record is still ours.
    /// `Ok(true)` when our record was removed, `Ok(false)` when it was
    /// already gone or someone else's, or on a second call.
    ///
    /// # Errors
    ///
    /// A backend failure. Renewal has stopped either way; the guard still
    /// counts as holding, so calling again (or dropping it) retries.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the guard's `Drop` releases in the background.
    pub async fn release(&self) -> Result<bool> {
        if let Some(renewal) = &self.renewal {
            renewal.abort();
        }
        let removed = self.lease.claim.release().await?;
        self.lease.state.send_replace(LeaseState::Released);
        Ok(removed)
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(renewal) = &self.renewal {
            renewal.abort();
        }
        // The claim inside releases the record when the last Arc goes.
    }
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("lock", &self.lease.claim.key())
            .field("fence", &self.lease.fence)
            .field("state", &self.state())
            .field("auto_renew", &self.renewal.is_some())
            .finish()
    }
}
