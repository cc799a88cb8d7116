//! The everyday surface on Redis, where it meets other clients and the
//! server: counters are plain `INCRBY` counters, `touch` and `increment`
//! keep to the key's TTL, `clear` escapes glob characters and takes every
//! companion of its keys along. Driven through the `Backend` trait, keys
//! as the server sees them. Batches are in `batches.rs`.

use std::sync::Arc;
use std::time::Duration;

use stampede::backend::redis::{
    deadpool_redis, fence_key, fill_lease_key, redis, RedisBackend, RedisOptions,
};
use stampede::backend::{Backend, Fencing, FillLease, LeaseToken, LockAttempt};
use stampede::Error;
use tokio::sync::Notify;

use super::{raw, shared_url, MultiplexedConnection, LONG_LEASE};

/// A backend on the shared server, as `Cache` would build it.
pub(crate) fn backend() -> RedisBackend {
    RedisBackend::new(
        deadpool_redis::Config::from_url(shared_url()),
        RedisOptions::default(),
    )
    .unwrap()
}

/// A prefix of its own for one test: `<test>-<uuid>:`.
pub(crate) fn prefix(test: &str) -> String {
    format!("{test}-{}:", uuid::Uuid::new_v4().simple())
}

/// What another Redis client reads at `key`.
pub(crate) async fn raw_get(conn: &mut MultiplexedConnection, key: &[u8]) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
}

