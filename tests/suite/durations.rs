//! Every public call that takes a `Duration`, over every duration from zero
//! to `Duration::MAX`: it is honoured (a long TTL keeps the value, a long
//! fill TTL means one fill) or refused with `is_invalid_input()`, and it
//! returns. Never a panic, a hang or a TTL silently cut short.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stampede::typed::{Fill, Json, Retry};
use stampede::{Cache, OptimisticLock, RedLock};

use crate::common::Store;

/// How long one duration's whole round of calls may take.
const ROUND_BOUND: Duration = Duration::from_secs(20);

/// Long enough that a value stored with it is still there when read back,
/// on every backend (memcached counts whole seconds).
const SURELY_LIVE: Duration = Duration::from_secs(5);

/// Durations from zero to `Duration::MAX`, weighted towards the edges: the
/// tiny (shorter than a round trip), the 30-day line memcached draws, the
/// 2^64 ms line a millisecond counter overflows at, and the largest.
fn durations() -> impl Strategy<Value = Duration> {
    let edges = prop::sample::select(vec![
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(1),
        Duration::from_millis(1),
        Duration::from_millis(999),
        Duration::from_secs(30 * 24 * 3600),
        Duration::from_secs(30 * 24 * 3600 + 1),
        Duration::from_millis(u64::MAX),
        Duration::from_millis(u64::MAX) + Duration::from_millis(1),
        Duration::from_secs(u64::MAX / 1000 + 1),
        Duration::from_secs(i64::MAX as u64),
        Duration::MAX,
    ]);
    prop_oneof![
        2 => edges,
        1 => (0u64..10_000).prop_map(Duration::from_millis),
        1 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// `Ok`, or an error that says the input was bad.
#[track_caller]
fn honoured<T>(result: stampede::Result<T>, what: &str, d: Duration) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            assert!(err.is_invalid_input(), "{what} with {d:?}: {err}");
            None
        }
    }
}

