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
    /// only the servers they need are started, the tables are printed and
    /// BENCHMARKS.md is left alone.
    pub only: Option<Only>,
    /// `STAMPEDE_BENCH_MEMCACHED_PARAMS` (empty): query parameters added to
    /// the memcached URL of a stampede run alone, e.g. `poll_ms=10`, to
    /// measure a client setting without rebuilding.
    pub memcached_params: String,
}

/// What `STAMPEDE_BENCH_ONLY` runs alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The batch rows.
    Batches,
    /// The stampede rows.
    Stampedes,
}

/// `STAMPEDE_BENCH_ONLY`, parsed: a part, on these backends.
#[derive(Clone, Debug)]
pub struct Only {
    pub part: Part,
    pub backends: Vec<&'static str>,
}

/// The backends, in the tables' order.
pub const BACKENDS: [&str; 4] = ["memory", "redis", "redis-cluster", "memcached"];

/// `STAMPEDE_BENCH_ONLY`: the part (`batches` or `stampedes`), on every
/// backend, or on those named after a colon (`stampedes:redis,memcached`).
fn only(value: &str) -> Only {
    let (part, backends) = value.split_once(':').unwrap_or((value, ""));
    let part = match part.trim() {
        "batches" => Part::Batches,
        "stampedes" => Part::Stampedes,
        other => panic!(
            "STAMPEDE_BENCH_ONLY={value:?}: {other:?} does not run alone; \
             `batches` or `stampedes` do"
        ),
    };
    if backends.trim().is_empty() {
        return Only {
            part,
            backends: BACKENDS.to_vec(),
        };
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
        .collect();
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
