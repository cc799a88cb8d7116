//! RedLock as a stampede guard (aiocache semantics), on every backend.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede::{OptimisticLock, RedLock};
use tokio::sync::Barrier;

use crate::common::{assert_between, until_waiting, Store};

/// Long enough that a waiter returning early can only have been woken.
const LONG_LEASE: Duration = Duration::from_secs(10);
/// How soon after a release a woken waiter must be back.
const WAKE_BOUND: Duration = Duration::from_secs(1);

pub async fn first_caller_holds_and_record_is_a_uuid_at_key_lock(store: Store) {
    let cache = store.handle().await;
    let guard = RedLock::new(&cache, "k", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(guard.holds_lock());
    assert!(!guard.was_woken());

    let record = cache
        .get("k-lock")
        .await
        .unwrap()
        .expect("record at k-lock");
    let owner = uuid::Uuid::parse_str(std::str::from_utf8(&record).unwrap()).unwrap();
    assert_eq!(owner.get_version_num(), 4);
    // The guarded key itself is untouched.
    assert_eq!(cache.get("k").await.unwrap(), None);

    assert!(guard.release().await.unwrap());
    assert_eq!(cache.get("k-lock").await.unwrap(), None);
}

pub async fn waiter_is_woken_by_release_not_by_the_lease(store: Store) {
    let cache = store.handle().await;
    let lock = RedLock::new(&cache, "k", LONG_LEASE);
    let holder = lock.acquire().await.unwrap();
    let released = Arc::new(AtomicBool::new(false));

    let waiter = tokio::spawn({
        let (lock, released) = (lock.clone(), released.clone());
        async move {
            let guard = lock.acquire().await.unwrap();
            (guard, released.load(Ordering::SeqCst), Instant::now())
        }
    });
    until_waiting(&cache, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiter.is_finished(),
        "waiter returned while the lock was held"
    );

    released.store(true, Ordering::SeqCst);
    let release_at = Instant::now();
    assert!(holder.release().await.unwrap());
    let (guard, saw_release, returned_at) = waiter.await.unwrap();

    assert!(saw_release, "waiter returned before the release");
    assert!(!guard.holds_lock(), "a waiter proceeds without the lock");
    assert!(guard.was_woken(), "woken by the release, not the lease");
    assert_between(
        "wake-up after release",
        returned_at - release_at,
        Duration::ZERO,
        WAKE_BOUND,
    );
    assert!(
        !guard.release().await.unwrap(),
        "a waiter's release is a no-op"
    );
    assert_eq!(cache.waiting_lock_keys(), 0);
}

pub async fn waiter_gives_up_when_the_lease_runs_out(store: Store) {
    let cache = store.handle().await;
    let lease = Duration::from_millis(300);
    let lock = RedLock::new(&cache, "k", lease);
    let started = Instant::now();
    let holder = lock.acquire().await.unwrap();
    assert!(holder.holds_lock());

    let guard = lock.acquire().await.unwrap();
    assert!(!guard.holds_lock());
    assert!(!guard.was_woken(), "nobody released; the lease ran out");
    assert_between(
        "waiting out an unreleased lease",
        started.elapsed(),
        lease - Duration::from_millis(50),
        lease + Duration::from_millis(700),
    );
    assert_eq!(cache.waiting_lock_keys(), 0);
    drop(holder);
}

pub async fn late_caller_never_waits_longer_than_its_lease(store: Store) {
    let cache = store.handle().await;
    let _holder = RedLock::new(&cache, "k", LONG_LEASE)
        .acquire()
        .await
        .unwrap();

    // A caller with a shorter lease than the holder's waits its own lease.
    let short = Duration::from_millis(300);
    let started = Instant::now();
    let guard = RedLock::new(&cache, "k", short).acquire().await.unwrap();
    assert!(!guard.holds_lock());
    assert_between(
        "short-lease waiter",
        started.elapsed(),
        short - Duration::from_millis(50),
        short + Duration::from_millis(700),
    );

    // A caller arriving late in a holder's lease waits only for what is left of it.
    let holder_lease = Duration::from_millis(600);
    let started = Instant::now();
    let _second = RedLock::new(&cache, "other", holder_lease)
        .acquire()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let guard = RedLock::new(&cache, "other", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(!guard.holds_lock());
    assert_between(
        "waiting out the rest of the holder's lease",
        started.elapsed(),
        Duration::from_millis(300),
        holder_lease + store.kind.ttl_slack(),
    );
}

pub async fn one_holder_among_many_concurrent_callers(store: Store) {
    const CALLERS: usize = 100;
    let cache = store.handle().await;
    let lock = RedLock::new(&cache, "k", LONG_LEASE);
    let barrier = Arc::new(Barrier::new(CALLERS));
    let released = Arc::new(AtomicBool::new(false));
    let holders = Arc::new(AtomicUsize::new(0));

    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (lock, barrier, released, holders) = (
                lock.clone(),
                barrier.clone(),
                released.clone(),
                holders.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let guard = lock.acquire().await.unwrap();
                if guard.holds_lock() {
                    holders.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    released.store(true, Ordering::SeqCst);
                    assert!(guard.release().await.unwrap());
                    None
                } else {
                    Some((guard.was_woken(), released.load(Ordering::SeqCst)))
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut waiters = 0;
    for task in tasks {
        if let Some((woken, after_release)) = task.await.unwrap() {
            waiters += 1;
            assert!(
                after_release,
                "a waiter returned before the holder released"
            );
            assert!(woken, "a waiter sat out the lease instead of being woken");
        }
    }
    assert_eq!(
        holders.load(Ordering::SeqCst),
        1,
        "exactly one caller holds the lock"
    );
    assert_eq!(waiters, CALLERS - 1);
    assert!(
        started.elapsed() < LONG_LEASE / 2,
        "callers waited {:?}",
        started.elapsed()
    );
    assert_eq!(cache.waiting_lock_keys(), 0);
}

pub async fn release_twice_removes_once(store: Store) {
    let cache = store.handle().await;
    let guard = RedLock::new(&cache, "k", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(guard.release().await.unwrap());
    assert!(!guard.holds_lock());
    assert!(!guard.release().await.unwrap());
    // The lock is free for the next caller at once.
    let next = RedLock::new(&cache, "k", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(next.holds_lock());
}

pub async fn stale_release_leaves_the_new_holders_record(store: Store) {
    let cache = store.handle().await;
    let lease = store.kind.short_ttl();
    let stale = RedLock::new(&cache, "k", lease).acquire().await.unwrap();
    assert!(stale.holds_lock());

    // Once the lease runs out, someone else takes the lock.
    let lock = RedLock::new(&cache, "k", LONG_LEASE);
    let deadline = Instant::now() + lease + store.kind.ttl_slack();
    let fresh = loop {
        let guard = lock.acquire().await.unwrap();
        if guard.holds_lock() {
            break guard;
        }
        assert!(
            Instant::now() < deadline,
            "the expired lease was never retaken"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let fresh_owner = cache.get("k-lock").await.unwrap().expect("fresh record");

    assert!(
        !stale.release().await.unwrap(),
        "a stale release must remove nothing"
    );
    assert_eq!(cache.get("k-lock").await.unwrap(), Some(fresh_owner));
    assert!(fresh.release().await.unwrap());
}

pub async fn dropped_guard_releases_in_the_background(store: Store) {
    let cache = store.handle().await;
    let lock = RedLock::new(&cache, "k", LONG_LEASE);
    let holder = lock.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move { lock.acquire().await.unwrap() }
    });
    until_waiting(&cache, 1).await;

    let dropped_at = Instant::now();
    drop(holder); // no release()
    let guard = waiter.await.unwrap();
    assert!(guard.was_woken());
    assert_between(
        "wake-up after drop",
        dropped_at.elapsed(),
        Duration::ZERO,
        WAKE_BOUND,
    );
    assert_eq!(
        cache.get("k-lock").await.unwrap(),
        None,
        "record left behind"
    );
}

pub async fn panicking_holder_does_not_strand_waiters(store: Store) {
    let cache = store.handle().await;
    let lock = RedLock::new(&cache, "k", LONG_LEASE);
    let (acquired_tx, acquired_rx) = tokio::sync::oneshot::channel();
    let (panic_tx, panic_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn({
        let lock = lock.clone();
        async move {
            let _guard = lock.acquire().await.unwrap();
            acquired_tx.send(()).unwrap();
            let _ = panic_rx.await;
            panic!("fill failed while holding the lock (expected by this test)");
        }
    });
    acquired_rx.await.unwrap();
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move { lock.acquire().await.unwrap() }
    });
    until_waiting(&cache, 1).await;

    let panicked_at = Instant::now();
    panic_tx.send(()).unwrap();
    assert!(holder.await.unwrap_err().is_panic());
    let guard = waiter.await.unwrap();
    assert!(guard.was_woken());
    assert_between(
        "wake-up after panic",
        panicked_at.elapsed(),
        Duration::ZERO,
        WAKE_BOUND,
    );
}

pub async fn cancelled_waiter_leaves_no_state(store: Store) {
    let cache = store.handle().await;
    let lock = RedLock::new(&cache, "k", LONG_LEASE);
    let holder = lock.acquire().await.unwrap();
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let lock = lock.clone();
            tokio::spawn(async move { lock.acquire().await })
        })
        .collect();
    until_waiting(&cache, 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for waiter in &waiters {
        waiter.abort();
    }
    for waiter in waiters {
        assert!(waiter.await.unwrap_err().is_cancelled());
    }
    assert_eq!(
        cache.waiting_lock_keys(),
        0,
        "a cancelled waiter stayed registered"
    );

    // The key still works: a new waiter is woken by the release.
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move { lock.acquire().await.unwrap() }
    });
    until_waiting(&cache, 1).await;
    assert!(holder.release().await.unwrap());
    assert!(waiter.await.unwrap().was_woken());
    assert_eq!(cache.waiting_lock_keys(), 0);
}

pub async fn cancelled_acquire_does_not_leak_the_record(store: Store) {
    let cache = store.handle().await;
    let lock = RedLock::new(&cache, "k", LONG_LEASE);
    // Cancel acquires at many different points: before, during and after
    // the create, and while waiting.
    for round in 0..60u64 {
        let cut = Duration::from_micros(round * 37 % 900);
        tokio::select! {
            guard = lock.acquire() => drop(guard),
            () = tokio::time::sleep(cut) => {}
        }
    }
    // Every record a cancelled acquire may have created is released in the
    // background, so the lock is free well before any lease runs out.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let guard = lock.acquire().await.unwrap();
        if guard.holds_lock() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a cancelled acquire left its record behind"
        );
    }
    assert_eq!(cache.waiting_lock_keys(), 0);
}

