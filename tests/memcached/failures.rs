//! A server that dies, comes back, stops answering or answers late.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use stampede::backend::memcached::MemcachedConfig;
use stampede::backend::{Backend, Fencing, LockAttempt};
use stampede::{Cache, Error, RedLock};

use super::common::assert_between;
use super::common::servers::{Server, MEMCACHED};
use super::proxy::HoldRequests;
use super::{backend, servers_of, shared_url, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_fast_and_the_same_cache_works_after_a_restart() {
    let mut server = Server::start(MEMCACHED);
    let timeout = Duration::from_millis(500);
    let cache = Cache::from_url(&format!("{}?timeout_ms=500", server.url()))
        .await
        .unwrap();
    cache.set("k", b"before", None).await.unwrap();
    let lock = RedLock::new(&cache, "job", Duration::from_secs(5));
    assert!(lock.acquire().await.unwrap().release().await.unwrap());

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let error = cache.get("k").await.unwrap_err();
        assert!(error.is_backend(), "{error}");
        assert!(error.to_string().starts_with("memcached get "), "{error}");
        assert_between(
            "a call to a dead server",
            started.elapsed(),
            Duration::ZERO,
            timeout + Duration::from_millis(500),
        );
        let started = Instant::now();
        assert!(lock.acquire().await.unwrap_err().is_backend());
        assert!(started.elapsed() <= timeout * 2 + Duration::from_millis(500));
    }

    server.restart();
    // The same handle, not rebuilt: its pooled connections to the old
    // process are dropped and new ones made.
    assert_eq!(
        cache.get("k").await.unwrap(),
        None,
        "a restarted memcached is empty"
    );
    cache.set("k", b"after", None).await.unwrap();
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"after"[..])
    );
    let guard = lock.acquire().await.unwrap();
    assert!(guard.holds_lock());
    assert!(guard.release().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_within_the_bound() {
    // Accepts connections and reads nothing back: a hung server.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let timeout = Duration::from_millis(300);
    let cache = Cache::from_url(&format!("memcached://127.0.0.1:{port}?timeout_ms=300"))
        .await
        .unwrap();

    let started = Instant::now();
    let error = cache.set("k", b"v", None).await.unwrap_err();
    assert_between(
        "a call to a hung server",
        started.elapsed(),
        timeout - Duration::from_millis(50),
        timeout + Duration::from_millis(700),
    );
    assert!(error.is_timeout() && error.is_backend(), "{error}");
    match error {
        Error::BackendTimeout {
            backend,
            operation,
            after,
        } => {
            assert_eq!((backend, operation, after), ("memcached", "set", timeout));
        }
        other => panic!("expected BackendTimeout, got {other:?}"),
    }

    // A lock whose create may or may not have landed is an error too, and
    // within the same bound.
    let started = Instant::now();
    let error = RedLock::new(&cache, "job", Duration::from_secs(5))
        .acquire()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() <= timeout + Duration::from_millis(700));
}

/// Waits until `cache` can take the lock at `key`, for at most `within`;
/// returns whether it could.
async fn lock_freed(cache: &Cache, key: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let lock = RedLock::new(cache, key, Duration::from_secs(10));
    loop {
        match lock.try_lock().await {
            Ok(guard) => {
                assert!(guard.release().await.unwrap());
                return true;
            }
            Err(error) if error.is_locked() || error.is_timeout() => {}
            Err(error) => panic!("{error}"),
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lock attempts on a frozen (`SIGSTOP`) server time out; their creates
/// run when it thaws, after their callers gave up, and the records they make
/// are given back at once rather than held by nobody for the lease.
///
/// No window here is a race against the machine: the calls on the frozen
/// server cannot be answered, whatever their timeout; the warm-up and the
/// check after the thaw poll for as long as it takes, up to a bound that
/// only a record held for its lease (two minutes) reaches, through a handle
/// whose own timeout is generous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_attempts_that_timed_out_on_a_frozen_server_leave_no_record_after_it_thaws() {
    const LEASE: Duration = Duration::from_secs(120);
    const WITHIN: Duration = Duration::from_secs(30);
    let server = Server::start(MEMCACHED);
    let cache = Cache::from_url(&format!("{}?timeout_ms=300", server.url()))
        .await
        .unwrap();
    let other = Cache::from_url(&format!("{}?timeout_ms=10000", server.url()))
        .await
        .unwrap();
    // Warm connections, so the requests below are written before the freeze
    // is noticed.
    for key in ["a", "b", "c"] {
        assert!(lock_freed(&cache, key, WITHIN).await);
    }

    server.pause();
    let try_lock = RedLock::new(&cache, "a", LEASE).try_lock().await;
    assert!(try_lock.unwrap_err().is_timeout());
    let lock = RedLock::new(&cache, "b", LEASE).lock().await;
    assert!(lock.unwrap_err().is_timeout());
    let acquire = RedLock::new(&cache, "c", LEASE).try_acquire().await;
    assert!(acquire.unwrap_err().is_timeout());
    server.resume();

    for key in ["a", "b", "c"] {
        assert!(
            lock_freed(&other, key, WITHIN).await,
            "the lock at {key} stayed held after the server thawed"
        );
    }
    assert_eq!(cache.held_lock_count(), 0);
}

fn fence(attempt: LockAttempt) -> u64 {
    match attempt {
        LockAttempt::Acquired { fence: Some(fence) } => fence,
        other => panic!("expected a fenced acquire, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_comes_back_after_the_lease_is_refused_and_the_record_given_back() {
    let upstream = servers_of(&shared_url()).remove(0);
    let mut proxy = HoldRequests::start(upstream, "ma").await;
    let stalled = MemcachedConfig::new([proxy.addr.to_string()])
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let b = backend(&shared_url()).await;
    let key = unique("stalled");
    let before = fence(
        b.try_lock(&key, b"o", Duration::from_secs(30), Fencing::Issue)
            .await
            .unwrap(),
    );
    assert!(b.release(&key, b"o").await.unwrap());

    // The increment is held past the lease as memcached honours it (a
    // 200 ms lease is held for a whole second): the token comes back late.
    let lease = Duration::from_millis(200);
    let late = tokio::spawn({
        let key = key.clone();
        async move { stalled.try_lock(&key, b"late", lease, Fencing::Issue).await }
    });
    proxy.request_held().await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    proxy.let_one_through();
    assert_eq!(
        late.await.unwrap().unwrap(),
        LockAttempt::Held { remaining: None }
    );
    assert_eq!(
        b.lock_record(&key).await.unwrap(),
        None,
        "the late holder gave its record back"
    );

    // The next holder is unaffected and still gets a higher token.
    let next = fence(
        b.try_lock(&key, b"next", Duration::from_secs(30), Fencing::Issue)
            .await
            .unwrap(),
    );
    assert!(next > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_waiter_rides_out_an_outage() {
    super::common::outage::a_lock_waiter_rides_out_an_outage(MEMCACHED).await;
}
