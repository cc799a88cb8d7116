//! A master killed mid-run: calls fail within the timeout, nothing hangs,
//! the same cache works again once a replica took over, a waiter parked
//! across the failover is woken, and fencing tokens keep rising (also
//! after every master lost its data).

use stampede::{Cache, RedLock};

use super::common::failover::{self, FAILOVER, LEASE, TIMEOUT};
use super::common::topology::{redis_cli, RedisCluster};

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
    let parked = failover::park_a_waiter(&cache, &other, "job").await;

    cluster.kill_master(cluster.master_for_key(b"failover:job-lock"));
    failover::fails_fast_until_it_recovers(|| cache.get("job-lock")).await;
    cluster.wait_healthy(FAILOVER);
    let after = failover::woken_with_a_larger_token(parked).await;

    // Every master loses its data: tokens still rise.
    for port in cluster.live_nodes() {
        redis_cli(port, &["FLUSHALL"]);
    }
    let guard = RedLock::new(&cache, "job", LEASE).lock().await.unwrap();
    let token = guard.fencing_token();
    assert!(token > after, "token {token} after {after}");
    assert!(guard.release().await.unwrap());
    cache.set("k", b"v", None).await.unwrap();
    assert_eq!(other.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}
