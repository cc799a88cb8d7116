//! A dead or hung server fails fast; the same handle recovers.

use std::time::{Duration, Instant};

use stampede::{Cache, RedLock};

use super::common::assert_between;
use super::common::servers::{self, Server};
use super::{eventually, hold_with_remote_waiter, raw, release_wakes, LONG_LEASE, MARGIN};

const SHORT_TIMEOUT: Duration = Duration::from_millis(500);

async fn short_timeout_cache(server: &Server) -> Cache {
    let url = format!("{}?timeout_ms=500&namespace=outage", server.url());
    Cache::from_url(&url).await.unwrap()
}

/// Runs each kind of operation once and checks it fails in time with `check`.
async fn every_operation_fails(cache: &Cache, check: impl Fn(&stampede::Error) -> bool) {
    let bound = SHORT_TIMEOUT + MARGIN;
    let started = Instant::now();
    let error = cache.get("k").await.unwrap_err();
    assert_between("failed get", started.elapsed(), Duration::ZERO, bound);
    assert!(check(&error), "get: {error:?}");

    let started = Instant::now();
    let error = cache.set("k", b"v", None).await.unwrap_err();
    assert_between("failed set", started.elapsed(), Duration::ZERO, bound);
    assert!(check(&error), "set: {error:?}");

    let started = Instant::now();
    let error = cache.cas("k", b"v", None, None).await.unwrap_err();
    assert_between("failed cas", started.elapsed(), Duration::ZERO, bound);
    assert!(check(&error), "cas: {error:?}");

    let started = Instant::now();
    let error = RedLock::new(cache, "k", LONG_LEASE)
        .acquire()
        .await
        .unwrap_err();
    assert_between("failed acquire", started.elapsed(), Duration::ZERO, bound);
    assert!(check(&error), "acquire: {error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_within_the_timeout() {
    let mut server = Server::start(servers::REDIS);
    let cache = short_timeout_cache(&server).await;
    cache.set("k", b"v", None).await.unwrap(); // connected
    server.kill();
    every_operation_fails(&cache, |e| e.is_backend()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_times_out_within_the_timeout() {
    let server = Server::start(servers::REDIS);
    let cache = short_timeout_cache(&server).await;
    cache.set("k", b"v", None).await.unwrap(); // connected
    server.pause();
    every_operation_fails(&cache, |e| e.is_backend() && e.is_timeout()).await;
    let error = cache.get("k").await.unwrap_err();
    assert!(
        error.to_string().contains("did not answer within 500ms"),
        "{error}"
    );

    // Thawed, the same handle answers again.
    server.resume();
    let value = eventually("get after resume", Duration::from_secs(5), || {
        cache.get("k")
    })
    .await;
    assert_eq!(value.as_deref(), Some(&b"v"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_handle_works_again_after_a_restart() {
    let mut server = Server::start(servers::REDIS);
    let cache = short_timeout_cache(&server).await;
    let other = short_timeout_cache(&server).await;
    cache.set("k", b"before", None).await.unwrap();
    // Both handles have a pub/sub link before the outage.
    let mut observer = raw(&server.url()).await;
    let (holding, waiter) = hold_with_remote_waiter(
        &cache,
        &other,
        "warm",
        LONG_LEASE,
        &mut observer,
        "outage:warm-lock",
    )
    .await;
    release_wakes(holding, waiter, "wake-up before the restart").await;

    // Same port, empty data, empty script cache.
    server.restart();
    // Each handle's connection went to the old process. Reads are resent on
    // a fresh connection, so they work at once...
    assert_eq!(cache.get("k").await.unwrap(), None, "a fresh server");
    // ...but a write is not (whether it ran cannot be known): the first one
    // on a lost connection fails, and the next reconnects.
    let error = other.add("k", b"after", None).await.unwrap_err();
    assert!(error.is_backend(), "{error:?}");
    assert!(other.add("k", b"after", None).await.unwrap());
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"after"[..])
    );

    // Scripts are loaded again, and the pub/sub links come back.
    let mut observer = raw(&server.url()).await;
    let (holding, waiter) = hold_with_remote_waiter(
        &cache,
        &other,
        "after",
        LONG_LEASE,
        &mut observer,
        "outage:after-lock",
    )
    .await;
    release_wakes(holding, waiter, "wake-up after restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_across_a_restart_is_woken_when_the_record_is_gone() {
    let mut server = Server::start(servers::REDIS);
    let holder = short_timeout_cache(&server).await;
    let waiting = short_timeout_cache(&server).await;
    let mut observer = raw(&server.url()).await;
    let (_held, waiter) = hold_with_remote_waiter(
        &holder,
        &waiting,
        "k",
        LONG_LEASE,
        &mut observer,
        "outage:k-lock",
    )
    .await;

    // The restarted server has no data: the record is gone, unreleased. The
    // waiter's pub/sub link comes back and finds that out.
    let restarted_at = Instant::now();
    server.restart();
    let guard = waiter.await.unwrap();
    assert!(guard.was_woken(), "woken, not left to sit out the lease");
    assert!(
        restarted_at.elapsed() < LONG_LEASE / 2,
        "woken only after {:?}",
        restarted_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_waiter_rides_out_an_outage() {
    super::common::outage::a_lock_waiter_rides_out_an_outage(servers::REDIS).await;
}
