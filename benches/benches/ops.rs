//! Criterion benches of stampede's operations on each backend.
//!
//! ```text
//! cargo bench -p stampede-benches --bench ops              # every backend
//! cargo bench -p stampede-benches --bench ops -- redis/    # one backend
//! ```
//!
//! Per backend (memory, redis, memcached): an uncontended
//! `RedLock::acquire` + `release`; `RedLock::lock` + `release`;
//! `OptimisticLock::acquire` + `cas`; a `get_or_fill` that hits; and a
//! stampede of 1,000 `get_or_fill` callers on one fresh key whose fill
//! takes 5 ms, timed from the release of every caller until the last is
//! served (so it includes the fill). Redis and memcached are started the way the tests start
//! them, or named by `STAMPEDE_REDIS_URL` / `STAMPEDE_MEMCACHED_URL`.

use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use stampede::{Cache, Fill, OptimisticLock, RedLock};
use stampede_benches::{runtime, servers, stampede_run};

const LEASE: Duration = Duration::from_secs(10);
const STAMPEDE_CALLERS: usize = 1_000;
const STAMPEDE_FILL: Duration = Duration::from_millis(5);

fn backends(rt: &tokio::runtime::Runtime) -> Vec<(&'static str, Cache)> {
    let namespace = format!("bench-{}", std::process::id());
    let open = |url: String| {
        rt.block_on(Cache::from_url(&url))
            .unwrap_or_else(|e| panic!("open {url}: {e}"))
            .with_namespace(&namespace)
    };
    vec![
        ("memory", Cache::memory().with_namespace(&namespace)),
        ("redis", open(servers::redis_url())),
        ("memcached", open(servers::memcached_url())),
    ]
}

fn operations(c: &mut Criterion) {
    let rt = runtime(2);
    for (backend, cache) in backends(&rt) {
        let mut group = c.benchmark_group(backend);
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));

        let lock = RedLock::new(&cache, "acquire", LEASE);
        group.bench_function("acquire+release", |b| {
            b.to_async(&rt).iter(|| async {
                let guard = lock.acquire().await.expect("acquire");
                assert!(guard.holds_lock());
                guard.release().await.expect("release");
            });
        });

        let exclusive = RedLock::new(&cache, "lock", LEASE);
        group.bench_function("lock+release", |b| {
            b.to_async(&rt).iter(|| async {
                let guard = exclusive.lock().await.expect("lock");
                guard.release().await.expect("release");
            });
        });

        rt.block_on(cache.set("counter", b"0", None)).expect("set");
        group.bench_function("optimistic acquire+cas", |b| {
            b.to_async(&rt).iter(|| async {
                let lock = OptimisticLock::acquire(&cache, "counter")
                    .await
                    .expect("acquire");
                lock.cas(b"1", None).await.expect("cas");
            });
        });

        let fill = Fill::ttl(Duration::from_secs(3600));
        rt.block_on(cache.set_value("hit", &"cached".to_owned(), None))
            .expect("set_value");
        group.bench_function("get_or_fill hit", |b| {
            b.to_async(&rt).iter(|| async {
                let value: String = cache
                    .get_or_fill("hit", fill.clone(), || async {
                        Err::<String, _>(stampede::Error::InvalidArgument {
                            name: "fill",
                            reason: "a hit must not fill",
                        })
                    })
                    .await
                    .expect("hit");
                assert_eq!(value, "cached");
            });
        });

        group.sample_size(10);
        group.bench_function(
            BenchmarkId::new("stampede", format!("{STAMPEDE_CALLERS} callers, 5 ms fill")),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let key = format!("stampede-{}", uuid::Uuid::new_v4().simple());
                        let outcome = rt.block_on(stampede_run::stampede(
                            &cache,
                            &key,
                            STAMPEDE_CALLERS,
                            STAMPEDE_FILL,
                            LEASE,
                            SystemTime::now(),
                        ));
                        assert_eq!(outcome.fills, 1, "one fill per stampede");
                        // From the release of every caller to the last one served.
                        let last_ms = outcome.latencies_ms.iter().copied().fold(0.0, f64::max);
                        total += Duration::from_secs_f64(last_ms / 1e3);
                    }
                    total
                });
            },
        );
        group.finish();
    }
}

criterion_group!(benches, operations);
criterion_main!(benches);
