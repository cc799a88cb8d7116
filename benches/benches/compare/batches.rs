//! The batch rows: `get_many` of 100 present keys, ours against 100
//! sequential `get`s and against one batch sent by hand (the floor), and
//! `get_or_fill_many` of 100 cold keys by 50 overlapping callers
//! (`fill_many`), on every backend.
//!
//! Run alone with `STAMPEDE_BENCH_ONLY=batches[:<backend>,…]` (see
//! [`run_alone`]); otherwise part of the whole comparison.

use std::sync::Arc;

use stampede::Cache;
use stampede_benches::floor::{ClusterFloor, MemcachedFloor, MemoryBatchFloor, RedisFloor};
use stampede_benches::measure;
use stampede_benches::servers::{self, cluster_nodes, host_port};

use crate::fill_many::{self, FillMany};
use crate::knobs::Knobs;
use crate::pairs::{contender, Contender, Mode, Targets};

/// Keys per batch.
pub const KEYS: usize = 100;
/// Bytes of each value's payload (what the caller wrote).
pub const PAYLOAD: usize = 100;

/// The hand-sent batch a backend's `get_many` is measured against.
pub enum Floor {
    Memory(MemoryBatchFloor),
    Redis(RedisFloor),
    Cluster(ClusterFloor),
    Memcached(MemcachedFloor),
}

impl Floor {
    /// Connects the floor of `backend` to the server at `url`.
    async fn connect(backend: &str, url: &str) -> Floor {
        match backend {
            "memory" => Floor::Memory(MemoryBatchFloor::new()),
            "redis" => Floor::Redis(RedisFloor::connect(url).await),
            "redis-cluster" => {
                Floor::Cluster(ClusterFloor::connect_cluster(&cluster_nodes(url)).await)
            }
            "memcached" => Floor::Memcached(MemcachedFloor::connect(&host_port(url)).await),
            other => panic!("no batch floor for {other}"),
        }
    }

    /// Stores `payload` at `key` as stampede stores it (enveloped on Redis).
    async fn set(&self, key: &str, payload: &[u8]) {
        match self {
            Floor::Memory(floor) => floor.set(key, payload).await,
            Floor::Redis(floor) => floor.set(key, payload).await,
            Floor::Cluster(floor) => floor.set(key, payload).await,
            Floor::Memcached(floor) => floor.set(key, payload).await,
        }
    }

    /// The batch read; how many keys were present.
    async fn get_many(&self, keys: &[String]) -> usize {
        match self {
            Floor::Memory(floor) => floor.get_many(keys).await,
            Floor::Redis(floor) => floor.mget(keys).await,
            Floor::Cluster(floor) => floor.mget(keys).await,
            Floor::Memcached(floor) => floor.get_many(keys).await,
        }
    }

    /// What the floor sends, for the table's notes.
    fn does(&self) -> &'static str {
        match self {
            Floor::Memory(_) => {
                "100 moka `get`s in a loop, on a moka table weighed and bounded \
                 as the memory backend's"
            }
            Floor::Redis(_) => {
                "one `MGET` of the 100 keys (values in stampede's 14-byte envelope), \
                 on one multiplexed connection from deadpool"
            }
            Floor::Cluster(_) => {
                "one `MGET` through redis-rs's ClusterConnection, which splits it by \
                 slot and sends the parts to the masters at once"
            }
            Floor::Memcached(_) => {
                "one pipelined batch of 100 `mg <k> v c t` through memcache::exp's \
                 `run_many` (one batch per server)"
            }
        }
    }
}

/// One backend's side of the batch rows: our cache and the floor.
pub struct On {
    pub backend: &'static str,
    pub cache: Cache,
    pub floor: Arc<Floor>,
    /// Prefix of the floor's keys.
    pub floor_prefix: String,
}

/// The backends of the whole comparison, their caches opened already.
pub async fn on_targets(targets: &Targets) -> Vec<On> {
    let mut on = Vec::new();
    for (backend, cache, url) in [
        ("memory", &targets.memory, "memory://"),
        ("redis", &targets.redis, targets.redis_url.as_str()),
        (
            "redis-cluster",
            &targets.redis_cluster,
            &targets.redis_cluster_url,
        ),
        ("memcached", &targets.memcached, &targets.memcached_addr),
    ] {
        on.push(On {
            backend,
            cache: cache.clone(),
            floor: Arc::new(Floor::connect(backend, url).await),
            floor_prefix: format!("{}batch:", targets.floor_prefix),
        });
    }
    on
}

/// One `get_many` row, measured.
#[derive(Clone, Debug)]
pub struct GetManyRow {
    pub backend: &'static str,
    /// µs per batch of [`KEYS`] keys: ours, 100 sequential `get`s, the floor.
    pub ours: f64,
    pub gets: f64,
    pub floor: f64,
    pub floor_does: &'static str,
}

/// Everything the batch rows measured.
#[derive(Clone, Debug, Default)]
pub struct Batches {
    pub get_many: Vec<GetManyRow>,
    pub fill_many: Vec<FillMany>,
    /// `#[cached]` hits against the hand-written call.
    pub attribute: Vec<crate::attribute::AttributeRow>,
}