pub async fn wake_map_is_empty_after_many_keys(store: Store) {
    // 100,000 keys in memory; the network backends prove the same on fewer.
    let (keys, batch) = if store.kind.is_shared() {
        (2_000, 250)
    } else {
        (100_000, 2_000)
    };
    let cache = store.handle().await;
    let mut most_waiting = 0;
    for first in (0..keys).step_by(batch) {
        let locks: Vec<_> = (first..first + batch)
            .map(|i| RedLock::new(&cache, format!("key-{i}"), LONG_LEASE))
            .collect();
        let holders = futures::future::try_join_all(locks.iter().map(|l| l.acquire()))
            .await
            .unwrap();
        assert!(holders.iter().all(|g| g.holds_lock()));
        let waiters: Vec<_> = locks
            .iter()
            .map(|lock| {
                let lock = lock.clone();
                tokio::spawn(async move { lock.acquire().await.unwrap().was_woken() })
            })
            .collect();
        until_waiting(&cache, batch).await;
        most_waiting = most_waiting.max(cache.waiting_lock_keys());
        // One waiter in ten is cancelled instead of woken.
        for waiter in waiters.iter().step_by(10) {
            waiter.abort();
        }
        futures::future::try_join_all(holders.iter().map(|g| g.release()))
            .await
            .unwrap();
        for (i, waiter) in waiters.into_iter().enumerate() {
            match waiter.await {
                Ok(woken) => assert!(woken, "waiter {i} was not woken"),
                Err(e) => assert!(i % 10 == 0 && e.is_cancelled()),
            }
        }
    }
    assert_eq!(
        most_waiting, batch,
        "the map did hold an entry per waited-on key"
    );
    assert_eq!(cache.waiting_lock_keys(), 0, "the wake-up map kept entries");
}

pub async fn bad_lock_input_is_a_clear_error(store: Store) {
    let cache = store.handle().await;
    let empty = RedLock::new(&cache, "", LONG_LEASE)
        .acquire()
        .await
        .unwrap_err();
    assert!(empty.is_invalid_input());
    assert!(empty.to_string().contains("must not be empty"), "{empty}");

    let zero = RedLock::new(&cache, "k", Duration::ZERO)
        .acquire()
        .await
        .unwrap_err();
    assert!(zero.is_invalid_input());
    assert!(zero.to_string().contains("lease"), "{zero}");
    assert_eq!(
        cache.get("k-lock").await.unwrap(),
        None,
        "nothing was locked"
    );

    assert!(OptimisticLock::acquire(&cache, "")
        .await
        .unwrap_err()
        .is_invalid_input());
}
