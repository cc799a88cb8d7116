//! Wrapper backends written with `stampede::forward_backend!`: they write
//! only what they change and reach every other method of the backend they
//! wrap, its own forms included (not the trait's defaults), the near
//! cache's methods too.

#[cfg(feature = "redis")]
use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stampede::backend::memory::MemoryBackend;
use stampede::backend::{Backend, Coherence};
use stampede::{Bytes, Cache, Error, Fill, NearCache, Result};

/// Counts reads and writes; forwards everything else.
struct Counting<B> {
    inner: B,
    gets: AtomicUsize,
    sets: AtomicUsize,
}

impl<B: Backend> Counting<B> {
    fn new(inner: B) -> Self {
        Counting {
            inner,
            gets: AtomicUsize::new(0),
            sets: AtomicUsize::new(0),
        }
    }
}

impl<B: Backend> Backend for Counting<B> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.sets.fetch_add(1, Ordering::Relaxed);
        self.inner.set(key, value, ttl).await
    }

    stampede::forward_backend!(inner, except [get, set]);
}

/// Forwards everything, from a tuple struct's field.
struct Plain(MemoryBackend);

impl Backend for Plain {
    stampede::forward_backend!(0);
}

#[tokio::test]
async fn the_overrides_run_and_the_rest_reaches_the_inner_backend() {
    let backend = Counting::new(MemoryBackend::default());
    assert_eq!(backend.kind(), "memory");
    backend.set("k", b"v", None).await.unwrap();
    backend.add("other", b"w", None).await.unwrap();
    assert_eq!(backend.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert!(backend.exists("other").await.unwrap());
    assert_eq!(backend.gets.load(Ordering::Relaxed), 1);
    assert_eq!(backend.sets.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_cache_on_a_wrapper_behaves_as_on_what_it_wraps() {
    let cache = Cache::custom(Counting::new(MemoryBackend::default()));
    cache.set("k", b"v", None).await.unwrap();
    assert_eq!(cache.increment("n", 2).await.unwrap(), 2);
    let filled = cache
        .get_or_fill("f", Fill::ttl(Duration::from_secs(60)), || async {
            Ok::<_, Error>("filled".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(filled, "filled");
    // `clear` is forwarded: the trait's default would refuse it.
    cache.clear().await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), None);
    assert_eq!(cache.get("f").await.unwrap(), None);
}

#[tokio::test]
async fn the_near_cache_methods_are_forwarded_too() {
    let memory = MemoryBackend::default();
    let reason = match memory.coherence() {
        Coherence::Unsupported(reason) => reason,
        other => panic!("memory: {other:?}"),
    };
    let plain = Plain(MemoryBackend::default());
    assert_eq!(plain.coherence(), Coherence::Unsupported(reason));
    assert!(plain.read_versioned("k").await.is_err());
    plain.set_versioned("k", b"v", None).await.unwrap();
    assert_eq!(plain.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

/// A backend written by hand with only the required methods keeps the
/// defaults: no near cache, with the reason a custom backend gets.
#[tokio::test]
async fn a_backend_without_the_coherence_methods_has_no_near_cache() {
    struct Required(MemoryBackend);
    impl Backend for Required {
        stampede::forward_backend!(0, except [
            coherence, announce_changes, follow_changes, read_versioned,
            read_for_fill_near, set_versioned, store_filled_versioned, revalidate,
        ]);
    }
    let backend = Required(MemoryBackend::default());
    assert!(matches!(
        backend.coherence(),
        Coherence::Unsupported(reason) if reason.contains("custom backend")
    ));
    let refused = Cache::custom(backend).try_with_near_cache(NearCache::max_capacity(1 << 20));
    assert!(matches!(refused, Err(Error::NearCacheUnsupported { .. })));
}

/// A wrapper around Redis keeps Redis's near cache: the feed, versioned
/// reads and writes all pass through it.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapper_around_redis_keeps_its_near_cache() {
    use stampede::backend::redis::{deadpool_redis, RedisBackend, RedisOptions};

    let url = common::servers::shared_url(common::servers::REDIS);
    let config = deadpool_redis::Config::from_url(url);
    let inner = RedisBackend::new(config, RedisOptions::default()).unwrap();
    let wrapper = Counting::new(inner);
    assert_eq!(wrapper.coherence(), Coherence::Push);
    let cache = Cache::custom(wrapper)
        .try_with_near_cache(NearCache::max_capacity(1 << 20))
        .unwrap()
        .with_namespace(&format!("forwarding-{}", unique()));
    let started = std::time::Instant::now();
    while !cache.near_stats().expect("a near cache").live {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the feed never came up"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    cache.set("k", b"v", None).await.unwrap();
    for _ in 0..3 {
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }
    let stats = cache.near_stats().expect("a near cache");
    assert!(stats.hits >= 1, "{stats:?}");
}

#[cfg(feature = "redis")]
fn unique() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}
