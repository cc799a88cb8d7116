//! Lock records on memcached: create, owner-checked release and extend,
//! and fencing tokens.
//!
//! Owner checks use the CAS unique, and `C<cas>`, which the server applies
//! only if nobody has written the key since that CAS was current:
//!
//! - **one round trip**, the normal case: the create (`ms <key> ME T<lease>
//!   c`) and every extend (`ms <key> C<cas> T<lease> c`) return the record's
//!   new CAS, which the backend remembers (see the `remembered` module), so
//!   release is just `md <key> C<cas>` and extend just the conditional
//!   rewrite;
//! - **two round trips**, when nothing is remembered (a record created by
//!   another handle or before this process restarted, or an entry swept
//!   after its lease ran out): read the record with `mg <key> v c`, compare
//!   the value with the owner here, then act with `C<cas>`.
//!
//! Either way a holder whose lease ran out cannot delete or extend the
//! record of whoever took the lock after it: that record has a new CAS
//! unique.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memcache::exp::{Arithmetic, MutationStatus, Set, Ttl};
use tokio::time::Instant;

use super::client::unexpected;
use super::create::Created;
use super::near::LOCK_RECORD_FLAGS;
use super::{keys, ttl, MemcachedBackend};
use crate::backend::{Fencing, LockAttempt};
use crate::Result;

