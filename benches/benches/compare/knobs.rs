//! The comparison's knobs: environment variables, each with a default
//! sized so that the whole run takes a few minutes on two cores.

use std::time::Duration;

/// Every knob, read once.
#[derive(Clone, Debug)]
pub struct Knobs {
    /// `STAMPEDE_BENCH_SCALE` (1.0): multiplies every pair count.
    pub scale: f64,
    /// `STAMPEDE_BENCH_ROUNDS` (5): interleaved rounds per row; the median counts.
    pub rounds: usize,
    /// `STAMPEDE_BENCH_TASKS` (64): tasks of the concurrent rows.
    pub tasks: usize,
    /// `STAMPEDE_BENCH_CALLERS` (1000): callers of a stampede.
    pub callers: usize,
    /// `STAMPEDE_BENCH_PROCS` (4): processes of the spread stampede.
    pub procs: usize,
    /// `STAMPEDE_BENCH_STAMPEDES` (3): stampedes per figure; latencies pooled.
    pub stampedes: usize,
    /// `STAMPEDE_BENCH_FILL_MS` (50): how long a fill takes.
    pub fill: Duration,
    /// `STAMPEDE_BENCH_LEASE_MS` (5000): the fill lock's lease.
    pub lease: Duration,
    /// `STAMPEDE_BENCH_CAS_TASKS` (64) × `STAMPEDE_BENCH_CAS_EACH` (50): CAS increments.
    pub cas_tasks: usize,
    /// See `cas_tasks`.
    pub cas_each: usize,
    /// `STAMPEDE_BENCH_LOCKS` (1000000): distinct locks of the memory run.
    pub locks: usize,
    /// `STAMPEDE_BENCH_WAVE` (100000): locks held at once in the memory run.
    pub wave: usize,
    /// `STAMPEDE_BENCH_RACE_TRIALS` (10000): delete-during-fill races per backend.
    pub race_trials: usize,
    /// `STAMPEDE_BENCH_RACE_IN_FLIGHT` (32): races on distinct keys at a time.
    pub race_in_flight: usize,
    /// `STAMPEDE_BENCH_AIOCACHE` (1): 0 skips aiocache.
    pub aiocache: bool,
    /// `STAMPEDE_BENCH_PYTHON` (python3): the interpreter that makes the venv.
    pub python: String,
    /// `STAMPEDE_BENCH_WRITE` (1): 0 prints the report without writing BENCHMARKS.md.
    pub write: bool,
    /// `STAMPEDE_BENCH_MANY_FILL_MS` (5): how long a `get_or_fill_many` fill takes.
    pub many_fill: Duration,
    /// `STAMPEDE_BENCH_MANY_RUNS` (20): `get_or_fill_many` rounds per backend,
    /// each of 50 callers on 100 fresh keys; latencies pooled.
    pub many_runs: usize,
    /// `STAMPEDE_BENCH_ONLY` (unset: the whole comparison): `batches` runs the
    /// batch rows alone, `batches:memory,redis` on those backends alone;
    /// `stampedes` and `stampedes:memcached` likewise run the stampede rows
    /// (one process, and across `procs` processes on Redis and memcached);
    /// `near` and `near:redis` the near-cache rows (on Redis and memcached;
    /// only the round-trip row runs on memcached);
    /// only the servers they need are started, the tables are printed and
    /// BENCHMARKS.md is left alone.
    pub only: Option<Only>,
    /// `STAMPEDE_BENCH_MEMCACHED_PARAMS` (empty): query parameters added to
    /// the memcached URL of a stampede run alone, e.g. `poll_ms=10`, to
    /// measure a client setting without rebuilding.
    pub memcached_params: String,
    /// `STAMPEDE_BENCH_NEAR_RATE` (10000): writes per second of the
    /// near cache's cross-node staleness row.
    pub near_rate: u32,
    /// `STAMPEDE_BENCH_NEAR_MS` (2000): how long that row writes for,
    /// after a warm-up of a quarter of it.
    pub near_for: Duration,
    /// `STAMPEDE_BENCH_NEAR_OPS` (10000): operations of the near cache's
    /// round-trip row, with and without the near cache each.
    pub near_ops: usize,
}

/// What `STAMPEDE_BENCH_ONLY` runs alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The batch rows.
    Batches,
    /// The stampede rows.
    Stampedes,
    /// The near-cache rows.
    Near,
}

/// `STAMPEDE_BENCH_ONLY`, parsed: a part, on these backends.
#[derive(Clone, Debug)]
pub struct Only {
    pub part: Part,
    pub backends: Vec<&'static str>,
}

/// The backends, in the tables' order.
pub const BACKENDS: [&str; 4] = ["memory", "redis", "redis-cluster", "memcached"];

/// The backends a near cache runs on (the library refuses one on memory,
/// which is in-process already, and on a Redis Cluster).
pub const NEAR_BACKENDS: [&str; 2] = ["redis", "memcached"];

