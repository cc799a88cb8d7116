//! What every failover test checks, whatever the deployment: a waiter
//! parked across it, calls that fail fast until it is over, and fencing
//! tokens that keep rising.

use std::time::{Duration, Instant};

use stampede::{Cache, LeaseGuard, LockGuard, RedLock};
use tokio::task::JoinHandle;

use super::{assert_between, until_waiting};

/// The timeout the failover tests open their caches with.
pub const TIMEOUT: Duration = Duration::from_millis(1000);
/// How soon a woken waiter must be back.
const WAKE_BOUND: Duration = Duration::from_secs(1);
/// Scheduling slack on top of the timeout.
const MARGIN: Duration = Duration::from_millis(750);
/// Long enough that a waiter back early can only have been woken.
pub const LEASE: Duration = Duration::from_secs(60);
/// The longest a failover may take here (node timeouts of 1-2 s).
pub const FAILOVER: Duration = Duration::from_secs(30);

/// Before the failover: `key`'s fencing token now, a holder on `cache`,
/// and a fenced waiter on `other` (another handle, as another process).
pub struct Parked {
    pub before: u64,
    pub holding: LockGuard,
    pub waiter: JoinHandle<stampede::Result<LeaseGuard>>,
}

pub async fn park_a_waiter(cache: &Cache, other: &Cache, key: &str) -> Parked {
    let guard = RedLock::new(cache, key, LEASE).lock().await.unwrap();
    let before = guard.fencing_token();
    assert!(guard.release().await.unwrap());
    let holding = RedLock::new(cache, key, LEASE).acquire().await.unwrap();
    let waiter = tokio::spawn({
        let lock = RedLock::new(other, key, LEASE);
        async move { lock.lock().await }
    });
    until_waiting(other, 1).await;
    Parked {
        before,
        holding,
        waiter,
    }
}

/// Calls `call` until it succeeds: each failure must be a backend error or
/// a timeout, within the timeout; at least one must fail (the node is
/// dead), and it must succeed within [`FAILOVER`]. Returns the failures.
pub async fn fails_fast_until_it_recovers<F, Fut, T>(mut call: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = stampede::Result<T>>,
{
    let killed_at = Instant::now();
    let mut failures = 0;
    loop {
        let started = Instant::now();
        match call().await {
            Ok(_) => break,
            Err(error) => {
                assert!(error.is_backend() || error.is_timeout(), "{error:?}");
                let took = started.elapsed();
                assert!(took < TIMEOUT + MARGIN, "a call took {took:?}");
                failures += 1;
            }
        }
        assert!(
            killed_at.elapsed() < FAILOVER,
            "no recovery within {FAILOVER:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failures > 0, "calls to a dead master cannot all succeed");
    eprintln!(
        "{failures} calls failed; recovered {:?} after the kill",
        killed_at.elapsed()
    );
    failures
}

/// After the failover: the holder lets go (its record was replicated, or
/// lost with the old master), and the waiter is woken, not left to its
/// lease, with a larger fencing token than before. Returns that token.
pub async fn woken_with_a_larger_token(parked: Parked) -> u64 {
    let _ = parked.holding.release().await;
    let woken = tokio::time::timeout(Duration::from_secs(10), parked.waiter)
        .await
        .expect("the waiter is woken, not left to its 60 s lease")
        .unwrap()
        .unwrap();
    let after = woken.fencing_token();
    assert!(
        after > parked.before,
        "token {after} after {}",
        parked.before
    );
    assert!(woken.release().await.unwrap());
    after
}

/// Holds `key` on `holder`, parks a waiter on `waiting`, releases, and
/// checks the waiter was woken (not its lease) within the bound.
pub async fn release_wakes_a_remote_waiter(holder: &Cache, waiting: &Cache, key: &str) {
    let holding = RedLock::new(holder, key, LEASE).acquire().await.unwrap();
    let waiter = tokio::spawn({
        let lock = RedLock::new(waiting, key, LEASE);
        async move { lock.acquire().await.unwrap() }
    });
    until_waiting(waiting, 1).await;
    // The watch is confirmed before the waiter parks, so the release's
    // publish cannot be missed.
    let released_at = Instant::now();
    assert!(holding.release().await.unwrap());
    let guard = waiter.await.unwrap();
    assert!(guard.was_woken(), "{key}: the waiter sat out its lease");
    assert_between(key, released_at.elapsed(), Duration::ZERO, WAKE_BOUND);
}
