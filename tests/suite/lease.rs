//! Exclusive leases: lock, try_lock, wait timeouts, renewal, loss, fencing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stampede::{Cache, LeaseState, RedLock};

use crate::common::{assert_between, until_waiting, Kind, Store};

const LONG_LEASE: Duration = Duration::from_secs(10);
const WAKE_BOUND: Duration = Duration::from_secs(1);

/// A lease short enough to watch run out, long enough for the backend's
/// TTL granularity.
fn short_lease(kind: Kind) -> Duration {
    match kind.store() {
        Kind::Memcached => Duration::from_secs(3),
        _ => Duration::from_millis(600),
    }
}

/// One critical section as seen from inside: its fencing token and when it
/// began and ended.
#[derive(Clone, Copy, Debug)]
struct Section {
    fence: u64,
    entered: Instant,
    left: Instant,
}

/// No two sections overlap, and tokens strictly increase in the order the
/// sections ran.
#[track_caller]
fn assert_exclusive_and_fenced(mut sections: Vec<Section>) {
    sections.sort_by_key(|s| s.entered);
    for pair in sections.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            a.left <= b.entered,
            "critical sections overlap: {a:?} and {b:?}"
        );
        assert!(
            a.fence < b.fence,
            "fencing tokens went backwards: {a:?} then {b:?}"
        );
    }
}

pub async fn lock_excludes_and_fences_across_tasks_and_handles(store: Store) {
    const TASKS: usize = 32;
    const ROUNDS: usize = 20;
    let handles = [store.handle().await, store.handle().await];
    let sections = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let lock = RedLock::new(&handles[i % 2], "job", LONG_LEASE);
            let sections = sections.clone();
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let guard = lock.lock().await.unwrap();
                    let entered = Instant::now();
                    tokio::time::sleep(Duration::from_micros(300)).await;
                    let left = Instant::now();
                    let fence = guard.fencing_token();
                    assert!(
                        guard.release().await.unwrap(),
                        "our record was removed by someone else"
                    );
                    sections.lock().unwrap().push(Section {
                        fence,
                        entered,
                        left,
                    });
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let sections = Arc::try_unwrap(sections).unwrap().into_inner().unwrap();
    assert_eq!(sections.len(), TASKS * ROUNDS);
    assert_exclusive_and_fenced(sections);
    for handle in &handles {
        assert_eq!(handle.waiting_lock_keys(), 0);
        assert_eq!(handle.held_lock_count(), 0);
    }
}

pub async fn lock_waiter_is_woken_by_release(store: Store) {
    let cache = store.handle().await;
    let lock = RedLock::new(&cache, "job", LONG_LEASE);
    let holder = lock.lock().await.unwrap();
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move {
            let guard = lock.lock().await.unwrap();
            (guard, Instant::now())
        }
    });
    until_waiting(&cache, 1).await;
    assert!(
        !waiter.is_finished(),
        "lock() returned while another holds the lock"
    );
    let released_at = Instant::now();
    assert!(holder.release().await.unwrap());
    let (guard, locked_at) = waiter.await.unwrap();
    assert_between(
        "lock after release",
        locked_at - released_at,
        Duration::ZERO,
        WAKE_BOUND,
    );
    assert!(guard.fencing_token() > holder.fencing_token());
    assert_eq!(guard.state(), LeaseState::Held);
}

pub async fn lock_takes_over_when_the_holders_lease_runs_out(store: Store) {
    let cache = store.handle().await;
    let lease = short_lease(store.kind);
    let started = Instant::now();
    let stale = RedLock::new(&cache, "job", lease).lock().await.unwrap();
    let fresh = RedLock::new(&cache, "job", LONG_LEASE)
        .lock()
        .await
        .unwrap();
    assert_between(
        "taking over an abandoned lease",
        started.elapsed(),
        lease - Duration::from_millis(50),
        lease + store.kind.ttl_slack(),
    );
    assert!(fresh.fencing_token() > stale.fencing_token());
    // The stale holder finds out, and cannot remove the new record.
    assert!(!stale.is_still_valid().await.unwrap());
    assert_eq!(stale.state(), LeaseState::Lost);
    assert!(!stale.release().await.unwrap());
    assert!(fresh.is_still_valid().await.unwrap());
}

pub async fn lock_gives_up_after_wait_timeout(store: Store) {
    let cache = store.handle().await;
    let _holder = RedLock::new(&cache, "job", LONG_LEASE)
        .lock()
        .await
        .unwrap();
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = RedLock::new(&cache, "job", LONG_LEASE)
        .wait_timeout(timeout)
        .lock()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("\"job\""), "{err}");
    assert_between(
        "wait timeout",
        started.elapsed(),
        timeout,
        timeout + Duration::from_millis(700),
    );
    assert_eq!(cache.waiting_lock_keys(), 0);
}

