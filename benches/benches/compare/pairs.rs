//! Ours against the floor and a peer, per operation pair: sequential, and
//! many tasks on distinct keys. Contenders take turns, round after round,
//! and each reports the median of its rounds. Rows: memory, Redis (one
//! server, then a Redis Cluster: `pairs_redis`), memcached.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use stampede::{Cache, OptimisticLock, RedLock};
use stampede_benches::floor::MemcachedFloor;
use stampede_benches::measure;

use crate::knobs::Knobs;
use crate::pairs_redis::{cluster_specs, redis_specs};

/// The lease of every lock in the table (never reached: each is released).
pub(crate) const LEASE: Duration = Duration::from_secs(10);

/// How a row runs its operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One after another, `n` of them.
    Sequential(usize),
    /// `tasks` tasks on distinct keys, `per_task` each.
    Concurrent { tasks: usize, per_task: usize },
}

impl Mode {
    pub fn label(self) -> String {
        match self {
            Mode::Sequential(_) => "sequential".to_owned(),
            Mode::Concurrent { tasks, .. } => format!("{tasks} tasks"),
        }
    }
}

type Timed = Pin<Box<dyn Future<Output = f64> + Send>>;
/// Runs a contender in a mode; µs per operation pair.
pub(crate) type Contender = Box<dyn Fn(Mode) -> Timed + Send + Sync>;

/// A contender running `op(task, i)`: the `i`th pair of task `task` (task
/// 0 alone when sequential).
pub(crate) fn contender<F, Fut>(op: F) -> Contender
where
    F: Fn(usize, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Box::new(move |mode| {
        let op = op.clone();
        Box::pin(async move {
            match mode {
                Mode::Sequential(n) => {
                    let wall = measure::sequential(n, |i| op(0, i)).await;
                    wall.as_secs_f64() * 1e6 / n as f64
                }
                Mode::Concurrent { tasks, per_task } => {
                    let wall = measure::concurrent(tasks, per_task, op).await;
                    wall.as_secs_f64() * 1e6 / (tasks * per_task) as f64
                }
            }
        })
    })
}

/// One row of the table, measured.
#[derive(Clone, Debug)]
pub struct Row {
    pub backend: &'static str,
    pub workload: &'static str,
    pub mode: Mode,
    /// µs per pair (for concurrent rows: wall time ÷ pairs).
    pub ours: f64,
    pub floor: f64,
    /// Which peer, and its µs per pair; aiocache's are filled in later.
    pub peer: Option<(String, f64)>,
    /// What the floor does, for the table's notes.
    pub floor_does: &'static str,
}

/// What a row is made of before it is measured.
pub(crate) struct Spec {
    pub(crate) backend: &'static str,
    pub(crate) workload: &'static str,
    pub(crate) floor_does: &'static str,
    pub(crate) ours: Contender,
    pub(crate) floor: Contender,
    pub(crate) peer: Option<(String, Contender)>,
}

pub(crate) async fn measure_row(spec: &Spec, mode: Mode, rounds: usize) -> Row {
    let warm_up = match mode {
        Mode::Sequential(n) => Mode::Sequential((n / 10).max(1)),
        Mode::Concurrent { tasks, per_task } => Mode::Concurrent {
            tasks,
            per_task: (per_task / 10).max(1),
        },
    };
    (spec.ours)(warm_up).await;
    (spec.floor)(warm_up).await;
    if let Some((_, peer)) = &spec.peer {
        peer(warm_up).await;
    }
    let (mut ours, mut floor, mut peer) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate who goes first, so that neither always follows the other.
        if round % 2 == 0 {
            ours.push((spec.ours)(mode).await);
            floor.push((spec.floor)(mode).await);
        } else {
            floor.push((spec.floor)(mode).await);
            ours.push((spec.ours)(mode).await);
        }
        if let Some((_, run)) = &spec.peer {
            peer.push(run(mode).await);
        }
    }
    Row {
        backend: spec.backend,
        workload: spec.workload,
        mode,
        ours: measure::median(&mut ours),
        floor: measure::median(&mut floor),
        peer: spec
            .peer
            .as_ref()
            .map(|(name, _)| (name.clone(), measure::median(&mut peer))),
        floor_does: spec.floor_does,
    }
}

/// Per-task keys `<prefix><task>`.
pub(crate) fn keys(prefix: &str, tasks: usize) -> Arc<Vec<String>> {
    Arc::new((0..tasks).map(|t| format!("{prefix}{t}")).collect())
}

fn redlocks(cache: &Cache, prefix: &str, tasks: usize) -> Arc<Vec<RedLock>> {
    Arc::new(
        (0..tasks)
            .map(|t| RedLock::new(cache, format!("{prefix}{t}"), LEASE))
            .collect(),
    )
}

