//! The in-process wake-up map: one [`Notify`] per lock key that has waiters.
//!
//! Shared by every clone of a [`Cache`](crate::Cache). A waiter registers
//! *before* it re-checks the lock record (tokio's `Notified::enable` rule),
//! so a release that lands between the failed acquire and the wait is never
//! missed. An entry exists only while a key has waiters: the last waiter to
//! leave, by waking, timing out or being cancelled, removes it.
//!
//! Each entry also holds the backend's cross-process [`ReleaseWatch`] for
//! its key (a Redis subscription, a memcached poller), made by the first
//! waiter and dropped with the entry.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::futures::Notified;
use tokio::sync::{Notify, OnceCell};

use crate::backend::{Backend, ReleaseWatch};

/// Lock key → waiters. See the module docs.
#[derive(Default)]
pub(crate) struct Wakeups {
    slots: Mutex<HashMap<Box<str>, Registered>>,
    /// Number of entries in `slots`, so that a release with nobody waiting
    /// (the common case) skips the mutex.
    keys_waiting: AtomicUsize,
}

struct Registered {
    slot: Arc<Slot>,
    waiters: usize,
}

struct Slot {
    notify: Arc<Notify>,
    remote: OnceCell<ReleaseWatch>,
}

/// One waiter's registration; dropping it unregisters.
pub(crate) struct Waiter<'a> {
    wakeups: &'a Wakeups,
    key: &'a str,
    slot: Arc<Slot>,
}

impl Wakeups {
    fn slots(&self) -> MutexGuard<'_, HashMap<Box<str>, Registered>> {
        // The map is consistent after every statement, so a panic elsewhere
        // while it was held cannot have broken it.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a waiter for `key`. Create and `enable` its
    /// [`notified`](Waiter::notified) future before re-checking the record.
    pub(crate) fn register<'a>(&'a self, key: &'a str) -> Waiter<'a> {
        let slot = {
            let mut slots = self.slots();
            let registered = slots.entry(key.into()).or_insert_with(|| {
                self.keys_waiting.fetch_add(1, Ordering::SeqCst);
                Registered {
                    slot: Arc::new(Slot {
                        notify: Arc::new(Notify::new()),
                        remote: OnceCell::new(),
                    }),
                    waiters: 0,
                }
            });
            registered.waiters += 1;
            Arc::clone(&registered.slot)
        };
        // Pairs with the fence in `wake`: either the releaser sees this
        // registration, or our re-check of the record sees the release.
        fence(Ordering::SeqCst);
        Waiter {
            wakeups: self,
            key,
            slot,
        }
    }

    /// Wakes every waiter registered for `key` right now.
    pub(crate) fn wake(&self, key: &str) {
        // Pairs with the fence in `register` (a store-load handshake: the
        // caller's release of the record is the store on this side).
        fence(Ordering::SeqCst);
        if self.keys_waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(registered) = self.slots().get(key) {
            registered.slot.notify.notify_waiters();
        }
    }

    /// Wakes every waiter on a key that starts with `prefix`.
    pub(crate) fn wake_prefix(&self, prefix: &str) {
        fence(Ordering::SeqCst);
        if self.keys_waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        for (key, registered) in self.slots().iter() {
            if key.starts_with(prefix) {
                registered.slot.notify.notify_waiters();
            }
        }
    }

    /// How many keys have waiters in this process.
    pub(crate) fn len(&self) -> usize {
        self.slots().len()
    }
}

impl Waiter<'_> {
    /// The wake-up future. `enable` it before re-checking the record.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.slot.notify.notified()
    }

    /// Makes sure releases in other processes wake this key's waiters too.
    /// The first waiter on a key asks the backend; the rest share its watch.
    /// Failure is not fatal: waiters then rely on the lease bound.
    pub(crate) async fn watch_remote_releases<B: Backend>(&self, backend: &B) {
        let notify = Arc::clone(&self.slot.notify);
        self.watch_remote(backend.watch_releases(self.key, notify))
            .await;
    }

    /// As [`watch_remote_releases`](Self::watch_remote_releases), for the
    /// end of fill leases on a value key.
    pub(crate) async fn watch_remote_fills<B: Backend>(&self, backend: &B) {
        let notify = Arc::clone(&self.slot.notify);
        self.watch_remote(backend.watch_fills(self.key, notify))
            .await;
    }

    async fn watch_remote(&self, watch: impl Future<Output = crate::Result<ReleaseWatch>>) {
        if let Err(error) = self.slot.remote.get_or_try_init(|| watch).await {
            tracing::warn!(
                key = self.key,
                %error,
                "cannot watch for wake-ups from other processes; waiting on the lease bound"
            );
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut slots = self.wakeups.slots();
        if let Some(registered) = slots.get_mut(self.key) {
            registered.waiters -= 1;
            if registered.waiters == 0 {
                slots.remove(self.key);
                self.wakeups.keys_waiting.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakeups")
            .field("keys_waiting", &self.keys_waiting.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    #[test]
    fn entry_lives_exactly_as_long_as_its_waiters() {
        let wakeups = Wakeups::default();
        let first = wakeups.register("k");
        let second = wakeups.register("k");
        assert_eq!(wakeups.len(), 1);
        drop(first);
        assert_eq!(wakeups.len(), 1);
        drop(second);
        assert_eq!(wakeups.len(), 0);
        assert_eq!(wakeups.keys_waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn wake_reaches_an_enabled_waiter_and_only_its_key() {
        let wakeups = Wakeups::default();
        let waiter = wakeups.register("k");
        let other = wakeups.register("other");
        let mut notified = pin!(waiter.notified());
        notified.as_mut().enable();
        let mut untouched = pin!(other.notified());
        untouched.as_mut().enable();

        wakeups.wake("k");
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert_eq!(notified.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(untouched.as_mut().poll(&mut cx), Poll::Pending);
    }
}
