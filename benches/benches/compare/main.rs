//! One command that measures stampede against the floor (the same backend
//! work by hand), rslock and aiocache, in one run against the same servers,
//! prints the tables and writes them to BENCHMARKS.md with a chart.
//!
//! ```text
//! cargo bench -p stampede-benches --bench compare
//! STAMPEDE_BENCH_SCALE=5 STAMPEDE_BENCH_ROUNDS=9 cargo bench -p stampede-benches --bench compare
//! ```
//!
//! Knobs are environment variables (see `knobs.rs`); Redis, a Redis Cluster
//! (three masters, three replicas) and memcached are started as the tests
//! start them unless `STAMPEDE_REDIS_URL` / `STAMPEDE_REDIS_CLUSTER_URL` /
//! `STAMPEDE_MEMCACHED_URL` name servers. aiocache runs in a virtualenv
//! made under `target/aiocache-venv` on first use (`pip install`).
//!
//! `STAMPEDE_BENCH_ONLY=batches:memory` runs the batch rows alone (on the
//! backends named; all four without a list) and writes nothing;
//! `STAMPEDE_BENCH_ONLY=stampedes:memcached` does the same for the stampede
//! rows (with `STAMPEDE_BENCH_MEMCACHED_PARAMS=poll_ms=10` to try a client
//! setting on memcached); `STAMPEDE_BENCH_ONLY=near:redis` the near-cache
//! rows.

mod attribute;
mod batches;
mod cas;
mod chart;
mod child;
mod environment;
mod fill_many;
mod knobs;
mod memory;
mod near;
mod near_hits;
mod near_stale;
mod near_trips;
mod pairs;
mod pairs_memory;
mod pairs_redis;
mod race;
mod report;
mod report_batches;
mod report_fills;
mod report_near;
mod report_seed;
mod round_trips;
mod seed;
mod stampedes;
mod stampedes_alone;

use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use stampede::Cache;
use stampede_benches::{runtime, servers};

use crate::knobs::{Knobs, Part, BACKENDS};
use crate::pairs::Targets;
use crate::report::Results;

/// Steps shown by the progress bar: starting the servers, pair rows (ten
/// specs, two modes each), stampedes (four in one process, two across
/// processes), CAS, round trips, races, batches (`get_many`,
/// `get_or_fill_many` and a `#[cached]` hit on four backends), the near
/// cache's rows, memory, aiocache.
const STEPS: u64 = 1 + 20 + 6 + 3 + 1 + 3 + 12 + near::STEPS + 1 + 1;

