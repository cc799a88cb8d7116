//! `Cache::clear` on a handle without a namespace empties the whole store,
//! on every backend. Each case has a private store: this must never run
//! against a server other tests share.

use crate::common;

use stampede::Cache;

/// Writes at the root and in a namespace, clears the root, checks both gone.
async fn root_clear_empties_the_store(cache: Cache) {
    let nested = cache.with_namespace("app");
    cache.set("top", b"1", None).await.unwrap();
    nested.set("inner", b"2", None).await.unwrap();
    assert_eq!(cache.increment("counter", 5).await.unwrap(), 5);
    cache.clear().await.unwrap();
    let left = cache
        .get_many(&["top", "counter", "app:inner"])
        .await
        .unwrap();
    assert!(left.iter().all(Option::is_none), "{left:?}");
    assert_eq!(nested.get("inner").await.unwrap(), None);
}

#[tokio::test]
async fn memory() {
    root_clear_empties_the_store(Cache::memory()).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    let server = common::servers::Server::start(common::servers::REDIS);
    let cache = Cache::from_url(&server.url()).await.unwrap();
    root_clear_empties_the_store(cache).await;
}

#[cfg(feature = "memcached")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached() {
    let server = common::servers::Server::start(common::servers::MEMCACHED);
    let cache = Cache::from_url(&server.url()).await.unwrap();
    root_clear_empties_the_store(cache).await;
}
