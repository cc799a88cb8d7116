//! Creates whose caller gave up on them: a lock or fill lease request that
//! timed out on a frozen server, or whose future was dropped, still runs
//! when the server resumes. What it made must be taken back, not left
//! blocking everyone for a whole lease.

use std::time::{Duration, Instant};

use stampede::backend::redis::{deadpool_redis, fill_lease_key, redis, RedisBackend, RedisOptions};
use stampede::backend::{Backend, FillLease};
use stampede::{Cache, RedLock};

use super::common::servers::{self, Server};
use super::{raw, MultiplexedConnection, LONG_LEASE};

const TIMEOUT: Duration = Duration::from_millis(300);
/// How long the server stays frozen after the calls gave up: longer than
/// the timeout, so that anything the cache retries on its own gives up too.
const FREEZE: Duration = Duration::from_millis(900);
/// How soon after the server resumes what the creates made must be gone:
/// far below `LONG_LEASE`, so expiry cannot explain it.
const CLEANUP_BOUND: Duration = Duration::from_secs(3);

async fn short_timeout_cache(server: &Server, timeout: Duration) -> Cache {
    let url = format!(
        "{}?timeout_ms={}&namespace=gaveup",
        server.url(),
        timeout.as_millis()
    );
    Cache::from_url(&url).await.unwrap()
}

/// Waits until none of `names` exists on the server, for at most
/// [`CLEANUP_BOUND`] after `resumed`.
pub(crate) async fn until_gone(
    admin: &mut MultiplexedConnection,
    names: &[Vec<u8>],
    resumed: Instant,
) {
    loop {
        let mut pipeline = redis::pipe();
        for name in names {
            pipeline.exists(name);
        }
        let exists: Vec<bool> = pipeline.query_async(admin).await.unwrap();
        if exists.iter().all(|exists| !exists) {
            return;
        }
        let left: Vec<_> = names
            .iter()
            .zip(&exists)
            .filter(|(_, exists)| **exists)
            .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
            .collect();
        assert!(
            resumed.elapsed() < CLEANUP_BOUND,
            "{left:?} still there {:?} after the server resumed",
            resumed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cache on `server` with a live connection and the lock scripts loaded.
async fn warm_cache(server: &Server, timeout: Duration) -> Cache {
    let cache = short_timeout_cache(server, timeout).await;
    let warm = RedLock::new(&cache, "warm", LONG_LEASE);
    assert!(warm.try_lock().await.unwrap().release().await.unwrap());
    cache
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_that_timed_out_on_a_frozen_server_are_taken_back() {
    let server = Server::start(servers::REDIS);
    // One handle per call: a timeout drops its connection, and the next
    // call on the same handle would not get its request out.
    let handles = [
        warm_cache(&server, TIMEOUT).await,
        warm_cache(&server, TIMEOUT).await,
        warm_cache(&server, TIMEOUT).await,
    ];
    let mut admin = raw(&server.url()).await;

    server.pause();
    let locks = [
        RedLock::new(&handles[0], "try", LONG_LEASE),
        RedLock::new(&handles[1], "lock", LONG_LEASE).wait_timeout(LONG_LEASE),
        RedLock::new(&handles[2], "acquire", LONG_LEASE),
    ];
    let (try_lock, lock, acquire) =
        tokio::join!(locks[0].try_lock(), locks[1].lock(), locks[2].acquire());
    for (what, error) in [
        ("try_lock", try_lock.err()),
        ("lock", lock.err()),
        ("acquire", acquire.err()),
    ] {
        let error = error.unwrap_or_else(|| panic!("{what} succeeded on a frozen server"));
        assert!(error.is_timeout(), "{what}: {error:?}");
    }
    tokio::time::sleep(FREEZE).await;
    server.resume();
    let resumed = Instant::now();

    let records: Vec<Vec<u8>> = ["try", "lock", "acquire"]
        .map(|key| format!("gaveup:{key}-lock").into_bytes())
        .to_vec();
    until_gone(&mut admin, &records, resumed).await;
    let other = short_timeout_cache(&server, TIMEOUT).await;
    for key in ["try", "lock", "acquire"] {
        let guard = RedLock::new(&other, key, LONG_LEASE).try_lock().await;
        assert!(guard.is_ok(), "{key}: {guard:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_cancelled_while_its_create_is_in_flight_is_taken_back() {
    let server = Server::start(servers::REDIS);
    // Timeouts that never fire here: the caller drops the future instead.
    let handles = [
        warm_cache(&server, LONG_LEASE).await,
        warm_cache(&server, LONG_LEASE).await,
    ];
    let mut admin = raw(&server.url()).await;

    server.pause();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(500),
        RedLock::new(&handles[0], "k", LONG_LEASE).try_lock(),
    )
    .await;
    assert!(gave_up.is_err(), "answered by a frozen server: {gave_up:?}");
    let gave_up = tokio::time::timeout(
        Duration::from_millis(500),
        RedLock::new(&handles[1], "a", LONG_LEASE).acquire(),
    )
    .await;
    assert!(gave_up.is_err(), "answered by a frozen server: {gave_up:?}");
    tokio::time::sleep(FREEZE).await;
    server.resume();
    let resumed = Instant::now();

    let records = [b"gaveup:k-lock".to_vec(), b"gaveup:a-lock".to_vec()];
    until_gone(&mut admin, &records, resumed).await;
    let other = short_timeout_cache(&server, TIMEOUT).await;
    assert!(RedLock::new(&other, "k", LONG_LEASE)
        .try_lock()
        .await
        .is_ok());
    assert!(RedLock::new(&other, "a", LONG_LEASE)
        .try_lock()
        .await
        .is_ok());
}

fn backend(server: &Server) -> RedisBackend {
    RedisBackend::new(
        deadpool_redis::Config::from_url(server.url()),
        RedisOptions::default().timeout(TIMEOUT),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_lease_read_that_timed_out_gives_its_lease_back() {
    let server = Server::start(servers::REDIS);
    let (reader, other) = (backend(&server), backend(&server));
    let mut admin = raw(&server.url()).await;
    // Connected, and the lease scripts loaded.
    let warm = reader.read_for_fill("warm", LONG_LEASE).await.unwrap();
    let FillLease::Granted(token) = warm.lease else {
        panic!("no lease on a missing key: {warm:?}");
    };
    assert!(reader.release_fill("warm", &token).await.unwrap());

    server.pause();
    let error = reader.read_for_fill("k", LONG_LEASE).await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    tokio::time::sleep(FREEZE).await;
    server.resume();
    let resumed = Instant::now();

    until_gone(&mut admin, &[fill_lease_key("k")], resumed).await;
    let read = other.read_for_fill("k", LONG_LEASE).await.unwrap();
    assert!(
        matches!(read.lease, FillLease::Granted(_)),
        "the lease is still out: {read:?}"
    );
}