fn main() {
    if child::run_if_child() {
        return;
    }
    let knobs = Knobs::from_env();
    if let Some(only) = &knobs.only {
        match only.part {
            Part::Batches => batches::run_alone(&knobs, &only.backends),
            Part::Stampedes => stampedes_alone::run(&knobs, &only.backends),
            Part::Near => near::run_alone(&knobs, &only.backends),
        }
        return;
    }
    let started = Instant::now();
    let progress = ProgressBar::new(STEPS).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let step = |message: &str| {
        progress.set_message(message.to_owned());
        progress.inc(1);
    };

    step("starting Redis, a Redis Cluster and memcached");
    let redis_url = servers::redis_url();
    let cluster_url = servers::redis_cluster_url();
    let memcached_url = servers::memcached_url();
    let memcached_addr = servers::host_port(&memcached_url);
    let run_id = format!(
        "cmp-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let rt = runtime(2);

    let (targets, rows, stampedes, cas) = rt.block_on(async {
        let open = |url: String| {
            let run_id = run_id.clone();
            async move {
                Cache::from_url(&url)
                    .await
                    .unwrap_or_else(|e| panic!("open {url}: {e}"))
                    .with_namespace(&run_id)
            }
        };
        let targets = Targets {
            memory: Cache::memory().with_namespace(&run_id),
            redis: open(redis_url.clone()).await,
            redis_cluster: open(cluster_url.clone()).await,
            memcached: open(memcached_url.clone()).await,
            redis_url: redis_url.clone(),
            redis_cluster_url: cluster_url.clone(),
            memcached_addr: memcached_addr.clone(),
            floor_prefix: format!("{run_id}:floor:"),
        };
        let rows = pairs::run(&targets, &knobs, &step).await;
        let mut stampedes = Vec::new();
        for (backend, cache) in [
            ("memory", &targets.memory),
            ("redis", &targets.redis),
            ("redis-cluster", &targets.redis_cluster),
            ("memcached", &targets.memcached),
        ] {
            step(&format!("{backend} stampede, one process"));
            stampedes.push((backend, 1, stampedes::one_process(cache, &knobs).await));
        }
        let mut cas = Vec::new();
        for (backend, cache) in [
            ("memory", &targets.memory),
            ("redis", &targets.redis),
            ("memcached", &targets.memcached),
        ] {
            step(&format!(
                "{backend}: {} × {} CAS increments",
                knobs.cas_tasks, knobs.cas_each
            ));
            cas.push((
                backend,
                cas::increments(cache, knobs.cas_tasks, knobs.cas_each).await,
            ));
        }
        (targets, rows, stampedes, cas)
    });
    let mut stampedes = stampedes;
    for (backend, url) in [("redis", &redis_url), ("memcached", &memcached_url)] {
        step(&format!("{backend} stampede, {} processes", knobs.procs));
        let figure = stampedes::across_processes(&format!("{url}?namespace={run_id}"), &knobs);
        stampedes.push((backend, knobs.procs, figure));
    }
    // After every figure above, so that those are measured as they always were.
    step("round trips of a fill, counted");
    let round_trips = rt.block_on(round_trips::run(
        &redis_url,
        &memcached_addr,
        &format!("{run_id}-trips"),
        knobs.lease,
    ));
    let mut races = Vec::new();
    for (backend, cache) in [
        ("memory", &targets.memory),
        ("redis", &targets.redis),
        ("memcached", &targets.memcached),
    ] {
        step(&format!(
            "{backend}: {} deletes during fills",
            knobs.race_trials
        ));
        let outcome = rt.block_on(race::delete_during_fill(
            cache,
            knobs.race_trials,
            knobs.race_in_flight,
            knobs.lease,
        ));
        races.push((backend, outcome));
    }
    let batches = rt.block_on(async {
        let on = batches::on_targets(&targets).await;
        batches::run(&on, &knobs, &step).await
    });
    let near = rt.block_on(near::run(
        Some(&redis_url),
        Some(&memcached_url),
        &format!("{run_id}:near:"),
        &knobs,
        &step,
    ));
    stampedes.sort_by_key(|(backend, procs, _)| {
        let rank = BACKENDS.iter().position(|b| b == backend);
        (rank, *procs)
    });

    step(&format!(
        "memory: {} locks in waves of {}",
        knobs.locks, knobs.wave
    ));
    let memory = memory::run(knobs.locks, knobs.wave);

    step("aiocache (Python)");
    let seed = if knobs.aiocache {
        seed::run_aiocache(&knobs, &servers::host_port(&redis_url), &memcached_addr)
    } else {
        Err("skipped (STAMPEDE_BENCH_AIOCACHE=0)".to_owned())
    };
    let environment = rt.block_on(environment::Environment::gather(
        &redis_url,
        &cluster_url,
        &memcached_addr,
        seed.as_ref().ok(),
    ));
    drop(targets);
    progress.finish_and_clear();

    let mut command = Knobs::set_in_env();
    command.push("cargo bench -p stampede-benches --bench compare".to_owned());
    let results = Results {
        knobs: knobs.clone(),
        rows,
        stampedes,
        cas,
        memory,
        round_trips,
        races,
        batches,
        near,
        seed,
        environment,
        command: command.join(" "),
        secs: started.elapsed().as_secs_f64(),
    };
    let text = report::markdown(&results);
    println!("{text}");
    if knobs.write {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        if let Err(error) = chart::draw(&results) {
            eprintln!("could not draw the chart: {error}");
        }
        std::fs::write(root.join("BENCHMARKS.md"), &text).expect("write BENCHMARKS.md");
        eprintln!("wrote BENCHMARKS.md and {}", chart::FILE);
    }
}
