//! Redis-only behaviour, against real `redis-server` processes: what the
//! shared suite (`tests/behaviour.rs`) cannot say about every backend.
//!
//! - `abandoned`: creates given up on (timeout, cancellation) are taken back.
//! - `processes`: a waiter in another OS process wakes on release.
//! - `outages`: a dead or hung server fails fast; the same handle recovers.
//! - `wire`: values written by other clients, TTLs, one command per operation.
//! - `scripts`: a flushed script cache, fenced locks and `extend`.
//! - `pubsub`: a dropped pub/sub link.
//! - `config`: the application's own pool, URL parameters, TLS.
//! - `fencing`: fence counters seeded from the clock, expiring, out of reach.
//! - `fills`: fill leases.
//! - `surface`: counters, `exists`, `touch` and `clear` against the server.
//! - `batches`: batches, and batch fill reads given up on.
//!
//! Tests that break their server (kill, pause, restart, killing pub/sub
//! clients) get a dedicated one, so the shared server of the other tests is
//! never disturbed.
#![cfg(feature = "redis")]

use crate::common;

#[path = "redis/abandoned.rs"]
mod abandoned;
#[path = "redis/batches.rs"]
mod batches;
#[path = "redis/config.rs"]
mod config;
#[path = "redis/fencing.rs"]
mod fencing;
#[path = "redis/fills.rs"]
mod fills;
#[path = "redis/near.rs"]
mod near;
#[path = "redis/outages.rs"]
mod outages;
#[path = "redis/processes.rs"]
mod processes;
#[path = "redis/pubsub.rs"]
mod pubsub;
#[path = "redis/scripts.rs"]
mod scripts;
#[path = "redis/surface.rs"]
mod surface;
#[path = "redis/wire.rs"]
mod wire;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stampede::backend::redis::{redis, release_channel};
use stampede::{Cache, LockGuard, RedLock};
use tokio::task::JoinHandle;

use common::servers;
use common::{assert_between, Store};
use redis::aio::MultiplexedConnection;

/// The bound on a cross-process wake-up.
const CROSS_PROCESS_WAKE: Duration = Duration::from_millis(50);
/// Long enough that a waiter returning early can only have been woken.
const LONG_LEASE: Duration = Duration::from_secs(10);
/// How soon a woken waiter must be back within one process's tests.
const WAKE_BOUND: Duration = Duration::from_secs(1);
/// Scheduling slack on top of a timeout.
const MARGIN: Duration = Duration::from_millis(750);

/// Takes `key`'s lock on `holder` and parks a waiter for it on `waiting`
/// (another handle, as another process would be); returns once the
/// waiter's release channel is subscribed on the server. `full_lock_key`
/// names the lock record with its namespace, as the channel does.
async fn hold_with_remote_waiter(
    holder: &Cache,
    waiting: &Cache,
    key: &str,
    waiter_lease: Duration,
    observer: &mut MultiplexedConnection,
    full_lock_key: &str,
) -> (LockGuard, JoinHandle<LockGuard>) {
    let holding = RedLock::new(holder, key, LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(holding.holds_lock());
    let waiter = tokio::spawn({
        let lock = RedLock::new(waiting, key, waiter_lease);
        async move { lock.acquire().await.unwrap() }
    });
    until_subscribed(observer, &release_channel(full_lock_key), 1).await;
    (holding, waiter)
}

/// Releases `holding` and checks that the release wakes `waiter` promptly.
async fn release_wakes(holding: LockGuard, waiter: JoinHandle<LockGuard>, what: &str) {
    let released_at = Instant::now();
    assert!(holding.release().await.unwrap());
    let guard = waiter.await.unwrap();
    assert!(guard.was_woken(), "{what}: the waiter sat out its lease");
    assert_between(what, released_at.elapsed(), Duration::ZERO, WAKE_BOUND);
}

/// A plain redis-rs connection to `url`, as another program would have.
async fn raw(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

fn shared_url() -> String {
    servers::shared_url(servers::REDIS)
}

/// The key Redis sees for `key` in `store`'s namespace.
fn full_key(store: &Store, key: &str) -> String {
    format!("{}:{key}", store.namespace)
}

/// The lock record `RedLock::new(cache, key, …)` uses in `store`.
fn lock_key(store: &Store, key: &str) -> String {
    full_key(store, &format!("{key}-lock"))
}

/// Waits until `count` clients are subscribed to `channel`.
async fn until_subscribed(conn: &mut MultiplexedConnection, channel: &[u8], count: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, subscribers): (Vec<u8>, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(conn)
            .await
            .unwrap();
        if subscribers == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {subscribers} subscribers, expected {count}",
            String::from_utf8_lossy(channel)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn wall_clock_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

/// Retries `attempt` until it succeeds or `within` passes.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = stampede::Result<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => assert!(
                Instant::now() < deadline,
                "{what} still failing after {within:?}: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
