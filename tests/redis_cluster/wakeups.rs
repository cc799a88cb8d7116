//! Sharded pub/sub: a release wakes a waiter in another handle (as in
//! another process) whichever master owns the lock's slot, and a pub/sub
//! link that drops is dialled again and every watched lock re-checked.

use std::time::{Duration, Instant};

use stampede::{Cache, RedLock};

use super::common::failover::release_wakes_a_remote_waiter;
use super::common::topology::{redis_cli, shared_cluster_url, RedisCluster};
use super::common::{assert_between, until_waiting};

/// Long enough that a waiter returning early can only have been woken.
const LONG_LEASE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_wake_waiters_in_other_handles_on_every_master() {
    let url = format!(
        "{}?namespace=wakes-{}",
        shared_cluster_url(),
        uuid::Uuid::new_v4().simple()
    );
    let holder = Cache::from_url(&url).await.unwrap();
    let waiting = Cache::from_url(&url).await.unwrap();
    // Twelve keys land on every master with near certainty; each is
    // checked on its own.
    for i in 0..12 {
        release_wakes_a_remote_waiter(&holder, &waiting, &format!("job{i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pubsub_link_is_dialled_again_and_missed_releases_still_wake() {
    let cluster = RedisCluster::start();
    let url = format!("{}?namespace=relink", cluster.url());
    let holder = Cache::from_url(&url).await.unwrap();
    let waiting = Cache::from_url(&url).await.unwrap();
    release_wakes_a_remote_waiter(&holder, &waiting, "warm-up").await;

    // Six locks at once, on several masters: the re-check after the new
    // link is up asks about all of them, one pipeline per slot.
    for round in 0..3 {
        let keys: Vec<String> = (0..6).map(|i| format!("job{round}-{i}")).collect();
        let mut held = Vec::new();
        for key in &keys {
            let holding = RedLock::new(&holder, key, LONG_LEASE)
                .acquire()
                .await
                .unwrap();
            let waiter = tokio::spawn({
                let lock = RedLock::new(&waiting, key, LONG_LEASE);
                async move { lock.acquire().await.unwrap() }
            });
            held.push((key, holding, waiter));
        }
        until_waiting(&waiting, keys.len()).await;
        // Every subscribed link on every node goes; the releases may be
        // published before the subscriber has dialled again, so only the
        // re-check after the new link is up can wake those waiters then.
        for port in cluster.live_nodes() {
            redis_cli(port, &["CLIENT", "KILL", "TYPE", "pubsub"]);
        }
        let released_at = Instant::now();
        let mut waiters = Vec::new();
        for (key, holding, waiter) in held {
            assert!(holding.release().await.unwrap(), "{key}");
            waiters.push((key, waiter));
        }
        for (key, waiter) in waiters {
            let guard = waiter.await.unwrap();
            assert!(guard.was_woken(), "{key}: the waiter sat out its lease");
            // Dialling again waits out a backoff of at most two seconds.
            assert_between(
                key,
                released_at.elapsed(),
                Duration::ZERO,
                Duration::from_secs(5),
            );
        }
    }
}

/// Moves `slot` from the master on `from` to the master on `to`, keys and
/// all, as `redis-cli --cluster reshard` does for one slot.
fn move_slot(cluster: &RedisCluster, slot: &str, from: u16, to: u16) {
    let from_id = redis_cli(from, &["CLUSTER", "MYID"]);
    let to_id = redis_cli(to, &["CLUSTER", "MYID"]);
    redis_cli(to, &["CLUSTER", "SETSLOT", slot, "IMPORTING", &from_id]);
    redis_cli(from, &["CLUSTER", "SETSLOT", slot, "MIGRATING", &to_id]);
    let keys = redis_cli(from, &["CLUSTER", "GETKEYSINSLOT", slot, "100"]);
    for key in keys.lines().filter(|key| !key.is_empty()) {
        let port = to.to_string();
        let moved = redis_cli(from, &["MIGRATE", "127.0.0.1", &port, key, "0", "5000"]);
        assert_eq!(moved, "OK", "MIGRATE {key}");
    }
    for port in cluster.live_nodes() {
        redis_cli(port, &["CLUSTER", "SETSLOT", slot, "NODE", &to_id]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_slot_moved_to_another_node_is_followed() {
    let cluster = RedisCluster::start();
    let url = format!("{}?namespace=moved", cluster.url());
    let holder = Cache::from_url(&url).await.unwrap();
    let waiting = Cache::from_url(&url).await.unwrap();
    let record = "moved:job-lock";
    let from = cluster.master_for_key(record.as_bytes());
    let to = cluster
        .live_nodes()
        .into_iter()
        .find(|&port| port != from && redis_cli(port, &["ROLE"]).starts_with("master"))
        .expect("another master");
    let slot = redis_cli(from, &["CLUSTER", "KEYSLOT", record]);

    let holding = RedLock::new(&holder, "job", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    let waiter = tokio::spawn({
        let lock = RedLock::new(&waiting, "job", LONG_LEASE);
        async move { lock.acquire().await.unwrap() }
    });
    until_waiting(&waiting, 1).await;
    move_slot(&cluster, &slot, from, to);
    assert_eq!(cluster.master_for_key(record.as_bytes()), to);

    // The old node dropped the sharded subscription when the slot left it;
    // the subscriber must follow the slot, or the waiter sits out its lease.
    let released_at = Instant::now();
    assert!(holding.release().await.unwrap());
    let guard = waiter.await.unwrap();
    assert!(guard.was_woken(), "the waiter sat out its lease");
    assert_between(
        "wake-up after the slot moved",
        released_at.elapsed(),
        Duration::ZERO,
        Duration::from_secs(5),
    );
}
