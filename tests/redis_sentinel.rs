//! Redis Sentinel behaviour against a real master, replica and three
//! sentinels that the tests start (`tests/common/topology.rs`); the shared
//! behaviour suite runs on it too (`tests/behaviour.rs`).
#![cfg(feature = "redis-sentinel")]

mod common;

use std::time::{Duration, Instant};

use stampede::{Cache, RedLock};

use common::topology::{redis_cli, RedisSentinel};
use common::{assert_between, until_waiting};

const TIMEOUT: Duration = Duration::from_millis(1000);
/// Scheduling slack on top of the timeout.
const MARGIN: Duration = Duration::from_millis(750);
const LEASE: Duration = Duration::from_secs(60);
/// The longest an election may take here.
const FAILOVER: Duration = Duration::from_secs(30);

/// A killed master: calls fail within the timeout, the same cache reaches
/// the new master, the pub/sub link follows it (a waiter parked across the
/// failover is woken by a release on the new master), and fencing tokens
/// keep rising, also after the new master lost its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_fails_calls_fast_then_everything_follows_the_new_master() {
    let mut sentinel = RedisSentinel::start();
    let url = format!(
        "{}?namespace=failover&timeout_ms={}",
        sentinel.url(),
        TIMEOUT.as_millis()
    );
    let cache = Cache::from_url(&url).await.unwrap();
    let other = Cache::from_url(&url).await.unwrap();
    let old_master = sentinel.master_port();

    let lock = RedLock::new(&cache, "job", LEASE);
    let guard = lock.lock().await.unwrap();
    let before = guard.fencing_token();
    assert!(guard.release().await.unwrap());
    let holding = RedLock::new(&cache, "job", LEASE).acquire().await.unwrap();
    let waiter = tokio::spawn({
        let lock = RedLock::new(&other, "job", LEASE);
        async move { lock.lock().await }
    });
    until_waiting(&other, 1).await;
    sentinel.kill_master();

    let killed_at = Instant::now();
    let mut failures = 0;
    loop {
        let call = Instant::now();
        match cache.set("probe", b"p", None).await {
            Ok(()) => break,
            Err(error) => {
                assert!(error.is_backend() || error.is_timeout(), "{error:?}");
                assert!(
                    call.elapsed() < TIMEOUT + MARGIN,
                    "a call took {:?}",
                    call.elapsed()
                );
                failures += 1;
            }
        }
        assert!(
            killed_at.elapsed() < FAILOVER,
            "no recovery within {FAILOVER:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failures > 0, "writes to a dead master cannot all succeed");
    let new_master = sentinel.wait_for_new_master(FAILOVER);
    assert_ne!(new_master, old_master);
    eprintln!(
        "{failures} calls failed; recovered {:?} after the kill",
        killed_at.elapsed()
    );

    let _ = holding.release().await;
    let woken = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter is woken, not left to its 60 s lease")
        .unwrap()
        .unwrap();
    let after = woken.fencing_token();
    assert!(after > before, "token {after} after {before}");
    assert!(woken.release().await.unwrap());

    // The pub/sub link is on the new master: a fresh wait is woken by the
    // release, well before its lease.
    let holding = RedLock::new(&cache, "next", LEASE).acquire().await.unwrap();
    let waiter = tokio::spawn({
        let lock = RedLock::new(&other, "next", LEASE);
        async move { lock.acquire().await.unwrap() }
    });
    until_waiting(&other, 1).await;
    let released_at = Instant::now();
    assert!(holding.release().await.unwrap());
    let guard = waiter.await.unwrap();
    assert!(guard.was_woken(), "the waiter sat out its lease");
    assert_between(
        "wake-up on the new master",
        released_at.elapsed(),
        Duration::ZERO,
        Duration::from_secs(1),
    );

    // The new master loses its data: tokens still rise.
    redis_cli(new_master, &["FLUSHALL"]);
    let guard = lock.lock().await.unwrap();
    assert!(
        guard.fencing_token() > after,
        "token {} after {after}",
        guard.fencing_token()
    );
    assert!(guard.release().await.unwrap());
}