/// `RedLock::acquire` then `release`, on task-own keys `a<task>`.
pub(crate) fn ours_acquire(cache: &Cache, tasks: usize) -> Contender {
    let locks = redlocks(cache, "a", tasks);
    contender(move |task, _| {
        // One `Arc` clone per pair, as the floors do: cloning the `RedLock`
        // itself would time a `String` copy that no caller makes.
        let locks = Arc::clone(&locks);
        async move {
            let guard = locks[task].acquire().await.expect("acquire");
            assert!(guard.holds_lock(), "uncontended");
            assert!(guard.release().await.expect("release"));
        }
    })
}

/// `RedLock::lock` (exclusive, fenced) then `release`, on keys `l<task>`.
pub(crate) fn ours_lock(cache: &Cache, tasks: usize) -> Contender {
    let locks = redlocks(cache, "l", tasks);
    contender(move |task, _| {
        let locks = Arc::clone(&locks);
        async move {
            let guard = locks[task].lock().await.expect("lock");
            assert!(guard.release().await.expect("release"));
        }
    })
}

/// `OptimisticLock::acquire` then an uncontended `cas`, on keys `v<task>`.
pub(crate) fn ours_optimistic(cache: &Cache, tasks: usize) -> Contender {
    let (cache, keys) = (Arc::new(cache.clone()), keys("v", tasks));
    contender(move |task, i| {
        let (cache, keys) = (Arc::clone(&cache), keys.clone());
        async move {
            let lock = OptimisticLock::acquire(&cache, &keys[task])
                .await
                .expect("acquire");
            lock.cas(i.to_string(), None)
                .await
                .expect("uncontended cas");
        }
    })
}

/// The backends' caches and floors, opened once.
pub struct Targets {
    pub memory: Cache,
    pub redis: Cache,
    /// Opened from the cluster URL (`redis+cluster://…`).
    pub redis_cluster: Cache,
    pub memcached: Cache,
    pub redis_url: String,
    pub redis_cluster_url: String,
    pub memcached_addr: String,
    /// Prefix of the floors' and peers' keys, unique to this run.
    pub floor_prefix: String,
}

async fn specs(targets: &Targets, tasks: usize, rslock: &rslock::LockManager) -> Vec<Spec> {
    let mut specs = Vec::new();

    specs.extend(crate::pairs_memory::memory_specs(targets, tasks).await);
    specs.extend(redis_specs(targets, tasks, rslock).await);
    specs.extend(cluster_specs(targets, tasks).await);
    specs.extend(memcached_specs(targets, tasks).await);
    specs
}

async fn memcached_specs(targets: &Targets, tasks: usize) -> Vec<Spec> {
    let floor = MemcachedFloor::connect(&targets.memcached_addr).await;
    // stampede sends a 10 s lease as ceil(10) + 2 seconds.
    let lease_secs = LEASE.as_secs() as u32 + 2;
    let mut specs = Vec::new();
    let (f, k) = (
        floor.clone(),
        keys(&format!("{}a", targets.floor_prefix), tasks),
    );
    specs.push(Spec {
        backend: "memcached",
        workload: "acquire+release",
        floor_does: "ms ME T c (the CAS comes back), then md C<cas>, through memcache::exp",
        ours: ours_acquire(&targets.memcached, tasks),
        floor: contender(move |task, _| {
            let (f, k) = (f.clone(), k.clone());
            async move {
                f.acquire_release(&format!("{}-lock", k[task]), lease_secs)
                    .await
            }
        }),
        peer: None,
    });
    let (f, k) = (floor, keys(&format!("{}v", targets.floor_prefix), tasks));
    specs.push(Spec {
        backend: "memcached",
        workload: "OptimisticLock acquire+cas",
        floor_does: "mg v c, then ms C<cas>, through memcache::exp",
        ours: ours_optimistic(&targets.memcached, tasks),
        floor: contender(move |task, i| {
            let (f, k) = (f.clone(), k.clone());
            async move { assert!(f.gets_cas(&k[task], i.to_string().as_bytes()).await) }
        }),
        peer: None,
    });
    specs
}

/// Measures every row, sequential and concurrent; `step` is told each row.
pub async fn run(targets: &Targets, knobs: &Knobs, mut step: impl FnMut(&str)) -> Vec<Row> {
    let rslock = rslock::LockManager::new(vec![targets.redis_url.clone()]);
    let specs = specs(targets, knobs.tasks, &rslock).await;
    let mut rows = Vec::new();
    for spec in &specs {
        // The memory backend is ~1,000× faster than a round trip: more
        // pairs, so that each round lasts long enough (tens of ms) for a
        // burst of other work on the machine (the servers just started,
        // replicas syncing) not to decide a whole row.
        let (seq, per_task) = match spec.backend {
            "memory" => (knobs.scaled(200_000), knobs.scaled(200_000) / knobs.tasks),
            _ => (knobs.scaled(1_000), knobs.scaled(4_000) / knobs.tasks),
        };
        for mode in [
            Mode::Sequential(seq),
            Mode::Concurrent {
                tasks: knobs.tasks,
                per_task: per_task.max(1),
            },
        ] {
            step(&format!(
                "{} {} ({})",
                spec.backend,
                spec.workload,
                mode.label()
            ));
            rows.push(measure_row(spec, mode, knobs.rounds).await);
        }
    }
    rows
}
