//! Round trips a near cache saves under a skewed read load: the same
//! workload with and without one, the reads' round trips counted by the
//! server side (Redis's `INFO commandstats`, a counting proxy in front of
//! memcached), not assumed.
//!
//! The workload: [`KEYS`] keys of [`VALUE_LEN`] bytes, read with Zipf-like
//! popularity (key of rank *r* with weight 1 / *r*^[`ZIPF_S`]), one
//! operation in [`WRITE_EVERY`] a write of a key drawn the same way, sent
//! by another node; [`OPS_PER_SEC`] operations a second, paced, one after
//! another. The same seeded sequence runs twice: with plain handles, and
//! with a near cache on both nodes (on Redis a writer announces its writes
//! only through a near cache). Before each run every key is written and
//! read once (not counted), so that the figure is the steady state, not
//! the first read of each key.

use std::time::{Duration, Instant};

use stampede::{Cache, NearCache, NearStats};
use stampede_benches::wire::CountingProxy;

/// Distinct keys.
pub const KEYS: usize = 1_000;
/// The Zipf exponent of the reads (and of which keys are written).
pub const ZIPF_S: f64 = 1.1;
/// One operation in this many is a write, on the other node.
pub const WRITE_EVERY: usize = 100;
/// Operations a second, paced.
pub const OPS_PER_SEC: u64 = 5_000;
/// Bytes of each value.
pub const VALUE_LEN: usize = 100;
/// memcached's trust window in this row (the default).
pub const TRUST: Duration = stampede::DEFAULT_NEAR_TRUST;

/// One backend's figures, with and without the near cache.
#[derive(Clone, Debug)]
pub struct Trips {
    pub backend: &'static str,
    /// How the round trips were counted.
    pub counted_by: &'static str,
    pub reads: u64,
    pub writes: u64,
    /// The reads' round trips without a near cache, counted.
    pub plain: u64,
    /// The reads' round trips with one, counted.
    pub near: u64,
    /// The reader's near cache over the measured run.
    pub stats: NearStats,
    /// Seconds each measured run took: without, with.
    pub secs: (f64, f64),
}

/// One operation of the workload.
#[derive(Clone, Copy, Debug)]
enum Op {
    Read(usize),
    Write(usize),
}

/// `n` operations, the same for a given seed.
fn workload(n: usize, seed: u64) -> Vec<Op> {
    let mut cdf = Vec::with_capacity(KEYS);
    let mut total = 0.0;
    for rank in 1..=KEYS {
        total += 1.0 / (rank as f64).powf(ZIPF_S);
        cdf.push(total);
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut draw = || {
        let u = rng.f64() * total;
        cdf.partition_point(|&c| c < u).min(KEYS - 1)
    };
    let mut writes = fastrand::Rng::with_seed(seed ^ 0x5eed);
    (0..n)
        .map(|_| {
            if writes.usize(..WRITE_EVERY) == 0 {
                Op::Write(draw())
            } else {
                Op::Read(draw())
            }
        })
        .collect()
}

/// What counts the reader's round trips.
enum Counter {
    /// `INFO commandstats`'s `GET` calls: only the reader sends `GET`
    /// (the writer's `set` is a script, the invalidation feed subscribes
    /// and replays with `XRANGE`; the near cache's read is `GET` and
    /// `PTTL` in one `MULTI`).
    Redis(redis::aio::MultiplexedConnection),
    /// Every request through the proxy the reader alone connects through.
    Proxy(CountingProxy),
}

impl Counter {
    async fn take(&mut self) -> u64 {
        match self {
            Counter::Redis(conn) => {
                let info: String = redis::cmd("INFO")
                    .arg("commandstats")
                    .query_async(conn)
                    .await
                    .expect("INFO commandstats");
                info.lines()
                    .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
                    .and_then(|rest| rest.split(',').next())
                    .map_or(0, |calls| calls.parse().expect("a count"))
            }
            Counter::Proxy(proxy) => proxy.take().len() as u64,
        }
    }
}

/// Runs the workload on `backend` at `url` (host:port for memcached's
/// proxy), without and then with a near cache.
pub async fn run(backend: &'static str, url: &str, prefix: &str, ops: usize) -> Trips {
    let mut counter = match backend {
        "redis" => Counter::Redis(
            redis::Client::open(url)
                .expect("a Redis URL")
                .get_multiplexed_async_connection()
                .await
                .expect("connect for INFO"),
        ),
        _ => Counter::Proxy(
            CountingProxy::start(&stampede_benches::servers::host_port(url))
                .await
                .expect("start the counting proxy"),
        ),
    };
    let reader_url = match &counter {
        Counter::Proxy(proxy) => format!("memcached://{}", proxy.addr),
        Counter::Redis(_) => url.to_owned(),
    };
    let ops = workload(ops, 0x2a);
    let open = |url: String, near: bool| async move {
        let cache = Cache::from_url(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
        if near {
            cache
                .try_with_near_cache(NearCache::max_capacity(64 << 20).trust(TRUST))
                .expect("a near cache")
        } else {
            cache
        }
    };
    let mut counts = [0u64; 2];
    let mut secs = [0.0; 2];
    let mut stats = NearStats::default();
    let (mut reads, mut writes) = (0, 0);
    for (at, near) in [false, true].into_iter().enumerate() {
        let writer = open(url.to_owned(), near).await;
        let reader = open(reader_url.clone(), near).await;
        let keys: Vec<String> = (0..KEYS)
            .map(|i| format!("{prefix}{}:{i}", if near { "near" } else { "plain" }))
            .collect();
        let value = vec![b'v'; VALUE_LEN];
        for key in &keys {
            writer.set(key, &value, None).await.expect("set");
        }
        for key in &keys {
            assert!(reader.get(key).await.expect("warm read").is_some());
        }
        let before = reader.near_stats().unwrap_or_default();
        counter.take().await;
        let baseline = counter.take().await;
        let started = Instant::now();
        (reads, writes) = (0, 0);
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::Read(k) => {
                    reads += 1;
                    assert!(reader.get(&keys[k]).await.expect("get").is_some());
                }
                Op::Write(k) => {
                    writes += 1;
                    writer.set(&keys[k], &value, None).await.expect("set");
                }
            }
            let due = started + Duration::from_micros((i as u64 + 1) * 1_000_000 / OPS_PER_SEC);
            if Instant::now() < due {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        secs[at] = started.elapsed().as_secs_f64();
        let after = counter.take().await;
        counts[at] = match counter {
            // Cumulative: what the run added.
            Counter::Redis(_) => after - baseline,
            // Logged since the last take.
            Counter::Proxy(_) => after,
        };
        if near {
            stats = delta(reader.near_stats().expect("a near cache"), before);
        }
    }
    Trips {
        backend,
        counted_by: match counter {
            Counter::Redis(_) => "`GET` calls in `INFO commandstats`",
            Counter::Proxy(_) => "requests through a counting proxy in front of the reader",
        },
        reads,
        writes,
        plain: counts[0],
        near: counts[1],
        stats,
        secs: (secs[0], secs[1]),
    }
}

/// What `after` counted since `before` (entries and bytes as of `after`).
fn delta(after: NearStats, before: NearStats) -> NearStats {
    let mut d = after;
    d.hits -= before.hits;
    d.misses -= before.misses;
    d.backend_reads -= before.backend_reads;
    d.revalidations -= before.revalidations;
    d.copies -= before.copies;
    d.invalidations -= before.invalidations;
    d.flushes -= before.flushes;
    d
}
