//! The CAS uniques of lock records this backend wrote, so that release and
//! extend take one round trip instead of two.
//!
//! # Why a remembered CAS is safe
//!
//! memcached gives an item a new CAS unique on every write. A record we
//! created (`ms <k> ME T<lease> c`) or last rewrote (`ms <k> C<cas> … c`)
//! keeps the CAS the server returned until somebody writes it again. So
//! `md <k> C<cas>` and `ms <k> C<cas>` with the remembered CAS can only hit
//! that exact record: if it expired and someone else (or we) created the
//! key again, the new record has another CAS and the command misses, even
//! if the new record holds the same owner bytes. That is at least as strict
//! as the two-trip check (read the owner and the CAS, compare, then write
//! with `C<cas>`), which is still used when nothing is remembered.
//!
//! # When an entry is trusted
//!
//! Only an entry whose CAS we know to be the record's latest is used. So:
//!
//! - a one-trip extend marks the entry *in flight* (with a ticket) while
//!   its request is out, and stores the new CAS afterwards only if the entry
//!   still carries its ticket. A cancelled or failed extend leaves the mark,
//!   and the next call falls back to the two-trip path;
//! - every two-trip release or extend forgets the entry before it writes
//!   and again after, since its write changes the CAS without telling us;
//! - a release forgets the entry whatever the answer.
//!
//! Another handle (another `Cache`, another process) that rewrites the
//! record with the same owner bytes does not tell us either; stampede never
//! does that (each lock guard has an owner token of its own, used through
//! one backend), but code that drives [`Backend`](crate::backend::Backend)
//! directly should not share owner bytes between handles.
//!
//! # Bounded
//!
//! Locks that were lost or ran out and were never released leave entries
//! behind. Each new entry sweeps out the entries whose lease has run out,
//! measured here, once the map has grown past [`SWEEP_FLOOR`] or twice the
//! size it had after the last sweep, so sweeping costs O(1) amortised and
//! the map holds at most about twice the locks whose lease is still running.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

/// Below this many entries the map is never swept.
pub(in crate::backend::memcached) const SWEEP_FLOOR: usize = 32;

/// A remembered CAS, ready to use: the entry is now in flight under `ticket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::backend::memcached) struct Taken {
    pub(in crate::backend::memcached) cas: u64,
    pub(in crate::backend::memcached) ticket: u64,
}

/// The state of one record.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The record's CAS unique as of our last write to it.
    Known { cas: u64 },
    /// A one-trip extend with this ticket is out; the CAS is unknown.
    InFlight { ticket: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    slot: Slot,
    /// When the lease runs out as far as we know; swept after this.
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// Keyed by (wire key, owner bytes).
    entries: HashMap<(String, Vec<u8>), Entry>,
    /// Sweep when `entries` grows past this.
    sweep_above: usize,
    next_ticket: u64,
}

/// What the backend remembers about the lock records it wrote.
///
/// A `std::sync::Mutex` around a `HashMap`: every call is a single O(1)
/// map operation (a sweep, amortised O(1)), and the lock is never held
/// across an `.await`.
#[derive(Debug, Default)]
pub(in crate::backend::memcached) struct Remembered {
    inner: Mutex<Inner>,
}

impl Remembered {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing here can leave the map half-updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After we created or rewrote the record `key` holding `owner`: its
    /// CAS is now `cas`, and the lease runs out at `deadline`.
    pub(in crate::backend::memcached) fn remember(
        &self,
        key: &str,
        owner: &[u8],
        cas: u64,
        deadline: Instant,
    ) {
        let mut inner = self.lock();
        let entry = Entry {
            slot: Slot::Known { cas },
            deadline,
        };
        inner
            .entries
            .insert((key.to_owned(), owner.to_vec()), entry);
        inner.sweep_if_grown(Instant::now());
    }

