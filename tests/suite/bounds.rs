//! Every call returns within a bound, whatever the lease, and a cancelled
//! lock attempt leaves no record behind, on every backend.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use stampede::typed::Fill;
use stampede::{Cache, RedLock};

use crate::common::Store;

/// Far above one call's bound (the network backends' default timeout is
/// 2 s): a call that takes this long is hanging.
const CALL_BOUND: Duration = Duration::from_secs(6);
/// Long enough that a record still there after [`FREED_BOUND`] can only be
/// one that nobody released.
const LONG_LEASE: Duration = Duration::from_secs(10);
/// How soon a cancelled attempt's record must be gone.
const FREED_BOUND: Duration = Duration::from_secs(2);

/// `call`'s output, or a failure naming `what` if it takes over [`CALL_BOUND`].
async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_BOUND, call)
        .await
        .unwrap_or_else(|_| panic!("{what} did not return within {CALL_BOUND:?}"))
}

pub async fn tiny_leases_lock_at_once_and_leave_the_key_free(store: Store) {
    let cache = store.handle().await;
    let other = store.independent_handle().await;
    for lease in [Duration::from_nanos(1), Duration::from_micros(1)] {
        let key = format!("tiny-{}", lease.as_nanos());
        let lock = RedLock::new(&cache, &key, lease);
        let what = format!("lock() with a {lease:?} lease");
        let guard = bounded(&what, lock.lock()).await.unwrap();
        bounded("release", guard.release()).await.unwrap();

        // The key is free again, for another handle and for this one.
        let what = format!("try_lock() with a {lease:?} lease");
        let theirs = RedLock::new(&other, &key, lease);
        let guard = bounded(&what, theirs.try_lock()).await.unwrap();
        bounded("release", guard.release()).await.unwrap();
        let guard = bounded(&what, lock.try_lock()).await.unwrap();
        bounded("release", guard.release()).await.unwrap();

        // The lease is over as soon as it is taken: the work either ran or
        // was stopped as lost, but the call returned.
        let what = format!("synchronized() with a {lease:?} lease");
        match bounded(&what, cache.synchronized(&key, lease, || async { 7 })).await {
            Ok(output) => assert_eq!(output, 7),
            Err(error) => assert!(error.is_lost(), "{error}"),
        }
        assert!(freed(&other, &key).await, "{what} left the key held");
    }
}

/// Polls a lock attempt `polls` times, letting the runtime run in between,
/// then drops it (unless it finished first, when its guard is dropped).
async fn poll_then_drop<T>(attempt: impl Future<Output = T>, polls: usize) {
    let mut attempt = pin!(attempt);
    for _ in 0..polls {
        if let Poll::Ready(done) = futures::poll!(attempt.as_mut()) {
            drop(done);
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Waits until another handle can take the lock at `key`, for at most
/// [`FREED_BOUND`]; returns whether it could.
async fn freed(other: &Cache, key: &str) -> bool {
    let deadline = Instant::now() + FREED_BOUND;
    let lock = RedLock::new(other, key, LONG_LEASE);
    loop {
        if let Some(guard) = lock.try_acquire().await.unwrap() {
            assert!(guard.release().await.unwrap());
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn cancelled_lock_attempts_never_leave_a_record(store: Store) {
    let cache = store.handle().await;
    let other = store.independent_handle().await;
    // Thousands of attempts, each dropped after a random number of polls:
    // before, while and after its create is in flight. Capped in time for
    // a loaded machine.
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < 3_000 && started.elapsed() < Duration::from_secs(8) {
        let key = format!("cancelled-{rounds}");
        let lock = RedLock::new(&cache, &key, LONG_LEASE);
        let polls = fastrand::usize(0..6);
        let how = fastrand::u8(0..3);
        match how {
            0 => poll_then_drop(lock.try_acquire(), polls).await,
            1 => poll_then_drop(lock.try_lock(), polls).await,
            _ => poll_then_drop(lock.lock(), polls).await,
        }
        assert!(
            freed(&other, &key).await,
            "round {rounds}: an attempt (kind {how}) dropped after {polls} polls left its record held by nobody"
        );
        rounds += 1;
    }
    println!("{rounds} cancelled attempts in {:?}", started.elapsed());
    assert!(
        rounds >= 300,
        "only {rounds} rounds in {:?}",
        started.elapsed()
    );
    assert_eq!(cache.waiting_lock_keys(), 0);
    assert_eq!(cache.held_lock_count(), 0);
}

/// `get_or_fill` of `key` whose fill counts itself in `fills` and returns
/// `value`, bounded by [`CALL_BOUND`].
async fn counted_fill(cache: &Cache, fill: Fill, fills: &AtomicUsize, value: &str) -> String {
    let call = cache.get_or_fill("k", fill, || async {
        fills.fetch_add(1, Ordering::SeqCst);
        Ok::<_, stampede::Error>(value.to_owned())
    });
    bounded("get_or_fill", call).await.unwrap()
}

pub async fn a_foreign_lock_record_never_blocks_a_fill_nor_a_refresh(store: Store) {
    let cache = store.handle().await;
    // Something that is not ours sits at the RedLock record, forever.
    cache.set("k-lock", b"junk", None).await.unwrap();
    let lease = store.kind.short_lease();
    let fill = Fill::ttl(Duration::from_secs(60)).lease(lease);
    let fills = AtomicUsize::new(0);
    let started = Instant::now();
    assert_eq!(counted_fill(&cache, fill.clone(), &fills, "v").await, "v");
    assert!(started.elapsed() < lease, "waited {:?}", started.elapsed());
    assert_eq!(fills.load(Ordering::SeqCst), 1);
    assert_eq!(
        cache.get_value::<String>("k").await.unwrap().as_deref(),
        Some("v")
    );

    // A refresh runs under that RedLock. Where the record blocks it (not in
    // memory, whose lock records live apart from values) the reader keeps
    // the value it has, at once.
    let started = Instant::now();
    let value = counted_fill(&cache, fill.early_refresh(1e9), &fills, "new").await;
    assert!(value == "v" || value == "new", "{value}");
    assert!(started.elapsed() < lease, "waited {:?}", started.elapsed());
}
