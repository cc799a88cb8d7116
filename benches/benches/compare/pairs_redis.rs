//! The Redis rows of the pairs table, on one server and on a Redis Cluster:
//! `RedLock` acquire+release, fenced lock+release and the `OptimisticLock`
//! CAS pair, each against a floor that sends stampede's own scripts with
//! the same arguments by hand ([`RedisFloor`], [`ClusterFloor`]).
//!
//! rslock is the peer of the lock rows on one server only: neither it nor
//! aiocache speaks cluster, so the cluster rows have no peer.

use redis::aio::ConnectionLike;
use stampede::backend::redis::{fence_key, release_channel};
use stampede::Cache;
use stampede_benches::floor::{ClusterFloor, RedisFloor};
use stampede_benches::servers::cluster_nodes;

use crate::pairs::{
    contender, keys, ours_acquire, ours_lock, ours_optimistic, Contender, Spec, Targets, LEASE,
};

/// What a deployment's floor sends for each of the three rows, for the
/// table's notes.
struct FloorNotes {
    acquire: &'static str,
    lock: &'static str,
    optimistic: &'static str,
}

const STANDALONE: FloorNotes = FloorNotes {
    acquire: "SET NX PX, then EVALSHA release.lua, on one multiplexed connection from deadpool",
    lock: "EVALSHA lock_fenced.lua (SET NX PX + INCR), then EVALSHA release.lua",
    optimistic: "GET, then EVALSHA cas.lua against the envelope header",
};

const CLUSTER: FloorNotes = FloorNotes {
    acquire: "SET NX PX, then EVALSHA release.lua (SPUBLISH), through redis-rs's \
              ClusterConnection (one multiplexed link per master, routed by slot)",
    lock: "EVALSHA lock_fenced.lua (SET NX PX + INCR), then EVALSHA release.lua (SPUBLISH), \
           through redis-rs's ClusterConnection",
    optimistic: "GET, then EVALSHA cas.lua against the envelope header, through redis-rs's \
                 ClusterConnection",
};

/// The standalone rows: ours on `targets.redis`, the floor over one
/// multiplexed connection, rslock beside the lock rows.
pub(crate) async fn redis_specs(
    targets: &Targets,
    tasks: usize,
    rslock: &rslock::LockManager,
) -> Vec<Spec> {
    let floor = RedisFloor::connect(&targets.redis_url).await;
    let rslock_pair = |prefix: &str| {
        let (manager, k) = (
            rslock.clone(),
            keys(&format!("{}{prefix}", targets.floor_prefix), tasks),
        );
        contender(move |task, _| {
            let (manager, k) = (manager.clone(), k.clone());
            async move {
                let lock = manager
                    .lock(k[task].as_str(), LEASE)
                    .await
                    .expect("rslock lock");
                manager.unlock(&lock).await;
            }
        })
    };
    let peer = |prefix: &str| Some(("rslock lock+unlock".to_owned(), rslock_pair(prefix)));
    let on = Deployment {
        backend: "redis",
        cache: &targets.redis,
        notes: &STANDALONE,
        prefix: &targets.floor_prefix,
        tasks,
    };
    on.specs(floor, peer)
}

/// The cluster rows: ours on `targets.redis_cluster` (opened from the
/// cluster URL), the floor over redis-rs's cluster connection; no peer.
pub(crate) async fn cluster_specs(targets: &Targets, tasks: usize) -> Vec<Spec> {
    let floor = ClusterFloor::connect_cluster(&cluster_nodes(&targets.redis_cluster_url)).await;
    let on = Deployment {
        backend: "redis-cluster",
        cache: &targets.redis_cluster,
        notes: &CLUSTER,
        prefix: &targets.floor_prefix,
        tasks,
    };
    on.specs(floor, |_| None)
}

/// One Redis deployment's side of the table.
struct Deployment<'a> {
    backend: &'static str,
    cache: &'a Cache,
    notes: &'a FloorNotes,
    /// Prefix of the floor's (and peers') keys.
    prefix: &'a str,
    tasks: usize,
}

impl Deployment<'_> {
    /// The three rows against `floor`; `peer(key prefix)` gives the lock
    /// rows their peer, if any.
    fn specs<C>(
        &self,
        floor: RedisFloor<C>,
        peer: impl Fn(&str) -> Option<(String, Contender)>,
    ) -> Vec<Spec>
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        let (backend, tasks) = (self.backend, self.tasks);
        let (f, k) = (floor.clone(), keys(&format!("{}a", self.prefix), tasks));
        let acquire = Spec {
            backend,
            workload: "acquire+release",
            floor_does: self.notes.acquire,
            ours: ours_acquire(self.cache, tasks),
            floor: contender(move |task, _| {
                let (f, k) = (f.clone(), k.clone());
                async move {
                    let key = format!("{}-lock", k[task]);
                    f.acquire_release(&key, &release_channel(&key), LEASE).await
                }
            }),
            peer: peer("rs-a"),
        };
        let (f, k) = (floor.clone(), keys(&format!("{}l", self.prefix), tasks));
        let lock = Spec {
            backend,
            workload: "lock+release (exclusive, fenced)",
            floor_does: self.notes.lock,
            ours: ours_lock(self.cache, tasks),
            floor: contender(move |task, _| {
                let (f, k) = (f.clone(), k.clone());
                async move {
                    let key = format!("{}-lock", k[task]);
                    f.lock_release(&key, &fence_key(&key), &release_channel(&key), LEASE)
                        .await
                }
            }),
            peer: peer("rs-l"),
        };
        let (f, k) = (floor, keys(&format!("{}v", self.prefix), tasks));
        let optimistic = Spec {
            backend,
            workload: "OptimisticLock acquire+cas",
            floor_does: self.notes.optimistic,
            ours: ours_optimistic(self.cache, tasks),
            floor: contender(move |task, i| {
                let (f, k) = (f.clone(), k.clone());
                async move { assert!(f.gets_cas(&k[task], i.to_string().as_bytes()).await) }
            }),
            peer: None,
        };
        vec![acquire, lock, optimistic]
    }
}