pub async fn every_duration_is_honoured_or_refused(store: Store) {
    let cache = store.handle().await;
    let handle = tokio::runtime::Handle::current();
    let round = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&durations(), |d| {
            let n = round.fetch_add(1, Ordering::Relaxed);
            let calls = one_round(&cache, d, n);
            match handle.block_on(tokio::time::timeout(ROUND_BOUND, calls)) {
                Ok(()) => Ok(()),
                Err(_) => Err(TestCaseError::fail(format!(
                    "calls with {d:?} did not return within {ROUND_BOUND:?}"
                ))),
            }
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// Every call that takes a duration, with `d`, on keys of round `n`.
async fn one_round(cache: &Cache, d: Duration, n: usize) {
    values(cache, d, &format!("v{n}")).await;
    locks(cache, d, &format!("l{n}")).await;
    fills(cache, d, &format!("f{n}")).await;
}

async fn values(cache: &Cache, d: Duration, key: &str) {
    let live = d >= SURELY_LIVE;
    if honoured(cache.set(key, b"v", Some(d)).await, "set", d).is_some() && live {
        assert_eq!(cache.get(key).await.unwrap().as_deref(), Some(&b"v"[..]));
    }
    let added = format!("{key}:add");
    if honoured(cache.add(&added, b"a", Some(d)).await, "add", d).is_some() && live {
        assert!(cache.get(&added).await.unwrap().is_some(), "add with {d:?}");
    }
    let swapped = format!("{key}:cas");
    cache.set(&swapped, b"0", None).await.unwrap();
    let (_, token) = cache.gets(&swapped).await.unwrap().unwrap();
    let cas = cache.cas(&swapped, b"1", Some(&token), Some(d)).await;
    if honoured(cas, "cas", d).is_some() && live {
        assert_eq!(
            cache.get(&swapped).await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
    }
    let lock = OptimisticLock::acquire(cache, swapped.as_str())
        .await
        .unwrap();
    match lock.cas(b"2", Some(d)).await {
        // The `cas` above gave the value a TTL of `d`: a short one may run
        // out between this lock's read and its write, which is a change.
        Err(err) if err.is_conflict() && !live => {}
        result => {
            honoured(result, "OptimisticLock::cas", d);
        }
    }
    let counter = format!("{key}:n");
    let bump = |n: Option<u32>| n.unwrap_or(0) + 1;
    if honoured(cache.update(&counter, Some(d), bump).await, "update", d).is_some() && live {
        assert_eq!(cache.update(&counter, Some(d), bump).await.unwrap(), 2);
    }
    let retry = Retry::default().max_attempts(2).backoff(d, d);
    let typed = cache.with_codec(Json);
    let retried = typed.update_with(&counter, None, &retry, bump).await;
    honoured(retried, "update_with(backoff)", d);
    honoured(cache.mark_stale(key, d).await, "mark_stale", d);
}

async fn locks(cache: &Cache, d: Duration, key: &str) {
    let lock = RedLock::new(cache, key, d).wait_timeout(d);
    if let Some(guard) = honoured(lock.try_lock().await, "try_lock", d) {
        honoured(guard.extend(d).await, "extend", d);
        guard.release().await.unwrap();
    }
    if let Some(guard) = honoured(lock.lock().await, "lock", d) {
        guard.release().await.unwrap();
    }
    if let Some(guard) = honoured(lock.acquire().await, "acquire", d) {
        guard.release().await.unwrap();
    }
    if let Some(Some(guard)) = honoured(lock.try_acquire().await, "try_acquire", d) {
        guard.release().await.unwrap();
    }
    let renewed = RedLock::new(cache, format!("{key}:r"), d).auto_renew(true);
    if let Some(guard) = honoured(renewed.try_lock().await, "try_lock(auto_renew)", d) {
        guard.release().await.unwrap();
    }
    match cache
        .synchronized(format!("{key}:s"), d, || async { 7 })
        .await
    {
        Ok(seven) => assert_eq!(seven, 7),
        // A lease shorter than the work may be lost before the work ends.
        Err(err) if err.is_lost() && d < SURELY_LIVE => {}
        Err(err) => assert!(err.is_invalid_input(), "synchronized with {d:?}: {err}"),
    }
}

async fn fills(cache: &Cache, d: Duration, key: &str) {
    let fills = Arc::new(AtomicUsize::new(0));
    let fill = || {
        let fills = fills.clone();
        move || async move {
            fills.fetch_add(1, Ordering::SeqCst);
            Ok::<u32, stampede::Error>(9)
        }
    };
    // The TTL: a long one is kept, so the second call is a hit.
    let ttl = Fill::ttl(d);
    let first = cache.get_or_fill(key, ttl.clone(), fill()).await;
    if honoured(first, "Fill::ttl", d).is_some() {
        let again = cache.get_or_fill(key, ttl, fill()).await.unwrap();
        assert_eq!(again, 9);
        if d >= SURELY_LIVE {
            assert_eq!(fills.load(Ordering::SeqCst), 1, "Fill::ttl({d:?}) refilled");
        }
    }
    let minute = Duration::from_secs(60);
    let options = [
        ("Fill::lease", Fill::ttl(minute).lease(d)),
        (
            "Fill::stale_while_revalidate",
            Fill::ttl(minute).stale_while_revalidate(d),
        ),
        (
            "Fill::ttl+lease+swr",
            Fill::ttl(d).lease(d).stale_while_revalidate(d),
        ),
    ];
    for (i, (what, options)) in options.into_iter().enumerate() {
        let key = format!("{key}:{i}");
        let got = cache.get_or_fill(&key, options.clone(), fill()).await;
        if let Some(value) = honoured(got, what, d) {
            assert_eq!(value, 9);
        }
        let detached = cache.get_or_fill_detached(&key, options, fill()).await;
        honoured(detached, what, d);
    }
}
