//! The memory backend's one [`Backend`] impl: every operation it overrides,
//! with its body, and below it the few steps several of them share.
//!
//! Every write is one per-key compute on the [key space](super::keyspace)
//! (`KeySpace::compute`), deciding on the live entry there, and then wakes
//! the key's [watchers](super::watch). `try_lock`, `release` and `extend`
//! first try the lock-record map alone (the fast path) and fall back to the
//! compute when anything else is writing the key. A fill lease lives in the
//! entry of the key it fills, so every write to the key, which replaces or
//! removes the entry, voids it.
//!
//! The slow paths' computes are boxed: inline, their futures would make
//! the fast paths' futures (a hit, a free lock) kilobytes larger.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::ops::compute::Op;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::entry::{deadline, Entry, Kind, Lease};
use super::records::{Fast, Owner, Record};
use super::MemoryBackend;
use crate::backend::{
    add_to_counter, parse_counter, Backend, CasToken, Coherence, Fencing, FillLease, FillRead,
    LeaseToken, LockAttempt, LockRecord, ReleaseWatch,
};
use crate::Result;

/// How many fill placeholders `try_lock` removes before it reports the key
/// busy: each one voids a fill, and a key refilled that often is in use.
const PLACEHOLDER_RETRIES: usize = 8;

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    // ----- values and compare-and-set ---------------------------------------

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let entry = self.inner.keys.read(key).await;
        Ok(entry.and_then(|entry| entry.value))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.put_value_if(key, value, ttl, |_| true).await;
        Ok(())
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        // A fill placeholder holds no value: the key counts as absent, and
        // the add voids the fill. A lock record counts as present.
        let absent = |live: Option<&Entry>| live.is_none_or(|entry| entry.value.is_none());
        Ok(self.put_value_if(key, value, ttl, absent).await)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed = self.inner.keys.compute(key, |live, _| match live {
            // A placeholder alone is removed too (voiding its fill), but
            // reported as nothing removed.
            Some(entry) => (Op::Remove, entry.value.is_some()),
            None => (Op::Nop, false),
        });
        let removed = removed.await;
        self.inner.watchers.wake(key);
        Ok(removed)
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        let entry = self.inner.keys.read(key).await;
        Ok(entry.and_then(|entry| {
            let token = CasToken::from_version(entry.version);
            entry.value.map(|value| (value, token))
        }))
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let expected_version = match expected {
            None => None,
            // A token from another backend can never match.
            Some(token) => match token.version() {
                Some(version) => Some(version),
                None => return Ok(false),
            },
        };
        let matches = move |live: Option<&Entry>| {
            let version = live
                .filter(|entry| entry.value.is_some())
                .map(|e| e.version);
            version == expected_version
        };
        Ok(self.put_value_if(key, value, ttl, matches).await)
    }

    // ----- lock records -----------------------------------------------------

    /// Creates `owner`'s record at `key` unless a value, a placeholder
    /// nobody would void, or a live record is there.
    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        let now = Instant::now();
        let until = deadline(now, lease);
        let mut fence = None;
        let fast = self.inner.keys.create_record(key, now, || {
            let (record, issued) = self.new_record(owner, until, fencing);
            fence = issued;
            record
        });
        match fast {
            Fast::Done(Ok(())) => return Ok(LockAttempt::Acquired { fence }),
            Fast::Done(Err(remaining)) => {
                let remaining = Some(remaining);
                return Ok(LockAttempt::Held { remaining });
            }
            Fast::Slow => {}
        }
        // The slow path: through the key's compute. A fill placeholder in
        // the way does not block the lock: it is removed first (voiding its
        // fill, as `add` would), so nothing hides the record, and the
        // attempt made again.
        let slow = Box::pin(async move {
            for _ in 0..PLACEHOLDER_RETRIES {
                let attempt = self.inner.keys.compute(key, |live, now| match live {
                    // A value blocks the lock as a record does.
                    Some(entry) if entry.value.is_some() => {
                        let remaining = entry.remaining(now);
                        (Op::Nop, Some(LockAttempt::Held { remaining }))
                    }
                    Some(_) => (Op::Remove, None),
                    None => {
                        let (record, fence) = self.new_record(owner, deadline(now, lease), fencing);
                        let acquired = LockAttempt::Acquired { fence };
                        (Op::Put(record.entry()), Some(acquired))
                    }
                });
                match attempt.await {
                    Some(attempt) => return attempt,
                    None => self.inner.watchers.wake(key),
                }
            }
            let remaining = Some(lease);
            LockAttempt::Held { remaining }
        });
        Ok(slow.await)
    }

    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        let now = Instant::now();
        let entry = self.inner.keys.read(key).await;
        Ok(entry.and_then(|entry| {
            Some(LockRecord {
                remaining: entry.remaining(now),
                owner: entry.value?,
            })
        }))
    }

    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        let now = Instant::now();
        let released = match self.inner.keys.remove_record(key, owner, now) {
            Fast::Done(released) => released,
            Fast::Slow => {
                let released = Box::pin(self.inner.keys.compute(key, |live, _| match live {
                    Some(entry) if entry.is_held_by(owner) => (Op::Remove, true),
                    _ => (Op::Nop, false),
                }));
                released.await
            }
        };
        if released {
            self.inner.watchers.wake(key);
        }
        Ok(released)
    }

    /// Moves the end of `owner`'s lease on `key` to `lease` from now.
    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        let now = Instant::now();
        let until = deadline(now, lease);
        if let Fast::Done(extended) = self.inner.keys.extend_record(key, owner, now, until) {
            return Ok(extended);
        }
        let extended = Box::pin(self.inner.keys.compute(key, |live, now| match live {
            Some(entry) if entry.is_held_by(owner) => {
                let renewed = Entry {
                    expires_at: Some(deadline(now, lease)),
                    ..entry.clone()
                };
                (Op::Put(renewed), true)
            }
            _ => (Op::Nop, false),
        }));
        Ok(extended.await)
    }

    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        Ok(self.inner.watchers.watch(key, wake))
    }

    // ----- fill leases ------------------------------------------------------

    /// A fresh value, or the lease (granted or busy) with any stale value.
    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        // A fresh value (or a lock record, which reads as one) needs no
        // lease: read it without the key's lock.
        let now = Instant::now();
        if let Some(entry) = self.inner.keys.cached_at(key, now).await {
            if let (Some(value), false) = (entry.live_value(now), entry.stale) {
                let token = CasToken::from_version(entry.version);
                return Ok(FillRead::hit(value.clone(), token));
            }
        }
        let read = Box::pin(self.inner.keys.compute(key, |live, now| {
            let granted = || Lease {
                id: self.next_version(),
                until: deadline(now, lease),
            };
            read_for_fill_under_lock(live, now, granted)
        }));
        Ok(read.await)
    }

    /// Stores `value` if `lease` is still the live lease on `key`.
    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let Some(id) = lease.version() else {
            return Ok(false);
        };
        let stored = self.inner.keys.compute(key, |live, now| {
            let ours = live
                .and_then(|entry| entry.live_lease(now))
                .is_some_and(|lease| lease.id == id);
            if ours {
                (Op::Put(self.fresh_value(value, ttl)), true)
            } else {
                (Op::Nop, false)
            }
        });
        let stored = stored.await;
        self.inner.watchers.wake(key);
        Ok(stored)
    }

    /// Ends `lease` without storing: drops a placeholder, keeps a stale value.
    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        let Some(id) = lease.version() else {
            return Ok(false);
        };
        let released = self.inner.keys.compute(key, |live, now| match live {
            Some(entry) if entry.live_lease(now).is_some_and(|lease| lease.id == id) => {
                if entry.live_value(now).is_some() {
                    let mut kept = entry.clone();
                    kept.lease = None;
                    (Op::Put(kept), true)
                } else {
                    (Op::Remove, true)
                }
            }
            _ => (Op::Nop, false),
        });
        let released = released.await;
        self.inner.watchers.wake(key);
        Ok(released)
    }

    /// Marks a stored value stale for at most `grace`, voiding any lease.
    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        let marked = self.inner.keys.compute(key, |live, now| match live {
            Some(entry) if entry.live_value(now).is_some() => {
                let until = deadline(now, grace);
                // A lock record marked stale becomes a value, as on Redis:
                // its holder can no longer release or extend it.
                let mut stale = entry.clone();
                stale.kind = Kind::Value;
                stale.stale = true;
                stale.lease = None;
                stale.version = self.next_version();
                stale.expires_at = Some(entry.expires_at.map_or(until, |at| at.min(until)));
                (Op::Put(stale), true)
            }
            // A fill placeholder: the fill it stands for read old data.
            Some(_) => (Op::Remove, false),
            None => (Op::Nop, false),
        });
        let marked = marked.await;
        self.inner.watchers.wake(key);
        Ok(marked)
    }

    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        Ok(self.inner.watchers.watch(key, wake))
    }

    // ----- batches ----------------------------------------------------------

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        Ok(self.inner.keys.values_of(keys).await)
    }

    async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            self.put_value_if(key, value, ttl, |_| true).await;
        }
        Ok(())
    }

    // ----- the rest of the surface ------------------------------------------

    /// Moves the expiry of the value (or lock record) at `key` to `ttl`
    /// from now. Its version, stale mark and any fill lease beside it stay.
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool> {
        let touched = self.inner.keys.compute(key, |live, now| match live {
            Some(entry) if entry.live_value(now).is_some() => {
                let mut touched = entry.clone();
                touched.expires_at = Some(deadline(now, ttl));
                (Op::Put(touched), true)
            }
            _ => (Op::Nop, false),
        });
        Ok(touched.await)
    }

    /// Adds `delta` to the decimal counter at `key` under the key's lock.
    /// A new version, like any write: it voids a fill lease on the key, and
    /// keeps the expiry of the value it replaces.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let added = self.inner.keys.compute(key, |live, now| {
            let current = live.and_then(|entry| entry.live_value(now).map(|v| (entry, v)));
            let next = match current {
                Some((entry, _)) if entry.kind == Kind::LockRecord => {
                    Err(crate::Error::NotACounter {
                        key: key.to_owned(),
                    })
                }
                Some((_, value)) => parse_counter(key, value),
                None => Ok(0),
            }
            .and_then(|current| add_to_counter(key, current, delta));
            match next {
                Ok(next) => {
                    let text = Bytes::from(next.to_string());
                    let mut entry = self.fresh_value(&text, None);
                    entry.expires_at = current.and_then(|(entry, _)| entry.expires_at);
                    (Op::Put(entry), Ok(next))
                }
                Err(error) => (Op::Nop, Err(error)),
            }
        });
        let added = added.await;
        if added.is_ok() {
            self.inner.watchers.wake(key);
        }
        added
    }

    /// Removes every key that starts with `prefix`, each under its lock, as
    /// `delete` would (lock records too: their waiters are woken).
    async fn clear(&self, prefix: &str) -> Result<()> {
        for key in self.inner.keys.keys_with_prefix(prefix) {
            let removed = self.inner.keys.compute(&key, |live, _| match live {
                Some(_) => (Op::Remove, ()),
                None => (Op::Nop, ()),
            });
            removed.await;
            self.inner.watchers.wake(&key);
        }
        Ok(())
    }

    // ----- coherence --------------------------------------------------------

    fn coherence(&self) -> Coherence {
        Coherence::Unsupported(
            "the memory backend is already in this process: a near cache in front of it would be a cache of itself",
        )
    }
}