/// `STAMPEDE_BENCH_ONLY`: the part (`batches`, `stampedes` or `near`), on
/// every backend it runs on, or on those named after a colon
/// (`stampedes:redis,memcached`).
fn only(value: &str) -> Only {
    let (part, backends) = value.split_once(':').unwrap_or((value, ""));
    let part = match part.trim() {
        "batches" => Part::Batches,
        "stampedes" => Part::Stampedes,
        "near" => Part::Near,
        other => panic!(
            "STAMPEDE_BENCH_ONLY={value:?}: {other:?} does not run alone; \
             `batches`, `stampedes` or `near` do"
        ),
    };
    if backends.trim().is_empty() {
        let backends = match part {
            // The library refuses a near cache on memory and on a cluster.
            Part::Near => NEAR_BACKENDS.to_vec(),
            _ => BACKENDS.to_vec(),
        };
        return Only { part, backends };
    }
    let backends = backends
        .split(',')
        .map(|name| {
            let name = name.trim();
            BACKENDS
                .into_iter()
                .find(|known| *known == name)
                .unwrap_or_else(|| {
                    panic!("STAMPEDE_BENCH_ONLY: unknown backend {name:?}; one of {BACKENDS:?}")
                })
        })
        .collect::<Vec<_>>();
    if part == Part::Near {
        if let Some(refused) = backends.iter().find(|b| !NEAR_BACKENDS.contains(b)) {
            panic!(
                "STAMPEDE_BENCH_ONLY={value:?}: no near cache on {refused} \
                 (the library refuses one there); one of {NEAR_BACKENDS:?}"
            );
        }
    }
    Only { part, backends }
}

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Knobs {
    /// Reads every knob from the environment.
    pub fn from_env() -> Knobs {
        Knobs {
            scale: var("STAMPEDE_BENCH_SCALE", 1.0),
            rounds: var("STAMPEDE_BENCH_ROUNDS", 5usize).max(1),
            tasks: var("STAMPEDE_BENCH_TASKS", 64usize).max(1),
            callers: var("STAMPEDE_BENCH_CALLERS", 1_000usize).max(1),
            procs: var("STAMPEDE_BENCH_PROCS", 4usize).max(1),
            stampedes: var("STAMPEDE_BENCH_STAMPEDES", 3usize).max(1),
            fill: Duration::from_millis(var("STAMPEDE_BENCH_FILL_MS", 50)),
            lease: Duration::from_millis(var("STAMPEDE_BENCH_LEASE_MS", 5_000)),
            cas_tasks: var("STAMPEDE_BENCH_CAS_TASKS", 64usize),
            cas_each: var("STAMPEDE_BENCH_CAS_EACH", 50usize),
            locks: var("STAMPEDE_BENCH_LOCKS", 1_000_000usize),
            wave: var("STAMPEDE_BENCH_WAVE", 100_000usize).max(1),
            race_trials: var("STAMPEDE_BENCH_RACE_TRIALS", 10_000usize),
            race_in_flight: var("STAMPEDE_BENCH_RACE_IN_FLIGHT", 32usize).max(1),
            aiocache: var("STAMPEDE_BENCH_AIOCACHE", 1u8) != 0,
            python: var("STAMPEDE_BENCH_PYTHON", "python3".to_owned()),
            write: var("STAMPEDE_BENCH_WRITE", 1u8) != 0,
            many_fill: Duration::from_millis(var("STAMPEDE_BENCH_MANY_FILL_MS", 5)),
            many_runs: var("STAMPEDE_BENCH_MANY_RUNS", 20usize).max(1),
            only: std::env::var("STAMPEDE_BENCH_ONLY")
                .ok()
                .filter(|value| !value.trim().is_empty())
                .map(|value| only(&value)),
            memcached_params: var("STAMPEDE_BENCH_MEMCACHED_PARAMS", String::new()),
            near_rate: var("STAMPEDE_BENCH_NEAR_RATE", 10_000u32).max(1),
            near_for: Duration::from_millis(var("STAMPEDE_BENCH_NEAR_MS", 2_000u64).max(1)),
            near_ops: var("STAMPEDE_BENCH_NEAR_OPS", 10_000usize).max(100),
        }
    }

    /// `n` scaled by `STAMPEDE_BENCH_SCALE`, at least 1.
    pub fn scaled(&self, n: usize) -> usize {
        ((n as f64 * self.scale).round() as usize).max(1)
    }

    /// The knobs set in this run's environment, as `NAME=value` words.
    pub fn set_in_env() -> Vec<String> {
        let mut set: Vec<String> = std::env::vars()
            .filter(|(name, _)| {
                name.starts_with("STAMPEDE_BENCH_") && name != "STAMPEDE_BENCH_CHILD"
            })
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        set.sort();
        set
    }
}