impl MemcachedBackend {
    /// `ms <key> ME T<lease> c`, remembering the new record's CAS, then for
    /// [`Fencing::Issue`] the fencing counter. See
    /// [`issue_fence`](Self::issue_fence).
    ///
    /// The create runs on a task of its own that always sees its answer
    /// (the `create` module): a record created for a caller that is gone
    /// (dropped, timed out) or that failed before it was done with it is
    /// given back, never left held by nobody.
    pub(super) async fn lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        let record = keys::wire_key(key)?;
        let counter = match fencing {
            Fencing::Issue => Some(keys::fence_key(key)?),
            Fencing::Skip => None,
        };
        let exptime = ttl::exptime(lease, "lease")?;
        self.check_size(key, owner)?;
        self.bounded("try_lock", async {
            let started = Instant::now();
            let create = Set::new(&*record, owner)
                .add()
                .ttl(exptime)
                .client_flags(LOCK_RECORD_FLAGS);
            let lease_end = crate::clock::deadline(started, lease);
            let landed = match self
                .creates
                .create(&record, owner, create, lease_end)
                .await?
            {
                Created::Landed(landed) => landed,
                Created::Held => return Ok(LockAttempt::Held { remaining: None }),
            };
            let attempt = match counter {
                None => Ok(LockAttempt::Acquired { fence: None }),
                // The record outlives the lease rounded up to whole seconds
                // (the `ttl` module): that is the window in which a token
                // is still safe, and the smallest lease it offers.
                Some(counter) => {
                    let window = ttl::honoured(lease);
                    self.issue_fence(&record, &counter, owner, window, started)
                        .await
                }
            };
            // On an error the record may still be ours: `landed` gives it back.
            if attempt.is_ok() {
                landed.keep();
            }
            attempt
        })
        .await
    }

    /// Increments the fencing counter of a record we just created, with
    /// `ma <counter> N<life> J<seed> T<life>`: created on first use with the
    /// current Unix time in microseconds as its value, and on every use set
    /// to expire [`FENCE_OUTLIVES_LEASE`] after the lease ends.
    ///
    /// **Why the seed.** memcached may evict the counter (it is an item like
    /// any other). Seeded with the time, a re-created counter starts above
    /// every token handed out before, provided the key saw fewer than one
    /// acquisition per microsecond on average since it was first created,
    /// and the clocks of the machines that take the lock agree to within
    /// the time since then.
    ///
    /// **Why the lease check.** Tokens must rise in the order holders held
    /// the lock. Another owner can only create the record once ours has
    /// expired at the server, which is never before our lease has run out
    /// measured from `started` (just before our create was sent; see the
    /// `ttl` module). So if the increment's answer is back before then, our
    /// increment reached the server before any later holder's could. If it
    /// comes back later, we may have stalled past our lease while a newer
    /// holder took the lock and a lower token: our token would then be
    /// above theirs and let a stale holder win. We give the record back and
    /// report the lock as held instead.
    ///
    /// **Why the counter may expire.** The seed is what keeps tokens rising
    /// across a re-created counter, whether memcached evicted it or it
    /// expired; the counter's lifetime only widens the margin for clocks
    /// that disagree (see [`FENCE_OUTLIVES_LEASE`]). So idle counters go,
    /// rather than leaving one item per lock name forever.
    async fn issue_fence(
        &self,
        record: &str,
        counter: &[u8],
        owner: &[u8],
        lease: Duration,
        started: Instant,
    ) -> Result<LockAttempt> {
        // `N` gives a counter this creates its lifetime, `T` resets that of
        // one that exists; the same value, so their order does not matter.
        let life = ttl::raw_exptime(lease.saturating_add(FENCE_OUTLIVES_LEASE));
        let increment = Arithmetic::new(counter)
            .initial(unix_micros(), life)
            .ttl_raw(life);
        match self.client.count("try_lock", increment).await {
            Ok(fence) if started.elapsed() < lease => {
                Ok(LockAttempt::Acquired { fence: Some(fence) })
            }
            Ok(fence) => {
                tracing::warn!(
                    lock = record,
                    fence,
                    waited = ?started.elapsed(),
                    ?lease,
                    "the fencing token came back after the lease ended; giving the lock back"
                );
                self.release_record("try_lock", record, owner).await?;
                Ok(LockAttempt::Held { remaining: None })
            }
            Err(error) => {
                // We hold a record but have no token: give it back rather
                // than leave it to block others until the lease runs out.
                if let Err(release) = self.release_record("try_lock", record, owner).await {
                    tracing::debug!(lock = record, %release, "could not give back an unfenced record");
                }
                Err(error)
            }
        }
    }

    /// Deletes `key` (already a wire key) if it is the record we created or
    /// last extended for `owner`: `md <key> C<cas>` with the remembered CAS.
    /// When none is remembered: `mg v c`, compare the owner, `md C<cas>`.
    /// Either way nothing stays remembered.
    pub(super) async fn release_record(
        &self,
        operation: &'static str,
        key: &str,
        owner: &[u8],
    ) -> Result<bool> {
        let cas = self.remembered.forget(key, owner);
        self.client.delete_owned(operation, key, owner, cas).await
    }

    /// Rewrites the record with its TTL reset to `lease` if it is ours:
    /// `ms <key> C<cas> T<lease> c` with the owner as the value, one round
    /// trip with the remembered CAS, which the answer's CAS replaces. (The
    /// meta protocol has no conditional touch: `mg T` touches
    /// unconditionally.) When none is remembered, see
    /// [`extend_unremembered`](Self::extend_unremembered).
    pub(super) async fn extend_record(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
    ) -> Result<bool> {
        let record = keys::wire_key(key)?;
        let exptime = ttl::exptime(lease, "lease")?;
        self.bounded("extend", async {
            let asked = Instant::now();
            let Some(taken) = self.remembered.take(&record, owner) else {
                return self.extend_unremembered(&record, owner, exptime).await;
            };
            let rewrite = Set::new(&*record, owner)
                .compare_cas(taken.cas)
                .ttl(exptime)
                .client_flags(LOCK_RECORD_FLAGS);
            // Until `finish`, the entry is in flight: if this future is
            // dropped, the next call falls back to the two-trip path.
            let answer = self.client.store_returning_cas("extend", rewrite).await;
            let (extended, rewritten) = match answer {
                Ok((MutationStatus::Applied, cas)) => (
                    Ok(true),
                    cas.map(|cas| (cas, crate::clock::deadline(asked, lease))),
                ),
                Ok((MutationStatus::CasMismatch | MutationStatus::NotFound, _)) => {
                    (Ok(false), None)
                }
                Ok((other, _)) => (Err(unexpected("extend", other)), None),
                Err(error) => (Err(error), None),
            };
            self.remembered
                .finish(&record, owner, taken.ticket, rewritten);
            extended
        })
        .await
    }

    /// The two-trip extend: `mg v c`, compare the owner, then
    /// `ms <key> C<cas> T<lease>`. Its write changes the CAS without our
    /// remembering it, so nothing stays remembered (forgotten before the
    /// write, in case this is cancelled, and after, in case a create of
    /// the same key and owner remembered one in between).
    async fn extend_unremembered(&self, record: &str, owner: &[u8], exptime: Ttl) -> Result<bool> {
        self.remembered.forget(record, owner);
        let Some(cas) = self.client.owned_cas("extend", record, owner).await? else {
            return Ok(false);
        };
        let rewrite = Set::new(record, owner)
            .compare_cas(cas)
            .ttl(exptime)
            .client_flags(LOCK_RECORD_FLAGS);
        let answer = self.client.store("extend", rewrite).await;
        self.remembered.forget(record, owner);
        match answer? {
            MutationStatus::Applied => Ok(true),
            MutationStatus::CasMismatch | MutationStatus::NotFound => Ok(false),
            other => Err(unexpected("extend", other)),
        }
    }
}

/// How long a fencing counter outlives the lease of the last lock that
/// used it. A counter re-created after it expired is seeded with the
/// re-creating machine's clock, at least this long after the last token
/// could still be presented (its holder's lease ended), so the new tokens
/// are above the old ones as long as the machines' clocks agree to within
/// an hour (plus the lease). See the [backend's docs](super#fencing-tokens).
const FENCE_OUTLIVES_LEASE: Duration = Duration::from_secs(60 * 60);

/// The seed of a new fencing counter.
fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}
