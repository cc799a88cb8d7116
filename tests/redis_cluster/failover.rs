//! A master killed mid-run: calls fail within the timeout, nothing hangs,
//! the same cache works again once a replica took over, a waiter parked
//! across the failover is woken, and fencing tokens keep rising (also
//! after every master lost its data).

use std::time::{Duration, Instant};

use stampede::{Cache, RedLock};

use crate::common::topology::{redis_cli, RedisCluster};
use crate::common::until_waiting;

const TIMEOUT: Duration = Duration::from_millis(1000);
/// Scheduling slack on top of the timeout.
const MARGIN: Duration = Duration::from_millis(750);
const LEASE: Duration = Duration::from_secs(60);
/// The longest a failover may take here (node timeout 1-2 s).
const FAILOVER: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_calls_fast_then_the_same_cache_recovers() {
    let mut cluster = RedisCluster::start();
    let url = format!(
        "{}?namespace=failover&timeout_ms={}",
        cluster.url(),
        TIMEOUT.as_millis()
    );
    let cache = Cache::from_url(&url).await.unwrap();
    let other = Cache::from_url(&url).await.unwrap();
    let victim = cluster.master_for_key(b"failover:job-lock");

    let lock = RedLock::new(&cache, "job", LEASE);
    let guard = lock.lock().await.unwrap();
    let before = guard.fencing_token();
    assert!(guard.release().await.unwrap());

    // A holder, and a waiter in another handle parked across the failover.
    let holding = RedLock::new(&cache, "job", LEASE).acquire().await.unwrap();
    let waiter = tokio::spawn({
        let lock = RedLock::new(&other, "job", LEASE);
        async move { lock.lock().await }
    });
    until_waiting(&other, 1).await;
    cluster.kill_master(victim);

    // Every call fails within the timeout until the replica takes over.
    let killed_at = Instant::now();
    let mut failures = 0;
    loop {
        let call = Instant::now();
        match cache.get("job-lock").await {
            Ok(_) => break,
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
    assert!(failures > 0, "calls to a dead master cannot all succeed");
    cluster.wait_healthy(FAILOVER);
    eprintln!(
        "{failures} calls failed; recovered {:?} after the kill",
        killed_at.elapsed()
    );

    // The record was replicated (then the release wakes the waiter) or lost
    // with the master (then the re-check after the link came back does).
    let _ = holding.release().await;
    let woken = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter is woken, not left to its 60 s lease")
        .unwrap()
        .unwrap();
    let after = woken.fencing_token();
    assert!(after > before, "token {after} after {before}");
    assert!(woken.release().await.unwrap());

    // Every master loses its data: tokens still rise.
    for port in cluster.live_nodes() {
        redis_cli(port, &["FLUSHALL"]);
    }
    let guard = lock.lock().await.unwrap();
    assert!(
        guard.fencing_token() > after,
        "token {} after {after}",
        guard.fencing_token()
    );
    assert!(guard.release().await.unwrap());
    cache.set("k", b"v", None).await.unwrap();
    assert_eq!(other.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}
