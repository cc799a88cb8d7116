//! One key space: a lock record at `<key>-lock` is a key like any other.
//! Values and lock records share it on every backend, so `get`, `gets`,
//! `add`, `set`, `cas`, `delete` and the lock operations all see the same
//! thing at a key: a value or a record, never both, never one hidden from
//! the other.

use std::time::{Duration, Instant};

use stampede::{Cache, LeaseState, RedLock};

use crate::common::{assert_between, Store};

/// Long enough that a waiter returning early can only have been woken.
const LONG_LEASE: Duration = Duration::from_secs(10);
/// How soon after a wake-up a waiter must be back.
const WAKE_BOUND: Duration = Duration::from_secs(1);

/// What `get` reads at `key`; panics when it is absent.
async fn stored(cache: &Cache, key: &str) -> Vec<u8> {
    cache
        .get(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("nothing at {key}"))
        .to_vec()
}

pub async fn add_fails_while_the_lock_record_is_held(store: Store) {
    let cache = store.handle().await;
    // The stampede guard's record and a fenced lease's record alike.
    let guard = RedLock::new(&cache, "k", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(guard.holds_lock());
    let lease = RedLock::new(&cache, "j", LONG_LEASE).lock().await.unwrap();
    for record in ["k-lock", "j-lock"] {
        let owner = stored(&cache, record).await;
        assert!(
            !cache.add(record, b"intruder", None).await.unwrap(),
            "add created {record} over a held lock record"
        );
        assert!(
            !cache.cas(record, b"intruder", None, None).await.unwrap(),
            "cas(None) found {record} absent while its lock is held"
        );
        assert_eq!(stored(&cache, record).await, owner);
    }
    assert!(guard.release().await.unwrap());
    assert!(lease.release().await.unwrap());
    assert!(cache.add("k-lock", b"now free", None).await.unwrap());
}

pub async fn gets_sees_the_lock_record_and_cas_replaces_it(store: Store) {
    let cache = store.handle().await;
    let guard = RedLock::new(&cache, "k", LONG_LEASE).lock().await.unwrap();
    let owner = stored(&cache, "k-lock").await;
    let (seen, token) = cache
        .gets("k-lock")
        .await
        .unwrap()
        .expect("gets sees the record that get returns");
    assert_eq!(&seen[..], &owner[..]);

    assert!(cache
        .cas("k-lock", b"taken over", Some(&token), None)
        .await
        .unwrap());
    assert_eq!(stored(&cache, "k-lock").await, b"taken over");
    assert!(!guard.is_still_valid().await.unwrap());
    assert!(!guard.release().await.unwrap(), "released a value");
    assert_eq!(stored(&cache, "k-lock").await, b"taken over");
}

pub async fn a_foreign_value_at_the_record_blocks_the_lock(store: Store) {
    let cache = store.handle().await;
    cache.set("k-lock", b"foreign", None).await.unwrap();

    let err = RedLock::new(&cache, "k", LONG_LEASE)
        .try_lock()
        .await
        .unwrap_err();
    assert!(err.is_locked(), "{err}");
    assert!(RedLock::new(&cache, "k", LONG_LEASE)
        .try_acquire()
        .await
        .unwrap()
        .is_none());

    // acquire waits its own lease and goes on without the lock.
    let short = Duration::from_millis(300);
    let started = Instant::now();
    let guard = RedLock::new(&cache, "k", short).acquire().await.unwrap();
    assert!(!guard.holds_lock());
    assert!(!guard.was_woken());
    assert_between(
        "waiting on a foreign value",
        started.elapsed(),
        short - Duration::from_millis(50),
        short + Duration::from_millis(700),
    );
    let err = RedLock::new(&cache, "k", LONG_LEASE)
        .wait_timeout(short)
        .lock()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(stored(&cache, "k-lock").await, b"foreign");

    assert!(cache.delete("k-lock").await.unwrap());
    let lease = RedLock::new(&cache, "k", LONG_LEASE)
        .try_lock()
        .await
        .unwrap();
    assert!(lease.release().await.unwrap());
}

pub async fn set_over_a_held_record_ends_the_lease(store: Store) {
    let cache = store.handle().await;
    let lease = RedLock::new(&cache, "k", LONG_LEASE).lock().await.unwrap();
    let guard = RedLock::new(&cache, "g", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(guard.holds_lock());
    cache.set("k-lock", b"value", None).await.unwrap();
    cache.set("g-lock", b"value", None).await.unwrap();

    assert!(
        !lease.extend(LONG_LEASE).await.unwrap(),
        "extended a record that a set replaced"
    );
    assert_eq!(lease.state(), LeaseState::Lost);
    assert!(!lease.release().await.unwrap(), "released a value");
    assert!(!guard.release().await.unwrap(), "released a value");
    for record in ["k-lock", "g-lock"] {
        assert_eq!(stored(&cache, record).await, b"value", "{record}");
    }
    // The value now at the record blocks the lock, like any value.
    let err = RedLock::new(&cache, "k", LONG_LEASE)
        .try_lock()
        .await
        .unwrap_err();
    assert!(err.is_locked(), "{err}");
}

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

/// Every operation sees one key space: `get`, `exists`, `gets`, `add`,
/// `set`, `delete`, `try_lock` and `release` agree, step by step, on
/// whether a key holds a value or a lock record.
pub async fn every_operation_sees_one_key_space(store: Store) {
    let cache = store.handle().await;
    let lock = RedLock::new(&cache, "one", LONG_LEASE);

    // A lock record: read as a value by get, exists and gets; refused to add.
    let lease = lock.try_lock().await.unwrap();
    let owner = stored(&cache, "one-lock").await;
    assert!(cache.exists("one-lock").await.unwrap());
    let (seen, _) = cache.gets("one-lock").await.unwrap().expect("gets");
    assert_eq!(&seen[..], &owner[..]);
    assert!(!cache.add("one-lock", b"v", None).await.unwrap());
    assert!(lock.try_lock().await.unwrap_err().is_locked());
    assert!(lease.release().await.unwrap());
    assert!(!cache.exists("one-lock").await.unwrap());
    assert_eq!(cache.get("one-lock").await.unwrap(), None);

    // A value: blocks the lock, and the lock's release does not remove it.
    assert!(cache.add("one-lock", b"value", None).await.unwrap());
    assert!(lock.try_lock().await.unwrap_err().is_locked());
    assert!(lock.try_acquire().await.unwrap().is_none());
    assert_eq!(stored(&cache, "one-lock").await, b"value");

    // Deleted, the key is free for the lock again, and a set replaces it.
    assert!(cache.delete("one-lock").await.unwrap());
    let lease = lock.try_lock().await.unwrap();
    cache.set("one-lock", b"over", None).await.unwrap();
    assert!(!lease.release().await.unwrap(), "released a value");
    assert_eq!(stored(&cache, "one-lock").await, b"over");
    assert!(cache.delete("one-lock").await.unwrap());
    assert!(!cache.delete("one-lock").await.unwrap());
}

/// `add` and `try_lock` on the same key, raced from two handles, exclude
/// each other: whoever takes the key finds its own content there and gives
/// it back, and nobody is ever inside with someone else.
pub async fn add_and_lock_exclude_each_other(store: Store) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let handles = [store.handle().await, store.handle().await];
    let inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..4usize {
        let cache = handles[task % 2].clone();
        let inside = Arc::clone(&inside);
        tasks.push(tokio::spawn(async move {
            let lock = RedLock::new(&cache, "race", LONG_LEASE);
            let mut entered = 0;
            for round in 0..40 {
                let by_lock = (round + task) % 2 == 0;
                let mine = format!("add-{task}-{round}");
                let lease = if by_lock {
                    match lock.try_lock().await {
                        Ok(lease) => Some(lease),
                        Err(err) if err.is_locked() => continue,
                        Err(err) => panic!("{err}"),
                    }
                } else if cache.add("race-lock", mine.as_bytes(), None).await.unwrap() {
                    None
                } else {
                    continue;
                };
                entered += 1;
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two inside");
                let seen = cache.get("race-lock").await.unwrap().expect("held");
                if lease.is_none() {
                    assert_eq!(&seen[..], mine.as_bytes(), "someone else's content");
                }
                inside.fetch_sub(1, Ordering::SeqCst);
                match lease {
                    Some(lease) => assert!(lease.release().await.unwrap(), "lost the lock"),
                    None => assert!(cache.delete("race-lock").await.unwrap()),
                }
            }
            entered
        }));
    }
    let mut entered = 0;
    for task in tasks {
        entered += task.await.unwrap();
    }
    assert!(entered >= 4, "the key was hardly ever free: {entered}");
    assert_eq!(cache_value(&handles[0], "race-lock").await, None);
}

async fn cache_value(cache: &Cache, key: &str) -> Option<Vec<u8>> {
    cache.get(key).await.unwrap().map(|value| value.to_vec())
}
