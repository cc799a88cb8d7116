//! Lock records on memcached: owner-checked release, sub-second leases,
//! fencing tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede::backend::memcached::fence_key;
use stampede::backend::memcached::memcache::exp::{Delete, MutationStatus::Applied};
use stampede::backend::{Backend, Fencing, LockAttempt};
use stampede::{Cache, RedLock};
use tokio::sync::Mutex;

use super::common::assert_between;
use super::proxy::HoldRequests;
use super::{backend, servers_of, shared_url, unique};

const LONG: Duration = Duration::from_secs(30);
const HELD: LockAttempt = LockAttempt::Held { remaining: None };
const ACQUIRED: LockAttempt = LockAttempt::Acquired { fence: None };

/// The release race made deterministic: A's release has read its own record
/// (`mg`) and is held back before its compare-and-delete (`md C<cas>`); the
/// record then expires and B takes the lock; A's delete must miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_paused_between_read_and_delete_never_removes_the_new_holder() {
    let upstream = servers_of(&shared_url()).remove(0);
    let mut proxy = HoldRequests::start(upstream, "md").await;
    let a = backend(&format!("memcached://{}", proxy.addr)).await;
    let b = backend(&shared_url()).await;
    let key = unique("paused-release");

    // Control: with nobody else around, the held delete goes through.
    assert_eq!(
        a.try_lock(&key, b"owner-a", LONG, Fencing::Skip)
            .await
            .unwrap(),
        ACQUIRED
    );
    let release = tokio::spawn({
        let a = backend(&format!("memcached://{}", proxy.addr)).await;
        let key = key.clone();
        async move { a.release(&key, b"owner-a").await }
    });
    proxy.request_held().await;
    proxy.let_one_through();
    assert!(
        release.await.unwrap().unwrap(),
        "the owner's release removes its record"
    );

    for round in 0..25 {
        assert_eq!(
            a.try_lock(&key, b"owner-a", LONG, Fencing::Skip)
                .await
                .unwrap(),
            ACQUIRED
        );
        let a_release = tokio::spawn({
            let a = backend(&format!("memcached://{}", proxy.addr)).await;
            let key = key.clone();
            async move { a.release(&key, b"owner-a").await }
        });
        // A has read its record and compared the owner; its delete waits.
        proxy.request_held().await;
        // A's lease runs out (the record vanishes as an expiry would make
        // it) and B takes the lock, in this round even with the same owner
        // bytes, as a buggy owner scheme might produce.
        assert!(b.delete(&key).await.unwrap());
        let b_owner: &[u8] = if round % 2 == 0 {
            b"owner-b"
        } else {
            b"owner-a"
        };
        assert_eq!(
            b.try_lock(&key, b_owner, LONG, Fencing::Skip)
                .await
                .unwrap(),
            ACQUIRED
        );
        proxy.let_one_through();

        assert!(
            !a_release.await.unwrap().unwrap(),
            "round {round}: stale release removed something"
        );
        let record = b
            .lock_record(&key)
            .await
            .unwrap()
            .expect("B's record survives");
        assert_eq!(&record.owner[..], b_owner, "round {round}");
        assert!(b.release(&key, b_owner).await.unwrap());
    }
}

