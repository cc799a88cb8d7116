//! Lock records on the memory backend: `try_lock`, `release` and `extend`,
//! each on the record map alone when nothing else is writing the key (the
//! fast path), else through the key's compute like any other write (see
//! the [key space](super::keyspace)).

use std::sync::atomic::Ordering;
use std::time::Duration;

use moka::ops::compute::Op;
use tokio::time::Instant;

use super::entry::{deadline, Entry};
use super::records::{Fast, Owner, Record};
use super::MemoryBackend;
use crate::backend::{Fencing, LockAttempt};

/// How many fill placeholders `try_lock` removes before it reports the key
/// busy: each one voids a fill, and a key refilled that often is in use.
const PLACEHOLDER_RETRIES: usize = 8;

/// What one slow-path attempt at `try_lock` came to.
enum Attempt {
    Done(LockAttempt),
    /// A fill placeholder was removed (its fill voided); try again.
    Voided,
}

impl MemoryBackend {
    /// A new record for `owner`, with a fresh version and, when asked, the
    /// next fence. Made under the key's lock, so fences follow the order
    /// in which holders took the lock.
    fn new_record(&self, owner: &[u8], until: Instant, fencing: Fencing) -> (Record, Option<u64>) {
        let fence = (fencing == Fencing::Issue)
            .then(|| self.inner.last_fence.fetch_add(1, Ordering::Relaxed) + 1);
        let record = Record {
            owner: Owner::new(owner),
            version: self.next_version(),
            expires_at: until,
        };
        (record, fence)
    }

    /// `try_lock`: creates `owner`'s record at `key` unless a value, a
    /// placeholder nobody would void, or a live record is there.
    pub(super) async fn lock_attempt(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> LockAttempt {
        let now = Instant::now();
        let until = deadline(now, lease);
        let mut fence = None;
        let fast = self.inner.keys.create_record(key, now, || {
            let (record, issued) = self.new_record(owner, until, fencing);
            fence = issued;
            record
        });
        match fast {
            Fast::Done(Ok(())) => return LockAttempt::Acquired { fence },
            Fast::Done(Err(remaining)) => {
                return LockAttempt::Held {
                    remaining: Some(remaining),
                }
            }
            Fast::Slow => {}
        }
        // Boxed, like every slow path here: inline, the compute's future
        // would make the fast path's future kilobytes larger.
        Box::pin(self.slow_lock_attempts(key, owner, lease, fencing)).await
    }

    async fn slow_lock_attempts(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> LockAttempt {
        for _ in 0..PLACEHOLDER_RETRIES {
            if let Attempt::Done(attempt) = self.slow_lock_attempt(key, owner, lease, fencing).await
            {
                return attempt;
            }
        }
        LockAttempt::Held {
            remaining: Some(lease),
        }
    }

    async fn slow_lock_attempt(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Attempt {
        let attempt = self.inner.keys.compute(key, |live, now| match live {
            // A value blocks the lock as a record does.
            Some(entry) if entry.value.is_some() => {
                let remaining = entry.remaining(now);
                (Op::Nop, Attempt::Done(LockAttempt::Held { remaining }))
            }
            // A fill placeholder does not: the lock voids its fill, as
            // `add` would. It goes first, so nothing hides the record.
            Some(_) => (Op::Remove, Attempt::Voided),
            None => {
                let (record, fence) = self.new_record(owner, deadline(now, lease), fencing);
                let entry = record.entry();
                (
                    Op::Put(entry),
                    Attempt::Done(LockAttempt::Acquired { fence }),
                )
            }
        });
        let attempt = attempt.await;
        if matches!(attempt, Attempt::Voided) {
            self.inner.watchers.wake(key);
        }
        attempt
    }

    /// `release`: removes the record at `key` if `owner` holds it.
    pub(super) async fn release_record(&self, key: &str, owner: &[u8]) -> bool {
        let now = Instant::now();
        if let Fast::Done(released) = self.inner.keys.remove_record(key, owner, now) {
            return released;
        }
        let released = self.inner.keys.compute(key, |live, _| match live {
            Some(entry) if entry.is_held_by(owner) => (Op::Remove, true),
            _ => (Op::Nop, false),
        });
        Box::pin(released).await
    }

    /// `extend`: moves the end of `owner`'s lease on `key` to `lease` from now.
    pub(super) async fn extend_record(&self, key: &str, owner: &[u8], lease: Duration) -> bool {
        let now = Instant::now();
        let until = deadline(now, lease);
        if let Fast::Done(extended) = self.inner.keys.extend_record(key, owner, now, until) {
            return extended;
        }
        let extended = self.inner.keys.compute(key, |live, now| match live {
            Some(entry) if entry.is_held_by(owner) => {
                let renewed = Entry {
                    expires_at: Some(deadline(now, lease)),
                    ..entry.clone()
                };
                (Op::Put(renewed), true)
            }
            _ => (Op::Nop, false),
        });
        Box::pin(extended).await
    }
}
