//! Every call returns within a bound, whatever the lease, on every backend.

use std::future::Future;
use std::time::{Duration, Instant};

use stampede::{Cache, RedLock};

use crate::common::Store;

/// Far above one call's bound (the network backends' default timeout is
/// 2 s): a call that takes this long is hanging.
const CALL_BOUND: Duration = Duration::from_secs(6);
/// Long enough that a record still there after [`FREED_BOUND`] can only be
/// one that nobody released.
const LONG_LEASE: Duration = Duration::from_secs(10);
/// How soon a released record must be gone.
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
