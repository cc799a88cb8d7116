//! Lock records on memcached: create, owner-checked release and extend,
//! and fencing tokens.
//!
//! Owner checks use the CAS unique: read the record with `mg <key> v c`,
//! compare the value with the owner here, then act with `C<cas>`, which the
//! server applies only if nobody has written the key since the read. A
//! holder whose lease ran out therefore cannot delete or extend the record
//! of whoever took the lock after it: that record has a new CAS unique even
//! if a bug gave it the same owner bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memcache::exp::{Arithmetic, Delete, Meta, MutationStatus, Set, Ttl};
use tokio::time::Instant;

use super::client::unexpected;
use super::{keys, ttl, MemcachedBackend, KIND};
use crate::backend::{Fencing, LockAttempt};
use crate::{Error, Result};

impl MemcachedBackend {
    /// `ms <key> ME T<lease>`, then for [`Fencing::Issue`] the fencing
    /// counter. See [`issue_fence`](Self::issue_fence).
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
            let create = Set::new(&*record, owner).add().ttl(exptime);
            match self.client.store("try_lock", create).await? {
                MutationStatus::Applied => {}
                // The failed add does not say how long the holder has left;
                // callers that want it ask `lock_record`.
                MutationStatus::AlreadyExists => return Ok(LockAttempt::Held { remaining: None }),
                other => return Err(unexpected("try_lock", other)),
            }
            match counter {
                None => Ok(LockAttempt::Acquired { fence: None }),
                Some(counter) => {
                    self.issue_fence(&record, &counter, owner, lease, started)
                        .await
                }
            }
        })
        .await
    }

    /// Increments the fencing counter of a record we just created, with
    /// `ma <counter> N1 J<seed> T0`: created on first use with the current
    /// Unix time in microseconds as its value, and kept with no expiry.
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
    async fn issue_fence(
        &self,
        record: &str,
        counter: &str,
        owner: &[u8],
        lease: Duration,
        started: Instant,
    ) -> Result<LockAttempt> {
        let increment = Arithmetic::new(counter)
            .initial(unix_micros(), 1)
            .ttl(Ttl::NEVER);
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

    /// Deletes `key` (already a wire key) if it holds `owner` and nobody
    /// has written it since we read it: `mg v c`, then `md C<cas>`.
    pub(super) async fn release_record(
        &self,
        operation: &'static str,
        key: &str,
        owner: &[u8],
    ) -> Result<bool> {
        let Some(cas) = self.owned_cas(operation, key, owner).await? else {
            return Ok(false);
        };
        match self
            .client
            .remove(operation, Delete::new(key).compare_cas(cas))
            .await?
        {
            MutationStatus::Applied => Ok(true),
            MutationStatus::CasMismatch | MutationStatus::NotFound => Ok(false),
            other => Err(unexpected(operation, other)),
        }
    }

    /// Rewrites the record with its TTL reset to `lease` if it holds
    /// `owner` and nobody has written it since we read it: `mg v c`, then
    /// `ms <key> C<cas> T<lease>` with the same value. (The meta protocol
    /// has no conditional touch: `mg T` touches unconditionally.)
    pub(super) async fn extend_record(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
    ) -> Result<bool> {
        let record = keys::wire_key(key)?;
        let exptime = ttl::exptime(lease, "lease")?;
        self.bounded("extend", async {
            let Some(cas) = self.owned_cas("extend", &record, owner).await? else {
                return Ok(false);
            };
            let rewrite = Set::new(&*record, owner).compare_cas(cas).ttl(exptime);
            match self.client.store("extend", rewrite).await? {
                MutationStatus::Applied => Ok(true),
                MutationStatus::CasMismatch | MutationStatus::NotFound => Ok(false),
                other => Err(unexpected("extend", other)),
            }
        })
        .await
    }

    /// The record's CAS unique, when it holds `owner`.
    async fn owned_cas(
        &self,
        operation: &'static str,
        key: &str,
        owner: &[u8],
    ) -> Result<Option<u64>> {
        let Some(item) = self.client.read(operation, key, Meta::NONE.cas()).await? else {
            return Ok(None);
        };
        if item.value != owner {
            return Ok(None);
        }
        item.cas
            .map(Some)
            .ok_or_else(|| Error::backend(KIND, operation, "memcached sent no CAS unique"))
    }
}

/// The seed of a new fencing counter.
fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}
