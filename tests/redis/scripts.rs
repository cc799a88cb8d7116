//! The script cache flushed between calls; fenced locks and `extend`.

use std::time::Duration;

use stampede::backend::redis::{deadpool_redis, fence_key, redis, RedisBackend, RedisOptions};
use stampede::backend::{Backend, Fencing, LockAttempt};
use stampede::RedLock;

use super::common::{assert_between, Kind, Store};
use super::{raw, shared_url, MultiplexedConnection, LONG_LEASE};

async fn flush_scripts(conn: &mut MultiplexedConnection) {
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_survive_a_script_flush() {
    let store = Store::new(Kind::Redis, "script_flush");
    let cache = store.handle().await;
    let mut admin = raw(&shared_url()).await;

    cache.set("k", b"v1", None).await.unwrap();
    let (_, token) = cache.gets("k").await.unwrap().unwrap();
    assert!(cache.cas("k", b"v2", Some(&token), None).await.unwrap());
    flush_scripts(&mut admin).await;
    let (_, token) = cache.gets("k").await.unwrap().unwrap();
    assert!(cache.cas("k", b"v3", Some(&token), None).await.unwrap());
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v3"[..]));

    let guard = RedLock::new(&cache, "lock", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    flush_scripts(&mut admin).await;
    assert!(guard.release().await.unwrap());
    assert_eq!(cache.get("lock-lock").await.unwrap(), None);
}

/// Fenced locks and `extend` are not reached through `RedLock` yet, so they
/// are driven through the `Backend` trait directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_try_lock_and_extend_run_on_the_server() {
    let url = shared_url();
    let backend = RedisBackend::new(
        deadpool_redis::Config::from_url(url.clone()),
        RedisOptions::default(),
    )
    .unwrap();
    let mut admin = raw(&url).await;
    let key = format!("fenced-{}-lock", uuid::Uuid::new_v4().simple());
    let lease = Duration::from_secs(5);

    let first = backend
        .try_lock(&key, b"a", lease, Fencing::Issue)
        .await
        .unwrap();
    // A new counter is seeded from the server clock (µs since the epoch).
    let LockAttempt::Acquired { fence: Some(fence) } = first else {
        panic!("expected Acquired with a fence, got {first:?}");
    };
    assert!(fence > 1_600_000_000_000_000, "fence {fence}");
    let held = backend
        .try_lock(&key, b"b", lease, Fencing::Issue)
        .await
        .unwrap();
    let LockAttempt::Held {
        remaining: Some(remaining),
    } = held
    else {
        panic!("expected Held with a remaining lease, got {held:?}");
    };
    assert_between("remaining lease", remaining, lease / 2, lease);
    assert_eq!(
        backend
            .try_lock(&key, b"b", lease, Fencing::Skip)
            .await
            .unwrap(),
        LockAttempt::Held { remaining: None }
    );

    // The counter lives at fence_key(), in the lock key's slot.
    let counter: u64 = redis::cmd("GET")
        .arg(fence_key(&key))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(counter, fence);

    flush_scripts(&mut admin).await;
    assert!(!backend.extend(&key, b"b", lease * 4).await.unwrap());
    assert!(backend.extend(&key, b"a", lease * 4).await.unwrap());
    let record = backend.lock_record(&key).await.unwrap().expect("record");
    assert_eq!(&record.owner[..], b"a");
    assert!(record.remaining.unwrap() > lease * 3, "{record:?}");

    flush_scripts(&mut admin).await;
    assert!(!backend.release(&key, b"b").await.unwrap());
    assert!(backend.release(&key, b"a").await.unwrap());
    assert_eq!(backend.lock_record(&key).await.unwrap(), None);
    // Fences keep growing across holders.
    let next = backend
        .try_lock(&key, b"c", lease, Fencing::Issue)
        .await
        .unwrap();
    let LockAttempt::Acquired {
        fence: Some(next_fence),
    } = next
    else {
        panic!("expected Acquired with a fence, got {next:?}");
    };
    assert!(next_fence > fence, "fence {next_fence} after {fence}");
    assert!(backend.release(&key, b"c").await.unwrap());
    let () = redis::cmd("DEL")
        .arg(fence_key(&key))
        .query_async(&mut admin)
        .await
        .unwrap();
}