async fn pttl(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

/// A fill lease on `key`, which nobody holds.
pub(crate) async fn granted(backend: &RedisBackend, key: &str) -> LeaseToken {
    let read = backend.read_for_fill(key, LONG_LEASE).await.unwrap();
    match read.lease {
        FillLease::Granted(lease) => lease,
        _ => panic!("{key}: {read:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_plain_incrby_counters_both_ways() {
    let (backend, mut other) = (backend(), raw(&shared_url()).await);
    let key = format!("{}n", prefix("counter"));
    assert_eq!(backend.increment(&key, 5).await.unwrap(), 5);
    assert_eq!(raw_get(&mut other, key.as_bytes()).await.unwrap(), b"5");
    let by_other: i64 = redis::cmd("INCRBY")
        .arg(&key)
        .arg(10)
        .query_async(&mut other)
        .await
        .unwrap();
    assert_eq!(by_other, 15);
    assert_eq!(backend.increment(&key, -20).await.unwrap(), -5);
    assert_eq!(
        backend.get(&key).await.unwrap().as_deref(),
        Some(&b"-5"[..])
    );

    // Exact beyond 2^53, where a Lua number would round.
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("9007199254740993")
        .query_async(&mut other)
        .await
        .unwrap();
    assert_eq!(backend.increment(&key, 2).await.unwrap(), 9007199254740995);

    // A value `set` wrote in the envelope counts as its payload and is
    // stored back bare, for every client to read.
    backend.set(&key, b"41", None).await.unwrap();
    assert_eq!(backend.increment(&key, 1).await.unwrap(), 42);
    assert_eq!(raw_get(&mut other, key.as_bytes()).await.unwrap(), b"42");
    // Marked stale too: still a counter, and fresh again once written.
    assert!(backend.mark_stale(&key, LONG_LEASE).await.unwrap());
    assert_eq!(backend.increment(&key, 1).await.unwrap(), 43);
    let read = backend.read_for_fill(&key, LONG_LEASE).await.unwrap();
    assert!(
        !read.stale && read.lease == FillLease::NotNeeded,
        "{read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increment_keeps_the_ttl_and_creates_without_one() {
    let (backend, mut other) = (backend(), raw(&shared_url()).await);
    let base = prefix("counter-ttl");
    let (bare, wrapped, fresh) = (
        format!("{base}bare"),
        format!("{base}wrapped"),
        format!("{base}fresh"),
    );
    let () = redis::cmd("SET")
        .arg(&bare)
        .arg("7")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut other)
        .await
        .unwrap();
    backend
        .set(&wrapped, b"7", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    for key in [&bare, &wrapped] {
        assert_eq!(backend.increment(key, 1).await.unwrap(), 8, "{key}");
        let left = pttl(&mut other, key).await;
        assert!((50_000..=60_000).contains(&left), "{key}: PTTL {left}");
    }
    assert_eq!(backend.increment(&fresh, 1).await.unwrap(), 1);
    assert_eq!(
        pttl(&mut other, &fresh).await,
        -1,
        "no TTL on a new counter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_is_no_counter_or_would_overflow_is_left_as_it_was() {
    let (backend, mut other) = (backend(), raw(&shared_url()).await);
    let base = prefix("not-counter");
    let cases: [(&str, &[u8], bool); 6] = [
        ("text", b"abc", false),
        ("spaced", b" 5", false),
        ("float", b"1.5", false),
        ("max", b"9223372036854775807", true),
        ("wrapped-text", b"abc", false),
        ("wrapped-max", b"9223372036854775807", true),
    ];
    for (name, value, overflows) in cases {
        let key = format!("{base}{name}");
        if name.starts_with("wrapped") {
            backend.set(&key, value, None).await.unwrap();
        } else {
            let () = redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .query_async(&mut other)
                .await
                .unwrap();
        }
        let before = raw_get(&mut other, key.as_bytes()).await;
        let error = backend.increment(&key, 1).await.unwrap_err();
        match error {
            Error::CounterOverflow { key: named, delta } if overflows => {
                assert_eq!((named, delta), (key.clone(), 1));
            }
            Error::NotACounter { key: named } if !overflows => assert_eq!(named, key),
            other => panic!("{name}: {other:?}"),
        }
        // The very bytes, envelope and nonce included.
        assert_eq!(raw_get(&mut other, key.as_bytes()).await, before, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increment_voids_a_fill_lease_like_a_set() {
    let backend = backend();
    let key = format!("{}n", prefix("counter-lease"));
    let lease = granted(&backend, &key).await;
    assert_eq!(backend.increment(&key, 1).await.unwrap(), 1);
    assert!(!backend
        .store_filled(&key, &lease, b"filled", None)
        .await
        .unwrap());
    assert_eq!(backend.get(&key).await.unwrap().as_deref(), Some(&b"1"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_and_touch_see_values_not_fill_leases() {
    let (backend, mut other) = (backend(), raw(&shared_url()).await);
    let key = format!("{}k", prefix("exists"));
    let _lease = granted(&backend, &key).await;
    assert!(!backend.exists(&key).await.unwrap(), "a fill lease alone");
    assert!(!backend.touch(&key, LONG_LEASE).await.unwrap());

    backend.set(&key, b"v", None).await.unwrap();
    assert!(backend.exists(&key).await.unwrap());
    assert!(backend
        .mark_stale(&key, Duration::from_secs(5))
        .await
        .unwrap());
    assert!(backend.exists(&key).await.unwrap(), "a value marked stale");
    // Touched, a stale value keeps its mark; only its TTL moves.
    assert!(backend.touch(&key, Duration::from_secs(60)).await.unwrap());
    let left = pttl(&mut other, &key).await;
    assert!((50_000..=60_000).contains(&left), "PTTL {left}");
    let read = backend.read_for_fill(&key, LONG_LEASE).await.unwrap();
    assert!(read.stale, "{read:?}");
    assert_eq!(read.value.unwrap().0.as_ref(), b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_takes_glob_characters_literally() {
    let (backend, mut other) = (backend(), raw(&shared_url()).await);
    let id = uuid::Uuid::new_v4().simple().to_string();
    // Each prefix, read as a glob, would match the next one's key.
    let prefixes = [r"a*:", "ab:", "a?:", "a[bc]:", "ac:", r"a\:"].map(|p| format!("{id}{p}"));
    for prefix in &prefixes {
        backend
            .set(&format!("{prefix}x"), b"v", None)
            .await
            .unwrap();
    }
    for (at, prefix) in prefixes.iter().enumerate() {
        backend.clear(prefix).await.unwrap();
        for (other_at, other_prefix) in prefixes.iter().enumerate() {
            let key = format!("{other_prefix}x");
            let there = raw_get(&mut other, key.as_bytes()).await.is_some();
            assert_eq!(there, other_at > at, "after clearing {prefix:?}: {key:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_takes_every_companion_and_nothing_outside() {
    let (backend, mut other) = (backend(), raw(&shared_url()).await);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (inside, outside) = (format!("{id}in:"), format!("{id}out:"));
    let mut gone: Vec<Vec<u8>> = Vec::new();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for (prefix, names) in [(&inside, &mut gone), (&outside, &mut kept)] {
        // Keys of every companion shape: plain, hash tag, stray brace.
        for key in ["v", "{t}v", "a}b"].map(|k| format!("{prefix}{k}")) {
            backend.set(&key, b"v", None).await.unwrap();
            let lock = format!("{key}-lock");
            let attempt = backend.try_lock(&lock, b"me", LONG_LEASE, Fencing::Issue);
            assert!(matches!(
                attempt.await.unwrap(),
                LockAttempt::Acquired { .. }
            ));
            // A cold fill's lease: its key is absent.
            let cold = format!("{key}-cold");
            granted(&backend, &cold).await;
            names.extend([key.clone().into_bytes(), lock.clone().into_bytes()]);
            names.extend([fence_key(&lock), fill_lease_key(&cold)]);
        }
        // A fence counter whose lock is gone: it outlives it by an hour.
        let released = format!("{prefix}released-lock");
        let attempt = backend.try_lock(&released, b"me", LONG_LEASE, Fencing::Issue);
        assert!(matches!(
            attempt.await.unwrap(),
            LockAttempt::Acquired { .. }
        ));
        assert!(backend.release(&released, b"me").await.unwrap());
        names.push(fence_key(&released));
    }
    // Keys that merely contain the prefix, and their companions.
    let nested = format!("x{inside}k");
    granted(&backend, &nested).await;
    kept.extend([fill_lease_key(&nested)]);

    backend.clear(&inside).await.unwrap();
    for name in &gone {
        let found = raw_get(&mut other, name).await;
        assert_eq!(found, None, "{}", String::from_utf8_lossy(name));
    }
    for name in &kept {
        let found = raw_get(&mut other, name).await;
        assert!(found.is_some(), "{}", String::from_utf8_lossy(name));
    }
    backend.clear(&outside).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_wakes_other_processes_fill_waiters() {
    let (backend, watcher) = (backend(), self::backend());
    let base = prefix("clear-wakes");
    let key = format!("{base}k");
    let _lease = granted(&backend, &key).await;
    let notify = Arc::new(Notify::new());
    let _watch = watcher
        .watch_fills(&key, Arc::clone(&notify))
        .await
        .unwrap();
    let woken = notify.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    backend.clear(&base).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), woken)
        .await
        .expect("the end of the cleared fill lease was published");
    let read = backend.read_for_fill(&key, LONG_LEASE).await.unwrap();
    assert!(matches!(read.lease, FillLease::Granted(_)), "{read:?}");
}
