//! Redis Sentinel behaviour against a real master, replica and three
//! sentinels that the tests start (`tests/common/topology.rs`); the shared
//! behaviour suite runs on it too (`tests/behaviour.rs`).
#![cfg(feature = "redis-sentinel")]

use crate::common;

use stampede::{Cache, RedLock};

use common::failover::{self, FAILOVER, LEASE, TIMEOUT};
use common::topology::{redis_cli, RedisSentinel};

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
    let parked = failover::park_a_waiter(&cache, &other, "job").await;

    sentinel.kill_master();
    failover::fails_fast_until_it_recovers(|| cache.set("probe", b"p", None)).await;
    let new_master = sentinel.wait_for_new_master(FAILOVER);
    assert_ne!(new_master, old_master);
    let after = failover::woken_with_a_larger_token(parked).await;
    // The pub/sub link is on the new master: a fresh wait is woken by the
    // release, well before its lease.
    failover::release_wakes_a_remote_waiter(&cache, &other, "next").await;

    // The new master loses its data: tokens still rise.
    redis_cli(new_master, &["FLUSHALL"]);
    let guard = RedLock::new(&cache, "job", LEASE).lock().await.unwrap();
    assert!(
        guard.fencing_token() > after,
        "token {} after {after}",
        guard.fencing_token()
    );
    assert!(guard.release().await.unwrap());
}