    /// Before a one-trip extend: the remembered CAS, with the entry marked
    /// in flight. `None` when nothing usable is remembered; then whatever
    /// was there is forgotten, and the caller falls back.
    pub(in crate::backend::memcached) fn take(&self, key: &str, owner: &[u8]) -> Option<Taken> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let id = (key.to_owned(), owner.to_vec());
        let entry = inner.entries.get_mut(&id)?;
        match entry.slot {
            Slot::Known { cas } => {
                let ticket = inner.next_ticket;
                inner.next_ticket += 1;
                entry.slot = Slot::InFlight { ticket };
                Some(Taken { cas, ticket })
            }
            Slot::InFlight { .. } => {
                inner.entries.remove(&id);
                None
            }
        }
    }

    /// After a one-trip extend under `ticket`: `Some((cas, deadline))` when
    /// it rewrote the record, `None` when it did not (or its answer is not
    /// known). Changes nothing if the entry no longer carries the ticket.
    pub(in crate::backend::memcached) fn finish(
        &self,
        key: &str,
        owner: &[u8],
        ticket: u64,
        rewritten: Option<(u64, Instant)>,
    ) {
        let mut inner = self.lock();
        let id = (key.to_owned(), owner.to_vec());
        let ours = matches!(
            inner.entries.get(&id),
            Some(Entry { slot: Slot::InFlight { ticket: t }, .. }) if *t == ticket
        );
        if !ours {
            return;
        }
        match rewritten {
            Some((cas, deadline)) => {
                let entry = Entry {
                    slot: Slot::Known { cas },
                    deadline,
                };
                inner.entries.insert(id, entry);
            }
            None => {
                inner.entries.remove(&id);
            }
        }
    }

    /// Forgets the record: returns its CAS when one was known.
    pub(in crate::backend::memcached) fn forget(&self, key: &str, owner: &[u8]) -> Option<u64> {
        let entry = self
            .lock()
            .entries
            .remove(&(key.to_owned(), owner.to_vec()))?;
        match entry.slot {
            Slot::Known { cas } => Some(cas),
            Slot::InFlight { .. } => None,
        }
    }

    /// How many records are remembered.
    pub(in crate::backend::memcached) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Inner {
    /// Drops the entries whose lease ran out before `now`, once the map has
    /// grown past the threshold; the next threshold is twice what is left.
    fn sweep_if_grown(&mut self, now: Instant) {
        if self.entries.len() <= self.sweep_above.max(SWEEP_FLOOR) {
            return;
        }
        self.entries.retain(|_, entry| entry.deadline > now);
        self.sweep_above = (2 * self.entries.len()).max(SWEEP_FLOOR);
        self.entries.shrink_to(self.sweep_above);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LEASE: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_remembered_cas_is_taken_once_and_updated_by_its_extend() {
        let memo = Remembered::default();
        memo.remember("k", b"a", 7, Instant::now() + LEASE);
        assert_eq!(memo.take("k", b"b"), None, "another owner");
        let taken = memo.take("k", b"a").expect("remembered");
        assert_eq!(taken.cas, 7);
        // In flight: a concurrent call falls back, and the entry is gone.
        assert_eq!(memo.take("k", b"a"), None);
        assert_eq!(memo.len(), 0);
        // So the late answer of the first extend is not stored.
        memo.finish("k", b"a", taken.ticket, Some((8, Instant::now() + LEASE)));
        assert_eq!(memo.forget("k", b"a"), None);

        memo.remember("k", b"a", 9, Instant::now() + LEASE);
        let taken = memo.take("k", b"a").unwrap();
        memo.finish("k", b"a", taken.ticket, Some((10, Instant::now() + LEASE)));
        assert_eq!(memo.take("k", b"a").map(|t| t.cas), Some(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_cancelled_extend_leaves_nothing_usable() {
        let memo = Remembered::default();
        memo.remember("k", b"a", 1, Instant::now() + LEASE);
        let taken = memo.take("k", b"a").unwrap();
        memo.finish("k", b"a", taken.ticket, None);
        assert_eq!(memo.len(), 0);

        // Cancelled: never finished. The next release falls back.
        memo.remember("k", b"a", 2, Instant::now() + LEASE);
        let _cancelled = memo.take("k", b"a").unwrap();
        assert_eq!(memo.forget("k", b"a"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_two_trip_write_in_between_stops_a_stale_cas_coming_back() {
        let memo = Remembered::default();
        memo.remember("k", b"a", 1, Instant::now() + LEASE);
        let taken = memo.take("k", b"a").unwrap();
        // A two-trip extend forgets before it writes; then the remembered
        // entry is recreated by a create of the same (key, owner).
        memo.forget("k", b"a");
        memo.remember("k", b"a", 5, Instant::now() + LEASE);
        memo.finish("k", b"a", taken.ticket, Some((2, Instant::now() + LEASE)));
        assert_eq!(memo.forget("k", b"a"), Some(5));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_whose_lease_ran_out_are_swept_and_the_map_stays_bounded() {
        let memo = Remembered::default();
        let short = Duration::from_millis(100);
        for wave in 0..50 {
            for i in 0..100 {
                memo.remember(&format!("k{wave}-{i}"), b"o", 1, Instant::now() + short);
            }
            // At most twice the live entries of the last sweep, plus one.
            assert!(memo.len() <= 2 * 100 + 1, "wave {wave}: {}", memo.len());
            tokio::time::advance(2 * short).await;
        }
        // A held lock is never swept, however long it is held.
        memo.remember("held", b"o", 1, Instant::now() + LEASE * 1000);
        for i in 0..1000 {
            memo.remember(&format!("late{i}"), b"o", 1, Instant::now() + short);
            tokio::time::advance(short).await;
        }
        assert!(memo.len() <= 2 * SWEEP_FLOOR + 1, "{}", memo.len());
        assert_eq!(memo.forget("held", b"o"), Some(1));
    }
}
