//! Every script on a real cluster, with keys on every master: a script
//! whose keys (or whose `SPUBLISH` channel) left the key's slot would fail
//! with `CROSSSLOT`, or publish where nobody listens.

use std::sync::Arc;
use std::time::Duration;

use stampede::backend::redis::{deadpool_redis, RedisBackend, RedisOptions};
use stampede::backend::{Backend, Fencing, FillLease, LeaseToken, LockAttempt, ReleaseWatch};
use tokio::sync::Notify;

use super::common::topology::shared_cluster;

const LEASE: Duration = Duration::from_secs(10);
/// How soon a release published on the key's node must reach a watcher.
const HEARD_WITHIN: Duration = Duration::from_secs(2);

pub(crate) fn cluster_backend() -> RedisBackend {
    let urls = shared_cluster()
        .url()
        .trim_start_matches("redis+cluster://")
        .split(',')
        .map(|host| format!("redis://{host}"))
        .collect::<Vec<_>>();
    let config = deadpool_redis::cluster::Config::from_urls(urls);
    RedisBackend::new(config, RedisOptions::default()).unwrap()
}

/// Keys on every master, some with hash tags and stray braces.
pub(crate) fn keys(test: &str) -> Vec<String> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let keys: Vec<String> = (0..24)
        .map(|i| match i % 4 {
            0 => format!("{test}:{id}:{i}"),
            1 => format!("{{{test}{i}}}:{id}"),
            2 => format!("{test}{{:{id}:{i}"),
            _ => format!("}}{{{test}:{i}:{id}"),
        })
        .collect();
    let masters: std::collections::HashSet<u16> = keys
        .iter()
        .map(|key| shared_cluster().master_for_key(key.as_bytes()))
        .collect();
    assert_eq!(masters.len(), 3, "the keys should cover every master");
    keys
}

/// Runs `release` and asserts that a watcher of `key` on `watching` hears it.
async fn heard<F: std::future::Future>(notify: &Arc<Notify>, release: F) -> F::Output {
    let notified = notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let output = release.await;
    tokio::time::timeout(HEARD_WITHIN, notified)
        .await
        .expect("the publish reached the watcher on the key's node");
    output
}

/// A fill lease on `key`, which nobody holds.
async fn granted(backend: &RedisBackend, key: &str) -> LeaseToken {
    let read = backend.read_for_fill(key, LEASE).await.unwrap();
    match read.lease {
        FillLease::Granted(lease) => lease,
        _ => panic!("{key}: {read:?}"),
    }
}

