//! In-process single flight for `get_or_fill` misses.
//!
//! The cross-process guard ([`RedLock`](crate::RedLock)) costs every caller a
//! few backend round trips: read, try the lock, re-check, read again after
//! the wake-up. For a thousand callers in one process that is thousands of
//! requests queued on the same connection ahead of the one fill that
//! matters. So within a process, callers that miss on the same key join one
//! *flight*: its leader alone goes through the guard; followers wait here,
//! without touching the backend, for the bytes the leader stored (or read).
//!
//! A leader that fails or is cancelled lands nothing: its followers retry,
//! and exactly one of them leads the next flight.
//!
//! A write to the key in this process ([`Flights::invalidate`]) ends the
//! flight for newcomers: callers that arrive after the write start a new
//! flight instead of being handed bytes a fill computed before the write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::watch;

/// A flight in the map: its id, and where its landing is watched.
type Entry = (u64, watch::Receiver<Option<Bytes>>);

/// Flights in progress, by key (namespace included).
#[derive(Debug, Default)]
pub(crate) struct Flights {
    active: Mutex<HashMap<Box<str>, Entry>>,
    /// Entries in `active`, so that the hit path skips the mutex when no
    /// flight is in progress anywhere (the common case).
    count: AtomicUsize,
    next_id: AtomicU64,
}

/// What a caller who missed does: lead the flight, or follow it.
pub(crate) enum Joined<'a> {
    Lead(Leader<'a>),
    Follow(Follower),
}

/// The one caller of a flight that goes to the backend. Dropping it ends
/// the flight: followers get what was landed, or retry.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: &'a str,
    id: u64,
    landing: watch::Sender<Option<Bytes>>,
}

/// A caller waiting for a flight's leader: the flight's id and its landing.
pub(crate) struct Follower(u64, watch::Receiver<Option<Bytes>>);

impl Flights {
    fn active(&self) -> MutexGuard<'_, HashMap<Box<str>, Entry>> {
        // Every statement leaves the map consistent; a poisoned lock is fine.
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The flight in progress for `key`, if any. One atomic load when there
    /// is none anywhere.
    pub(crate) fn in_progress(&self, key: &str) -> Option<Follower> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.active()
            .get(key)
            .map(|(id, landing)| Follower(*id, landing.clone()))
    }

    /// Follows the flight for `key`, or starts one led by the caller.
    pub(crate) fn join<'a>(&'a self, key: &'a str) -> Joined<'a> {
        let mut active = self.active();
        if let Some((id, landing)) = active.get(key) {
            return Joined::Follow(Follower(*id, landing.clone()));
        }
        let (landing, watching) = watch::channel(None);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        active.insert(key.into(), (id, watching));
        self.count.fetch_add(1, Ordering::Release);
        Joined::Lead(Leader {
            flights: self,
            key,
            id,
            landing,
        })
    }

    /// Ends the flight for `key` for newcomers, after a write to the key:
    /// its leader's existing followers still get what it lands. One atomic
    /// load when no flight is in progress anywhere.
    pub(crate) fn invalidate(&self, key: &str) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        if self.active().remove(key).is_some() {
            self.count.fetch_sub(1, Ordering::Release);
        }
    }

    /// Ends the flight `follower` follows for newcomers, if it is still the
    /// key's flight: its leader has outlived its lease, so a newcomer should
    /// lead a new one rather than wait for it.
    pub(crate) fn abandon(&self, key: &str, follower: &Follower) {
        let mut active = self.active();
        if active.get(key).is_some_and(|(id, _)| *id == follower.0) {
            active.remove(key);
            self.count.fetch_sub(1, Ordering::Release);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.active().len()
    }
}

impl Leader<'_> {
    /// Hands the stored bytes to every follower, now and later.
    pub(crate) fn land(&self, bytes: Bytes) {
        self.landing.send_replace(Some(bytes));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // The entry may be gone (invalidated) or a newer flight's.
        let mut active = self.flights.active();
        if active.get(self.key).is_some_and(|(id, _)| *id == self.id) {
            active.remove(self.key);
            self.flights.count.fetch_sub(1, Ordering::Release);
        }
    }
}

impl Follower {
    /// The bytes the leader landed; `None` if it ended without landing any
    /// (its fill failed, or it was cancelled): then retry.
    ///
    /// Cancel safe: a dropped follower leaves nothing behind.
    pub(crate) async fn landed(&mut self) -> Option<Bytes> {
        // `wait_for` looks at the current value first, so bytes landed just
        // before the leader went are still seen.
        match self.1.wait_for(Option::is_some).await {
            Ok(landed) => landed.clone(),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_landing_even_after_the_leader_is_gone() {
        let flights = Flights::default();
        let Joined::Lead(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Joined::Follow(mut early) = flights.join("k") else {
            panic!("second follows")
        };
        let mut late = flights.in_progress("k").expect("in progress");
        leader.land(Bytes::from_static(b"v"));
        drop(leader);
        assert_eq!(early.landed().await.as_deref(), Some(&b"v"[..]));
        assert_eq!(late.landed().await.as_deref(), Some(&b"v"[..]));
        assert_eq!(flights.len(), 0);
        assert!(flights.in_progress("k").is_none());
    }

    #[tokio::test]
    async fn a_leader_that_lands_nothing_sends_followers_to_retry() {
        let flights = Flights::default();
        let Joined::Lead(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Joined::Follow(mut follower) = flights.join("k") else {
            panic!("second follows")
        };
        drop(leader);
        assert_eq!(follower.landed().await, None);
        // The next caller leads a new flight.
        assert!(matches!(flights.join("k"), Joined::Lead(_)));
        assert_eq!(flights.len(), 0, "the dropped new leader removed its entry");
    }

    #[tokio::test]
    async fn invalidate_starts_a_new_flight_and_the_old_leader_leaves_it_alone() {
        let flights = Flights::default();
        let Joined::Lead(old) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Joined::Follow(mut before) = flights.join("k") else {
            panic!("second follows")
        };
        flights.invalidate("k");
        assert!(
            flights.in_progress("k").is_none(),
            "newcomers do not follow"
        );
        let Joined::Lead(new) = flights.join("k") else {
            panic!("a newcomer leads a new flight")
        };
        old.land(Bytes::from_static(b"old"));
        drop(old);
        assert_eq!(before.landed().await.as_deref(), Some(&b"old"[..]));
        assert!(
            flights.in_progress("k").is_some(),
            "the new flight is intact"
        );
        drop(new);
        assert_eq!(flights.len(), 0);
        assert_eq!(flights.count.load(Ordering::Acquire), 0);
    }

    #[test]
    fn abandon_ends_only_the_flight_it_followed() {
        let flights = Flights::default();
        let Joined::Lead(stuck) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Joined::Follow(patient) = flights.join("k") else {
            panic!("second follows")
        };
        flights.abandon("k", &patient);
        let Joined::Lead(next) = flights.join("k") else {
            panic!("a newcomer leads a new flight")
        };
        flights.abandon("k", &patient); // a newer flight is left alone
        assert!(flights.in_progress("k").is_some());
        drop(stuck);
        assert!(
            flights.in_progress("k").is_some(),
            "the stuck leader left the new flight"
        );
        drop(next);
        assert_eq!(flights.count.load(Ordering::Acquire), 0);
    }
}