/// The steps several operations above share.
impl MemoryBackend {
    /// A version never handed out before: CAS tokens and fill lease ids.
    fn next_version(&self) -> u64 {
        self.inner.last_version.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A new value entry for a write, at a fresh version.
    pub(super) fn fresh_value(&self, value: &[u8], ttl: Option<Duration>) -> Entry {
        Entry::value(Bytes::copy_from_slice(value), self.next_version(), ttl)
    }

    /// Puts a fresh value at `key` when `condition` holds for the live
    /// entry there (a value or a lock record), and wakes the key's
    /// watchers: `set`, `add`, `cas` and `set_many`.
    async fn put_value_if(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        condition: impl FnOnce(Option<&Entry>) -> bool + Send,
    ) -> bool {
        let put = self.inner.keys.compute(key, |live, _| {
            if condition(live) {
                (Op::Put(self.fresh_value(value, ttl)), true)
            } else {
                (Op::Nop, false)
            }
        });
        let put = put.await;
        if put {
            self.inner.watchers.wake(key);
        }
        put
    }

    /// A new lock record for `owner`, with a fresh version and, when asked,
    /// the next fence: `try_lock`'s fast and slow paths. Made under the
    /// key's lock, so fences follow the order in which holders took it.
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
}

/// What `read_for_fill` does, past a hit, to the live entry at a key under
/// the key's lock: reports a fresh value, reports a lease out (with any
/// stale value), or grants the lease `granted()` in the entry (beside a
/// stale value, or in a placeholder that reads as absent).
fn read_for_fill_under_lock(
    live: Option<&Entry>,
    now: Instant,
    granted: impl FnOnce() -> Lease,
) -> (Op<Entry>, FillRead) {
    let value = live.and_then(|entry| {
        let value = entry.live_value(now)?.clone();
        Some((value, CasToken::from_version(entry.version)))
    });
    let stale = live.is_some_and(|entry| entry.stale);
    if let (Some((value, token)), false) = (&value, stale) {
        return (Op::Nop, FillRead::hit(value.clone(), token.clone()));
    }
    if live.is_some_and(|entry| entry.live_lease(now).is_some()) {
        let busy = FillRead {
            value,
            stale,
            lease: FillLease::Busy,
        };
        return (Op::Nop, busy);
    }
    let granted = granted();
    let mut leased = match (live, &value) {
        (Some(entry), Some(_)) => entry.clone(),
        _ => Entry {
            value: None,
            kind: Kind::Value,
            version: granted.id,
            expires_at: None,
            stale: false,
            lease: None,
        },
    };
    leased.lease = Some(granted);
    let read = FillRead {
        value,
        stale,
        lease: FillLease::Granted(LeaseToken::from_version(granted.id)),
    };
    (Op::Put(leased), read)
}