/// A watch on `key`'s fill lease, and what it notifies.
async fn watching_fills(watcher: &RedisBackend, key: &str) -> (Arc<Notify>, ReleaseWatch) {
    let notify = Arc::new(Notify::new());
    let watch = watcher.watch_fills(key, Arc::clone(&notify)).await.unwrap();
    (notify, watch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_lua() {
    let backend = cluster_backend();
    for key in keys("cas") {
        backend.set(&key, b"v1", None).await.unwrap();
        let (_, token) = backend.gets(&key).await.unwrap().unwrap();
        assert!(backend.cas(&key, b"v2", Some(&token), None).await.unwrap());
        assert!(!backend.cas(&key, b"v3", Some(&token), None).await.unwrap());
        assert_eq!(
            backend.get(&key).await.unwrap().as_deref(),
            Some(&b"v2"[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_fenced_lua_lock_record_lua_and_extend_lua() {
    let backend = cluster_backend();
    for key in keys("fenced") {
        let attempt = backend
            .try_lock(&key, b"a", LEASE, Fencing::Issue)
            .await
            .unwrap();
        let LockAttempt::Acquired { fence: Some(first) } = attempt else {
            panic!("{key}: {attempt:?}");
        };
        let held = backend
            .try_lock(&key, b"b", LEASE, Fencing::Issue)
            .await
            .unwrap();
        assert!(
            matches!(held, LockAttempt::Held { remaining: Some(_) }),
            "{key}: {held:?}"
        );
        let record = backend.lock_record(&key).await.unwrap().expect("a record");
        assert_eq!(&record.owner[..], b"a");
        assert!(record.remaining.is_some_and(|left| left <= LEASE));
        assert!(backend.extend(&key, b"a", LEASE * 2).await.unwrap());
        assert!(!backend.extend(&key, b"b", LEASE * 2).await.unwrap());
        assert!(backend.release(&key, b"a").await.unwrap());
        let again = backend
            .try_lock(&key, b"c", LEASE, Fencing::Issue)
            .await
            .unwrap();
        let LockAttempt::Acquired { fence: Some(next) } = again else {
            panic!("{key}: {again:?}");
        };
        assert!(next > first, "{key}: token {next} after {first}");
        assert!(backend.release(&key, b"c").await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_lua_publishes_on_the_keys_node() {
    let backend = cluster_backend();
    let watcher = cluster_backend();
    for key in keys("release") {
        let attempt = backend
            .try_lock(&key, b"a", LEASE, Fencing::Skip)
            .await
            .unwrap();
        assert!(matches!(attempt, LockAttempt::Acquired { .. }), "{key}");
        let notify = Arc::new(Notify::new());
        let _watch = watcher
            .watch_releases(&key, Arc::clone(&notify))
            .await
            .unwrap();
        assert!(!backend.release(&key, b"b").await.unwrap());
        assert!(heard(&notify, backend.release(&key, b"a")).await.unwrap());
        assert_eq!(backend.lock_record(&key).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_read_lua_and_fill_store_lua() {
    let backend = cluster_backend();
    let watcher = cluster_backend();
    for key in keys("fill") {
        let lease = granted(&backend, &key).await;
        let busy = backend.read_for_fill(&key, LEASE).await.unwrap();
        assert!(matches!(busy.lease, FillLease::Busy), "{key}: {busy:?}");
        let (notify, _watch) = watching_fills(&watcher, &key).await;
        let stored = heard(&notify, backend.store_filled(&key, &lease, b"filled", None));
        assert!(stored.await.unwrap(), "{key}");
        let read = backend.read_for_fill(&key, LEASE).await.unwrap();
        assert!(
            matches!(read.lease, FillLease::NotNeeded),
            "{key}: {read:?}"
        );
        assert_eq!(
            backend.get(&key).await.unwrap().as_deref(),
            Some(&b"filled"[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_release_lua() {
    let backend = cluster_backend();
    let watcher = cluster_backend();
    for key in keys("fill-release") {
        let lease = granted(&backend, &key).await;
        let (notify, _watch) = watching_fills(&watcher, &key).await;
        assert!(heard(&notify, backend.release_fill(&key, &lease))
            .await
            .unwrap());
        let read = backend.read_for_fill(&key, LEASE).await.unwrap();
        assert!(
            matches!(read.lease, FillLease::Granted(_)),
            "{key}: {read:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_lua_voids_the_fill_lease() {
    let backend = cluster_backend();
    let watcher = cluster_backend();
    for key in keys("delete") {
        let lease = granted(&backend, &key).await;
        let (notify, _watch) = watching_fills(&watcher, &key).await;
        assert!(!heard(&notify, backend.delete(&key)).await.unwrap());
        assert!(!backend
            .store_filled(&key, &lease, b"stale", None)
            .await
            .unwrap());
        backend.set(&key, b"v", None).await.unwrap();
        assert!(backend.delete(&key).await.unwrap());
        assert_eq!(backend.get(&key).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_stale_lua() {
    let backend = cluster_backend();
    for key in keys("stale") {
        assert!(!backend.mark_stale(&key, LEASE).await.unwrap());
        backend.set(&key, b"old", None).await.unwrap();
        assert!(backend.mark_stale(&key, LEASE).await.unwrap());
        let read = backend.read_for_fill(&key, LEASE).await.unwrap();
        assert!(read.stale, "{key}: {read:?}");
        assert!(
            matches!(read.lease, FillLease::Granted(_)),
            "{key}: {read:?}"
        );
    }
}