/// The same race left to the scheduler, many rounds: A's release runs
/// concurrently with the record's expiry and B's acquire, at varying offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_release_racing_a_new_acquire_never_removes_the_new_record() {
    let url = shared_url();
    let (a, b) = (Arc::new(backend(&url).await), Arc::new(backend(&url).await));
    let key = unique("release-race");
    let mut own_record_removed = 0;
    for round in 0..300 {
        assert_eq!(
            a.try_lock(&key, b"owner-a", LONG, Fencing::Skip)
                .await
                .unwrap(),
            ACQUIRED
        );
        // Who starts first, and by how much, varies from round to round.
        let (offset_a, offset_b) = (fastrand::u64(0..400), fastrand::u64(0..400));
        let stale_release = tokio::spawn({
            let (a, key) = (Arc::clone(&a), key.clone());
            async move {
                spin(offset_a);
                a.release(&key, b"owner-a").await.unwrap()
            }
        });
        let expiry_and_retake = tokio::spawn({
            let (b, key) = (Arc::clone(&b), key.clone());
            async move {
                spin(offset_b);
                b.delete(&key).await.unwrap();
                b.try_lock(&key, b"owner-b", LONG, Fencing::Skip)
                    .await
                    .unwrap()
            }
        });
        let removed_own = stale_release.await.unwrap();
        assert_eq!(expiry_and_retake.await.unwrap(), ACQUIRED, "round {round}");
        own_record_removed += usize::from(removed_own);

        let record = b.lock_record(&key).await.unwrap();
        let owner = record.map(|r| r.owner);
        assert_eq!(
            owner.as_deref(),
            Some(&b"owner-b"[..]),
            "round {round}: B's record was removed"
        );
        assert!(b.release(&key, b"owner-b").await.unwrap());
    }
    // Either order is fine, and both occur: A sometimes removes its own
    // record before the expiry. Printed for whoever runs with --nocapture.
    println!("A removed its own record first in {own_record_removed} of 300 rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_second_lease_outlives_itself_at_the_server_and_bounds_waiters_locally() {
    let lease = Duration::from_millis(200);
    let namespace = unique("sub-second");
    let url = format!("{}?namespace={namespace}", shared_url());
    let holder_cache = Cache::from_url(&url).await.unwrap();
    let waiter_cache = Cache::from_url(&url).await.unwrap();

    let started = Instant::now();
    let holder = RedLock::new(&holder_cache, "k", lease)
        .acquire()
        .await
        .unwrap();
    assert!(holder.holds_lock());

    // A caller in another handle waits, and gives up on its own lease.
    let waited_from = Instant::now();
    let guard = RedLock::new(&waiter_cache, "k", lease)
        .acquire()
        .await
        .unwrap();
    assert!(!guard.holds_lock());
    assert!(!guard.was_woken(), "nobody released: the lease ran out");
    assert_between(
        "waiting out a 200 ms lease",
        waited_from.elapsed(),
        lease - Duration::from_millis(50),
        lease + Duration::from_millis(700),
    );

    // Meanwhile the record never left the server before the lease was up:
    // a read sent after the lease had run out still finds it.
    loop {
        let sent_at = started.elapsed();
        let record = holder_cache.get("k-lock").await.unwrap();
        assert!(
            record.is_some(),
            "record gone {sent_at:?} into a {lease:?} lease"
        );
        if sent_at >= lease {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // And it does go: whole seconds rounded up, plus the clock margin.
    let gone_by = started + Duration::from_secs(1 + 2) + Duration::from_millis(1_500);
    while holder_cache.get("k-lock").await.unwrap().is_some() {
        assert!(
            Instant::now() < gone_by,
            "record still there after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !holder.release().await.unwrap(),
        "the expired lease is not ours to release"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_locks_report_no_remaining_lease_but_lock_record_does() {
    let b = backend(&shared_url()).await;
    let key = unique("held");
    assert_eq!(
        b.try_lock(&key, b"me", Duration::from_secs(10), Fencing::Skip)
            .await
            .unwrap(),
        ACQUIRED
    );
    assert_eq!(
        b.try_lock(&key, b"you", Duration::from_secs(10), Fencing::Issue)
            .await
            .unwrap(),
        HELD
    );
    let record = b.lock_record(&key).await.unwrap().expect("held");
    assert_eq!(&record.owner[..], b"me");
    let remaining = record.remaining.expect("a lock record expires");
    // ceil(10 s) + 2 s of clock margin, counted down in whole seconds.
    assert!(
        remaining >= Duration::from_secs(10) && remaining <= Duration::from_secs(12),
        "{remaining:?}"
    );

    assert!(!b
        .extend(&key, b"you", Duration::from_secs(60))
        .await
        .unwrap());
    assert!(b
        .extend(&key, b"me", Duration::from_secs(60))
        .await
        .unwrap());
    let extended = b
        .lock_record(&key)
        .await
        .unwrap()
        .unwrap()
        .remaining
        .unwrap();
    assert!(extended > Duration::from_secs(55), "{extended:?}");
    assert!(!b.release(&key, b"you").await.unwrap());
    assert!(b.release(&key, b"me").await.unwrap());
    assert!(!b
        .extend(&key, b"me", Duration::from_secs(60))
        .await
        .unwrap());
}

/// Busy-waits `micros` microseconds: finer than a tokio timer.
fn spin(micros: u64) {
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn fence(attempt: LockAttempt) -> u64 {
    match attempt {
        LockAttempt::Acquired { fence: Some(fence) } => fence,
        other => panic!("expected a fenced acquire, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_strictly_increase_across_handles() {
    let url = shared_url();
    let handles = Arc::new(futures::future::join_all((0..3).map(|_| backend(&url))).await);
    let key = unique("fenced");
    let now_micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;

    // Taken in turn by handles in a shuffled order.
    let mut last = 0;
    for round in 0..60 {
        let handle = &handles[fastrand::usize(0..3)];
        let token = fence(
            handle
                .try_lock(&key, b"o", LONG, Fencing::Issue)
                .await
                .unwrap(),
        );
        if round == 0 {
            // A new counter starts at the time in microseconds.
            assert!(
                token >= now_micros && token < now_micros + 60_000_000,
                "{token}"
            );
        }
        assert!(token > last, "round {round}: {token} after {last}");
        last = token;
        assert!(handle.release(&key, b"o").await.unwrap());
    }

    // Contended: whoever holds the lock must see a token above every
    // token issued before it.
    let highest = Arc::new(Mutex::new(last));
    let tasks: Vec<_> = (0..12)
        .map(|task| {
            let (handles, highest, key) = (Arc::clone(&handles), Arc::clone(&highest), key.clone());
            tokio::spawn(async move {
                let handle = &handles[task % 3];
                let owner = format!("owner-{task}");
                for _ in 0..5 {
                    let token = loop {
                        match handle
                            .try_lock(&key, owner.as_bytes(), LONG, Fencing::Issue)
                            .await
                            .unwrap()
                        {
                            LockAttempt::Acquired { fence } => break fence.unwrap(),
                            LockAttempt::Held { .. } => tokio::task::yield_now().await,
                        }
                    };
                    let mut highest = highest.lock().await;
                    assert!(token > *highest, "{token} issued after {}", *highest);
                    *highest = token;
                    drop(highest);
                    assert!(handle.release(&key, owner.as_bytes()).await.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_counter_restarts_above_every_token_it_issued() {
    let b = backend(&shared_url()).await;
    let key = unique("evicted");
    let mut last = 0;
    for _ in 0..5 {
        last = fence(b.try_lock(&key, b"o", LONG, Fencing::Issue).await.unwrap());
        assert!(b.release(&key, b"o").await.unwrap());
    }
    // As if memcached's LRU had dropped the counter.
    let counter = Delete::new(fence_key(&key).unwrap());
    assert_eq!(b.client().run(counter).await.unwrap().status, Applied);
    let after = fence(b.try_lock(&key, b"o", LONG, Fencing::Issue).await.unwrap());
    assert!(after > last, "{after} after eviction, {last} before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_shorter_than_a_round_trip_still_gets_its_token() {
    let b = backend(&shared_url()).await;
    let cache = Cache::from_url(&shared_url()).await.unwrap();
    for lease in [Duration::from_nanos(1), Duration::from_micros(1)] {
        let key = unique("tiny");
        // The record outlives a whole second, so a token back within it is
        // safe: the lease counts as one second.
        fence(b.try_lock(&key, b"o", lease, Fencing::Issue).await.unwrap());
        assert!(b.release(&key, b"o").await.unwrap());
        // One attempt per lock: no token burnt on attempts given back.
        let lock = RedLock::new(&cache, format!("{key}-tiny"), lease);
        for _ in 0..3 {
            let guard = tokio::time::timeout(Duration::from_secs(5), lock.lock())
                .await
                .expect("lock() with a tiny lease hung")
                .unwrap();
            let token = guard.fencing_token();
            assert!(guard.release().await.unwrap());
            let next = lock.try_lock().await.unwrap();
            assert_eq!(next.fencing_token(), token + 1, "{lease:?}");
            assert!(next.release().await.unwrap());
        }
    }
}
