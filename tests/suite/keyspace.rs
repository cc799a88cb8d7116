//! One key space: a lock record at `<key>-lock` is a key like any other.
//! Values and lock records share it on every backend, so `get`, `gets`,
//! `add`, `set`, `cas`, `delete` and the lock operations all see the same
//! thing at a key: a value or a record, never both, never one hidden from
//! the other.

use std::time::{Duration, Instant};

use stampede::RedLock;

use crate::common::{assert_between, Store};

/// Long enough that a waiter returning early can only have been woken.
const LONG_LEASE: Duration = Duration::from_secs(10);
/// How soon after a wake-up a waiter must be back.
const WAKE_BOUND: Duration = Duration::from_secs(1);

pub async fn deleting_the_record_frees_the_lock_and_wakes_waiters(store: Store) {
    let cache = store.handle().await;
    let lock = RedLock::new(&cache, "k", LONG_LEASE);
    let holder = lock.acquire().await.unwrap();
    assert!(holder.holds_lock());
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move {
            let guard = lock.acquire().await.unwrap();
            (guard.holds_lock(), guard.was_woken(), Instant::now())
        }
    });
    let locker = tokio::spawn({
        let lock = lock.clone();
        async move {
            let guard = lock.lock().await.unwrap();
            (guard, Instant::now())
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.waiting_lock_keys() < 1 {
        assert!(Instant::now() < deadline, "nobody waits on the lock");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished() && !locker.is_finished());

    let deleted_at = Instant::now();
    assert!(cache.delete("k-lock").await.unwrap());
    let (held, woken, returned_at) = waiter.await.unwrap();
    assert!(!held && woken, "the waiter was not woken by the delete");
    let (lease, locked_at) = locker.await.unwrap();
    for (what, at) in [("acquire", returned_at), ("lock", locked_at)] {
        assert_between(what, at - deleted_at, Duration::ZERO, WAKE_BOUND);
    }
    assert!(lease.is_still_valid().await.unwrap());
    assert!(!holder.release().await.unwrap(), "removed the new record");
    assert!(lease.release().await.unwrap());
}
