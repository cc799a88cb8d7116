//! The round trips of one `get_or_fill`, counted rather than assumed: a
//! leader's cold fill on a fresh key and a hit on it afterwards, per
//! backend, after a warm-up (connections open, scripts loaded). Redis
//! through `MONITOR` (commands run by scripts left out), memcached through
//! a counting proxy on loopback, memory by logging the backend calls of a
//! wrapper passed to `Cache::custom`.

use std::time::Duration;

use stampede::backend::memory::MemoryBackend;
use stampede::{Cache, Fill};
use stampede_benches::counting::{Calls, CountingBackend};
use stampede_benches::wire::{CountingProxy, RedisMonitor};

/// What one backend's cold fill and hit sent.
#[derive(Clone, Debug)]
pub struct RoundTrips {
    pub backend: &'static str,
    /// How they were counted.
    pub counted_by: &'static str,
    /// The leader's cold fill, request by request.
    pub cold: Vec<String>,
    /// A hit on the filled key.
    pub hit: Vec<String>,
}

/// Where the counts come from.
enum Counter {
    Calls(Calls),
    Monitor(RedisMonitor),
    Proxy(CountingProxy),
}

impl Counter {
    /// What was sent since the last call.
    async fn take(&mut self) -> Vec<String> {
        match self {
            Counter::Calls(calls) => calls.take().into_iter().map(str::to_owned).collect(),
            Counter::Monitor(monitor) => monitor.commands().await.expect("MONITOR"),
            Counter::Proxy(proxy) => proxy.take(),
        }
    }
}

const VALUE: &str = "quarterly report: 42";

async fn fill(cache: &Cache, key: &str, options: &Fill) {
    let value: String = cache
        .get_or_fill(key, options.clone(), || async {
            Ok::<_, stampede::Error>(VALUE.to_owned())
        })
        .await
        .expect("get_or_fill");
    assert_eq!(value, VALUE);
}

async fn hit(cache: &Cache, key: &str, options: &Fill) {
    let value: String = cache
        .get_or_fill(key, options.clone(), || async {
            unreachable!("a hit does not fill");
            #[allow(unreachable_code)]
            Ok::<String, stampede::Error>(String::new())
        })
        .await
        .expect("get_or_fill");
    assert_eq!(value, VALUE);
}

async fn count(
    backend: &'static str,
    counted_by: &'static str,
    cache: &Cache,
    mut counter: Counter,
    lease: Duration,
) -> RoundTrips {
    let options = Fill::ttl(Duration::from_secs(300)).lease(lease);
    let warm = format!("warm-{}", uuid::Uuid::new_v4().simple());
    fill(cache, &warm, &options).await;
    hit(cache, &warm, &options).await;
    counter.take().await;
    let key = format!("report-{}", uuid::Uuid::new_v4().simple());
    fill(cache, &key, &options).await;
    let cold = counter.take().await;
    hit(cache, &key, &options).await;
    let hit = counter.take().await;
    RoundTrips {
        backend,
        counted_by,
        cold,
        hit,
    }
}

/// Counts on every backend, each cache in `namespace`.
pub async fn run(
    redis_url: &str,
    memcached_addr: &str,
    namespace: &str,
    lease: Duration,
) -> Vec<RoundTrips> {
    let (backend, calls) = CountingBackend::new(MemoryBackend::default());
    let memory = Cache::custom(backend).with_namespace(namespace);
    let memory = count(
        "memory",
        "backend calls",
        &memory,
        Counter::Calls(calls),
        lease,
    )
    .await;

    let monitor = RedisMonitor::start(redis_url).await.expect("MONITOR");
    let redis = Cache::from_url(redis_url)
        .await
        .expect("open Redis")
        .with_namespace(namespace);
    let redis = count("redis", "MONITOR", &redis, Counter::Monitor(monitor), lease).await;

    let proxy = CountingProxy::start(memcached_addr)
        .await
        .expect("start the counting proxy");
    let memcached = Cache::from_url(&format!("memcached://{}", proxy.addr))
        .await
        .expect("open memcached through the proxy")
        .with_namespace(namespace);
    let memcached = count(
        "memcached",
        "counting proxy",
        &memcached,
        Counter::Proxy(proxy),
        lease,
    )
    .await;
    vec![memory, redis, memcached]
}
