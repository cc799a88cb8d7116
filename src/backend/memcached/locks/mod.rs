//! Lock records on memcached: how they are written, owner-checked release
//! and extend, and fencing tokens.
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
//!
//! The `try_lock`, `release` and `extend` bodies are in `backend.rs`; this
//! module holds the record's encoding and the steps they share.

mod create;
mod remembered;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memcache::exp::{Arithmetic, MutationStatus, Set, Ttl};
use tokio::time::Instant;

pub use self::create::CREATE_PATIENCE;
pub(super) use self::create::{Created, Creates};
pub(super) use self::remembered::Remembered;
use super::client::Client;
use super::requests::unexpected;
use super::ttl;
use crate::backend::LockAttempt;
use crate::Result;

/// The client flags a lock record is stored with (`ms … F<flags>`), so
/// that a read for a near tier can tell it from a value: the ASCII bytes
/// `LOCK`. Values are stored with flags 0.
pub(super) const LOCK_RECORD_FLAGS: u32 = u32::from_be_bytes(*b"LOCK");

/// How long a fencing counter outlives the lease of the last lock that
/// used it. A counter re-created after it expired is seeded with the
/// re-creating machine's clock, at least this long after the last token
/// could still be presented (its holder's lease ended), so the new tokens
/// are above the old ones as long as the machines' clocks agree to within
/// an hour (plus the lease). See the [backend's docs](super#fencing-tokens).
const FENCE_OUTLIVES_LEASE: Duration = Duration::from_secs(60 * 60);

/// `ms <key> ME T<lease> F<LOCK>`: the create of a lock record holding
/// `owner` (the create pool adds `c`, for the new CAS).
pub(super) fn create_request(record: &str, owner: &[u8], exptime: Ttl) -> Set {
    Set::new(record, owner)
        .add()
        .ttl(exptime)
        .client_flags(LOCK_RECORD_FLAGS)
}

/// `ms <key> C<cas> T<lease> F<LOCK>`: the record rewritten with its TTL
/// reset, if it is still the one whose CAS unique is `cas`. (The meta
/// protocol has no conditional touch: `mg T` touches unconditionally.)
pub(super) fn rewrite_request(record: &str, owner: &[u8], cas: u64, exptime: Ttl) -> Set {
    Set::new(record, owner)
        .compare_cas(cas)
        .ttl(exptime)
        .client_flags(LOCK_RECORD_FLAGS)
}

/// Deletes `key` (already a wire key) if it is the record we created or
/// last extended for `owner`: `md <key> C<cas>` with the remembered CAS.
/// When none is remembered: `mg v c`, compare the owner, `md C<cas>`.
/// Either way nothing stays remembered.
pub(super) async fn release_owned(
    client: &Client,
    remembered: &Remembered,
    operation: &'static str,
    key: &str,
    owner: &[u8],
) -> Result<bool> {
    let cas = remembered.forget(key, owner);
    client.delete_owned(operation, key, owner, cas).await
}

/// The two-trip extend: `mg v c`, compare the owner, then
/// `ms <key> C<cas> T<lease>`. Its write changes the CAS without our
/// remembering it, so nothing stays remembered (forgotten before the
/// write, in case this is cancelled, and after, in case a create of
/// the same key and owner remembered one in between).
pub(super) async fn extend_unremembered(
    client: &Client,
    remembered: &Remembered,
    record: &str,
    owner: &[u8],
    exptime: Ttl,
) -> Result<bool> {
    remembered.forget(record, owner);
    let Some(cas) = client.owned_cas("extend", record, owner).await? else {
        return Ok(false);
    };
    let rewrite = rewrite_request(record, owner, cas, exptime);
    let answer = client.store("extend", rewrite).await;
    remembered.forget(record, owner);
    match answer? {
        MutationStatus::Applied => Ok(true),
        MutationStatus::CasMismatch | MutationStatus::NotFound => Ok(false),
        other => Err(unexpected("extend", other)),
    }
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
pub(super) async fn issue_fence(
    client: &Client,
    remembered: &Remembered,
    (record, counter, owner): (&str, &[u8], &[u8]),
    lease: Duration,
    started: Instant,
) -> Result<LockAttempt> {
    // `N` gives a counter this creates its lifetime, `T` resets that of
    // one that exists; the same value, so their order does not matter.
    let life = ttl::raw_exptime(lease.saturating_add(FENCE_OUTLIVES_LEASE));
    let increment = Arithmetic::new(counter)
        .initial(unix_micros(), life)
        .ttl_raw(life);
    match client.count("try_lock", increment).await {
        Ok(fence) if started.elapsed() < lease => Ok(LockAttempt::Acquired { fence: Some(fence) }),
        Ok(fence) => {
            tracing::warn!(
                lock = record,
                fence,
                waited = ?started.elapsed(),
                ?lease,
                "the fencing token came back after the lease ended; giving the lock back"
            );
            release_owned(client, remembered, "try_lock", record, owner).await?;
            Ok(LockAttempt::Held { remaining: None })
        }
        Err(error) => {
            // We hold a record but have no token: give it back rather
            // than leave it to block others until the lease runs out.
            if let Err(release) = release_owned(client, remembered, "try_lock", record, owner).await
            {
                tracing::debug!(lock = record, %release, "could not give back an unfenced record");
            }
            Err(error)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_flags_spell_lock() {
        assert_eq!(LOCK_RECORD_FLAGS.to_be_bytes(), *b"LOCK");
        assert_ne!(LOCK_RECORD_FLAGS, 0);
    }
}
