//! The near cache's rows: a hit against a moka `get` by hand
//! (`near_hits`), cross-node staleness on Redis at a paced write rate
//! (`near_stale`), and the round trips it saves under a skewed read load
//! (`near_trips`, on Redis and memcached).
//!
//! Run alone with `STAMPEDE_BENCH_ONLY=near[:redis|memcached]` (see
//! [`run_alone`]); otherwise part of the whole comparison. Every handle
//! here is opened on the root namespace, its keys prefixed by the run's
//! id: on memcached a namespace costs a generation lookup per call, which
//! is not what these rows measure.

use stampede::NearStats;
use stampede_benches::servers;

use crate::knobs::Knobs;
use crate::near_stale::Staleness;
use crate::near_trips::Trips;
use crate::pairs::{measure_row, Mode, Row};

/// Progress steps of the whole run: the two hit rows (two modes each),
/// the staleness row, the round-trip rows on two backends.
pub const STEPS: u64 = 4 + 1 + 2;

/// What the hit rows' near cache counted while they ran.
#[derive(Clone, Copy, Debug, Default)]
pub struct HitCheck {
    pub hits: u64,
    pub misses: u64,
    pub backend_reads: u64,
    pub invalidations: u64,
    pub flushes: u64,
    /// Values decoded in this process while the rows ran.
    pub decodes: u64,
}

/// Everything the near rows measured.
#[derive(Clone, Debug, Default)]
pub struct NearResults {
    pub hits: Vec<Row>,
    pub hit_check: HitCheck,
    pub staleness: Option<Staleness>,
    pub trips: Vec<Trips>,
}

/// Runs the rows on the backends given (`None`: not run there).
pub async fn run(
    redis_url: Option<&str>,
    memcached_url: Option<&str>,
    prefix: &str,
    knobs: &Knobs,
    mut step: impl FnMut(&str),
) -> NearResults {
    let mut results = NearResults::default();
    if let Some(url) = redis_url {
        let (cache, writer) = (
            crate::near_stale::node(url).await,
            crate::near_stale::node(url).await,
        );
        let specs = crate::near_hits::specs(&cache, &writer, prefix, knobs.tasks).await;
        let before = cache.near_stats().expect("a near cache");
        let decodes = crate::near_hits::decodes();
        for spec in &specs {
            // Hits are memory-speed: as many as the memory rows.
            let (seq, per_task) = (knobs.scaled(200_000), knobs.scaled(200_000) / knobs.tasks);
            for mode in [
                Mode::Sequential(seq),
                Mode::Concurrent {
                    tasks: knobs.tasks,
                    per_task: per_task.max(1),
                },
            ] {
                step(&format!("{} ({})", spec.workload, mode.label()));
                results
                    .hits
                    .push(measure_row(spec, mode, knobs.rounds).await);
            }
        }
        let after = cache.near_stats().expect("a near cache");
        results.hit_check = check(before, after);
        results.hit_check.decodes = crate::near_hits::decodes() - decodes;
        drop((cache, writer));

        step(&format!(
            "near: staleness across nodes at {} writes/s",
            knobs.near_rate
        ));
        results.staleness = Some(
            crate::near_stale::run(
                url,
                &format!("{prefix}stale"),
                knobs.near_rate,
                knobs.near_for,
            )
            .await,
        );
    }
    for (backend, url) in [("redis", redis_url), ("memcached", memcached_url)] {
        let Some(url) = url else { continue };
        step(&format!("near: round trips saved on {backend}"));
        let trips =
            crate::near_trips::run(backend, url, &format!("{prefix}trips:"), knobs.near_ops).await;
        results.trips.push(trips);
    }
    results
}

fn check(before: NearStats, after: NearStats) -> HitCheck {
    HitCheck {
        hits: after.hits - before.hits,
        misses: after.misses - before.misses,
        backend_reads: after.backend_reads - before.backend_reads,
        invalidations: after.invalidations - before.invalidations,
        flushes: after.flushes - before.flushes,
        decodes: 0,
    }
}

/// The near rows alone, on `backends` (Redis, memcached): only their
/// servers are started; prints the section and its targets.
pub fn run_alone(knobs: &Knobs, backends: &[&'static str]) {
    let prefix = format!("near-{}:", uuid::Uuid::new_v4().simple());
    let redis = backends.contains(&"redis").then(servers::redis_url);
    let memcached = backends.contains(&"memcached").then(servers::memcached_url);
    let rt = stampede_benches::runtime(2);
    let results = rt.block_on(run(
        redis.as_deref(),
        memcached.as_deref(),
        &prefix,
        knobs,
        |message| eprintln!("{message}"),
    ));
    println!("{}", crate::report_near::alone(&results, knobs));
}