/// Measures every batch row on every backend of `on`; `step` is told each.
pub async fn run(on: &[On], knobs: &Knobs, mut step: impl FnMut(&str)) -> Batches {
    let mut batches = Batches::default();
    for on in on {
        step(&format!("{}: get_many of {KEYS} keys", on.backend));
        batches.get_many.push(get_many_row(on, knobs).await);
    }
    for on in on {
        step(&format!(
            "{}: get_or_fill_many, {} callers",
            on.backend,
            fill_many::CALLERS
        ));
        batches
            .fill_many
            .push(fill_many::run(on.backend, &on.cache, knobs).await);
    }
    for on in on {
        step(&format!("{}: a #[cached] hit", on.backend));
        batches
            .attribute
            .push(crate::attribute::row(on, knobs).await);
    }
    batches
}

/// Stores [`KEYS`] values through ours and through the floor, then times
/// ours, 100 `get`s and the floor, taking turns round after round; each
/// gets the median of its rounds.
async fn get_many_row(on: &On, knobs: &Knobs) -> GetManyRow {
    let cache = on.cache.with_namespace("get-many");
    let payload = vec![b'v'; PAYLOAD];
    let names: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &payload[..])).collect();
    cache.set_many(&entries, None).await.expect("set_many");
    let floor_keys: Vec<String> = names
        .iter()
        .map(|name| format!("{}{name}", on.floor_prefix))
        .collect();
    for key in &floor_keys {
        on.floor.set(key, &payload).await;
    }
    let (names, floor_keys) = (Arc::new(names), Arc::new(floor_keys));
    let ours = ours_get_many(&cache, &names);
    let gets = ours_gets(&cache, &names);
    let floor = {
        let floor = on.floor.clone();
        contender(move |_, _| {
            let (floor, keys) = (floor.clone(), floor_keys.clone());
            async move {
                assert_eq!(
                    floor.get_many(&keys).await,
                    KEYS,
                    "floor: every key present"
                )
            }
        })
    };
    // The memory backend is ~100× faster than a round trip: more batches.
    // 100 `get`s on a network backend are 100 round trips: fewer of them.
    let (batches, of_gets) = match on.backend {
        "memory" => (knobs.scaled(2_000), knobs.scaled(2_000)),
        _ => (knobs.scaled(200), (knobs.scaled(200) / 10).max(1)),
    };
    let contenders = [(&ours, batches), (&gets, of_gets), (&floor, batches)];
    let [ours, gets, floor] = interleaved(&contenders, knobs.rounds).await;
    GetManyRow {
        backend: on.backend,
        ours,
        gets,
        floor,
        floor_does: on.floor.does(),
    }
}

/// `Cache::get_many` of every name; panics unless all are present.
fn ours_get_many(cache: &Cache, names: &Arc<Vec<String>>) -> Contender {
    let (cache, names) = (cache.clone(), names.clone());
    contender(move |_, _| {
        let (cache, names) = (cache.clone(), names.clone());
        async move {
            let values = cache.get_many(&names).await.expect("get_many");
            assert!(
                values.iter().all(Option::is_some),
                "ours: every key present"
            );
        }
    })
}

/// `Cache::get` of every name, one after another.
fn ours_gets(cache: &Cache, names: &Arc<Vec<String>>) -> Contender {
    let (cache, names) = (cache.clone(), names.clone());
    contender(move |_, _| {
        let (cache, names) = (cache.clone(), names.clone());
        async move {
            for name in names.iter() {
                let value = cache.get(name).await.expect("get");
                assert!(value.is_some(), "100 gets: every key present");
            }
        }
    })
}

/// Runs each contender `n` times per round after a warm-up of a tenth,
/// the one going first rotating from round to round; the median µs per
/// call of each.
pub async fn interleaved<const N: usize>(
    contenders: &[(&Contender, usize); N],
    rounds: usize,
) -> [f64; N] {
    for (run, n) in contenders {
        run(Mode::Sequential((n / 10).max(1))).await;
    }
    let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for round in 0..rounds {
        for turn in 0..N {
            let at = (turn + round) % N;
            let (run, n) = contenders[at];
            times[at].push(run(Mode::Sequential(n)).await);
        }
    }
    times.map(|mut times| measure::median(&mut times))
}

/// The batch rows alone, on `backends`: only their servers are started;
/// prints the section and its targets and writes nothing.
pub fn run_alone(knobs: &Knobs, backends: &[&'static str]) {
    let run_id = format!("batches-{}", uuid::Uuid::new_v4().simple());
    let rt = stampede_benches::runtime(2);
    let batches = rt.block_on(async {
        let mut on = Vec::new();
        for &backend in backends {
            let url = match backend {
                "memory" => "memory://".to_owned(),
                "redis" => servers::redis_url(),
                "redis-cluster" => servers::redis_cluster_url(),
                _ => servers::memcached_url(),
            };
            let cache = Cache::from_url(&url)
                .await
                .unwrap_or_else(|e| panic!("open {url}: {e}"))
                .with_namespace(&run_id);
            on.push(On {
                backend,
                cache,
                floor: Arc::new(Floor::connect(backend, &url).await),
                floor_prefix: format!("{run_id}:floor:batch:"),
            });
        }
        run(&on, knobs, |message| eprintln!("{message}")).await
    });
    println!("{}", crate::report_batches::alone(&batches, knobs));
}
