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

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::watch;

/// Flights in progress, by key (namespace included).
#[derive(Debug, Default)]
pub(crate) struct Flights {
    active: Mutex<HashMap<Box<str>, watch::Receiver<Option<Bytes>>>>,
    /// Entries in `active`, so that the hit path skips the mutex when no
    /// flight is in progress anywhere (the common case).
    count: AtomicUsize,
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
    landing: watch::Sender<Option<Bytes>>,
}

/// A caller waiting for a flight's leader.
pub(crate) struct Follower(watch::Receiver<Option<Bytes>>);

impl Flights {
    fn active(&self) -> MutexGuard<'_, HashMap<Box<str>, watch::Receiver<Option<Bytes>>>> {
        // Every statement leaves the map consistent; a poisoned lock is fine.
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The flight in progress for `key`, if any. One atomic load when there
    /// is none anywhere.
    pub(crate) fn in_progress(&self, key: &str) -> Option<Follower> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.active().get(key).cloned().map(Follower)
    }

    /// Follows the flight for `key`, or starts one led by the caller.
    pub(crate) fn join<'a>(&'a self, key: &'a str) -> Joined<'a> {
        let mut active = self.active();
        if let Some(landing) = active.get(key) {
            return Joined::Follow(Follower(landing.clone()));
        }
        let (landing, watching) = watch::channel(None);
        active.insert(key.into(), watching);
        self.count.fetch_add(1, Ordering::Release);
        Joined::Lead(Leader {
            flights: self,
            key,
            landing,
        })
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
        // Only a leader removes its entry, and a new leader is only made
        // once the entry is gone: this entry is ours.
        if self.flights.active().remove(self.key).is_some() {
            self.flights.count.fetch_sub(1, Ordering::Release);
        }
    }
}

impl Follower {
    /// The bytes the leader landed; `None` if it ended without landing any
    /// (its fill failed, or it was cancelled): then retry.
    ///
    /// Cancel safe: a dropped follower leaves nothing behind.
    pub(crate) async fn landed(mut self) -> Option<Bytes> {
        // `wait_for` looks at the current value first, so bytes landed just
        // before the leader went are still seen.
        match self.0.wait_for(Option::is_some).await {
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
        let Joined::Follow(early) = flights.join("k") else {
            panic!("second follows")
        };
        let late = flights.in_progress("k").expect("in progress");
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
        let Joined::Follow(follower) = flights.join("k") else {
            panic!("second follows")
        };
        drop(leader);
        assert_eq!(follower.landed().await, None);
        // The next caller leads a new flight.
        assert!(matches!(flights.join("k"), Joined::Lead(_)));
        assert_eq!(flights.len(), 0, "the dropped new leader removed its entry");
    }
}