pub async fn try_lock_reports_the_holders_remaining_lease(store: Store) {
    let cache = store.handle().await;
    let lease = Duration::from_secs(4);
    let started = Instant::now();
    let holder = RedLock::new(&cache, "job", lease).lock().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let err = RedLock::new(&cache, "job", lease)
        .try_lock()
        .await
        .unwrap_err();
    let true_remaining = lease.saturating_sub(started.elapsed());
    assert!(err.is_locked(), "{err}");
    let reported = err
        .remaining_lease()
        .expect("the error tells the remaining lease");
    // Whole-second backends round up; nobody reports less than is left.
    // memcached reports the server TTL, margin included, on a clock that
    // ticks once a second: up to the margin plus one tick more.
    let granularity = if store.kind.store() == Kind::Memcached {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(50)
    };
    assert_between(
        "reported remaining lease",
        reported,
        true_remaining - Duration::from_millis(100),
        true_remaining + granularity,
    );
    assert!(err.to_string().contains("lease runs out in"), "{err}");
    // try_lock never waited, and it did not disturb the holder.
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(holder.is_still_valid().await.unwrap());
    assert!(holder.release().await.unwrap());
    assert!(RedLock::new(&cache, "job", lease).try_lock().await.is_ok());
}

pub async fn renewal_keeps_the_lease_across_three_leases(store: Store) {
    let cache = store.handle().await;
    let lease = short_lease(store.kind);
    let lock = RedLock::new(&cache, "job", lease).auto_renew(true);
    let guard = lock.lock().await.unwrap();
    let started = Instant::now();
    while started.elapsed() < lease * 3 {
        let err = RedLock::new(&cache, "job", lease)
            .try_lock()
            .await
            .unwrap_err();
        assert!(
            err.is_locked(),
            "lock taken from a renewing holder after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(lease / 5).await;
    }
    assert_eq!(guard.state(), LeaseState::Held);
    assert!(guard.is_still_valid().await.unwrap());
    assert!(guard.release().await.unwrap());
    assert_eq!(guard.state(), LeaseState::Released);
    assert!(lock.try_lock().await.is_ok());
}

pub async fn deleted_record_makes_lost_resolve_within_a_renewal(store: Store) {
    let cache = store.handle().await;
    let lease = short_lease(store.kind);
    let guard = RedLock::new(&cache, "job", lease)
        .auto_renew(true)
        .lock()
        .await
        .unwrap();
    let mut states = guard.watch_state();

    let deleted_at = Instant::now();
    assert!(
        cache.delete("job-lock").await.unwrap(),
        "the record lives at job-lock"
    );
    guard.lost().await;
    assert_between(
        "noticing the loss",
        deleted_at.elapsed(),
        Duration::ZERO,
        lease / 3 + Duration::from_millis(500),
    );
    assert_eq!(guard.state(), LeaseState::Lost);
    states.changed().await.unwrap();
    assert_eq!(*states.borrow(), LeaseState::Lost);
    assert!(!guard.extend(lease).await.unwrap());
    assert!(!guard.is_still_valid().await.unwrap());
}

pub async fn lease_without_renewal_is_lost_when_it_runs_out(store: Store) {
    let cache = store.handle().await;
    let lease = short_lease(store.kind);
    let started = Instant::now();
    let guard = RedLock::new(&cache, "job", lease).lock().await.unwrap();
    guard.lost().await;
    assert_between(
        "local lease end",
        started.elapsed(),
        lease,
        lease + Duration::from_millis(300),
    );
    assert_eq!(guard.state(), LeaseState::Lost);
}

pub async fn extend_moves_the_lease_and_fails_once_taken(store: Store) {
    let cache = store.handle().await;
    let lease = short_lease(store.kind);
    let guard = RedLock::new(&cache, "job", lease).lock().await.unwrap();
    let started = Instant::now();
    assert!(guard.extend(LONG_LEASE).await.unwrap());
    tokio::time::sleep(lease + store.kind.ttl_slack()).await;
    // Past the original lease, still ours thanks to the extension.
    assert!(
        guard.is_still_valid().await.unwrap(),
        "extension did not hold after {:?}",
        started.elapsed()
    );
    assert!(RedLock::new(&cache, "job", lease)
        .try_lock()
        .await
        .unwrap_err()
        .is_locked());

    cache.delete("job-lock").await.unwrap();
    let thief = RedLock::new(&cache, "job", LONG_LEASE)
        .try_lock()
        .await
        .unwrap();
    assert!(
        !guard.extend(LONG_LEASE).await.unwrap(),
        "extended someone else's lease"
    );
    assert_eq!(guard.state(), LeaseState::Lost);
    assert!(thief.is_still_valid().await.unwrap());
    assert!(guard
        .extend(Duration::ZERO)
        .await
        .unwrap_err()
        .is_invalid_input());
}

pub async fn release_all_drops_every_held_lock(store: Store) {
    let cache = store.handle().await;
    let other = store.handle().await;
    let stampede_guard = RedLock::new(&cache, "a", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    let lease_b = RedLock::new(&cache, "b", LONG_LEASE).lock().await.unwrap();
    let lease_c = RedLock::new(&cache.with_namespace("inner"), "c", LONG_LEASE)
        .auto_renew(true)
        .lock()
        .await
        .unwrap();
    assert!(stampede_guard.holds_lock());
    assert_eq!(cache.held_lock_count(), 3);

    assert_eq!(cache.release_all().await, 3);
    assert_eq!(cache.held_lock_count(), 0);
    for key in ["a", "b", "inner:c"] {
        assert!(
            RedLock::new(&other, key, LONG_LEASE)
                .try_lock()
                .await
                .is_ok(),
            "{key} still locked after release_all"
        );
    }
    assert!(!lease_b.is_still_valid().await.unwrap());
    assert!(
        !lease_c.release().await.unwrap(),
        "released someone else's lock"
    );
    assert_eq!(cache.release_all().await, 0);
}

pub async fn synchronized_runs_one_call_at_a_time(store: Store) {
    let cache = store.handle().await;
    let inside = Arc::new(AtomicUsize::new(0));
    let most_inside = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let (cache, inside, most_inside) = (cache.clone(), inside.clone(), most_inside.clone());
            tokio::spawn(async move {
                cache
                    .synchronized(format!("user:{}", 42), LONG_LEASE, || async {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most_inside.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                        i * 10
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outputs = Vec::new();
    for call in calls {
        outputs.push(call.await.unwrap());
    }
    outputs.sort_unstable();
    assert_eq!(outputs, (0..8).map(|i| i * 10).collect::<Vec<_>>());
    assert_eq!(
        most_inside.load(Ordering::SeqCst),
        1,
        "two synchronized calls overlapped"
    );
    assert_eq!(cache.held_lock_count(), 0);
}

pub async fn synchronized_stops_work_whose_lease_is_lost(store: Store) {
    let cache = store.handle().await;
    let lease = short_lease(store.kind);
    let finished = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let result = cache
        .synchronized("job", lease, || {
            let (cache, finished) = (cache.clone(), finished.clone());
            async move {
                cache.delete("job-lock").await.unwrap(); // someone breaks our lock
                tokio::time::sleep(LONG_LEASE).await;
                finished.fetch_add(1, Ordering::SeqCst);
            }
        })
        .await;
    let err = result.unwrap_err();
    assert!(err.is_lost(), "{err}");
    assert!(
        started.elapsed() < lease + Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "the work ran on without the lock"
    );
}

pub async fn bad_lease_input_is_a_clear_error(store: Store) {
    let cache: Cache = store.handle().await;
    assert!(RedLock::new(&cache, "", LONG_LEASE)
        .lock()
        .await
        .unwrap_err()
        .is_invalid_input());
    assert!(RedLock::new(&cache, "k", Duration::ZERO)
        .try_lock()
        .await
        .unwrap_err()
        .is_invalid_input());
    let err = cache
        .synchronized("k", Duration::ZERO, || async {})
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
}

pub async fn huge_leases_are_a_lock_or_a_clear_error(store: Store) {
    let cache = store.handle().await;
    let lock = RedLock::new(&cache, "huge", Duration::MAX).wait_timeout(Duration::MAX);
    match lock.lock().await {
        Ok(guard) => {
            assert!(guard.is_still_valid().await.unwrap());
            // A second caller does not wait out a century: try_lock says held.
            let err = lock.try_lock().await.unwrap_err();
            assert!(err.is_locked(), "{err}");
            assert!(guard.release().await.unwrap());
        }
        // memcached cannot keep a record past 2038 (its clock is 32-bit).
        Err(err) => assert!(err.is_invalid_input(), "{err}"),
    }
    match lock.acquire().await {
        Ok(guard) => {
            assert!(guard.holds_lock());
            assert!(guard.release().await.unwrap());
        }
        Err(err) => assert!(err.is_invalid_input(), "{err}"),
    }
}
