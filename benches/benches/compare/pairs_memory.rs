//! The memory rows of the pairs table: `RedLock` acquire+release against a
//! lock record by hand in the same kind of map ([`MemoryLockFloor`]), the
//! `OptimisticLock` CAS pair against moka by hand ([`MemoryFloor`]), and a
//! `get_or_fill` hit against a moka `get` plus the codec's decode of the
//! same bytes ([`MemoryHitFloor`]).

use std::sync::Arc;
use std::time::Duration;

use stampede::{Cache, Fill};
use stampede_benches::floor::{MemoryFloor, MemoryHitFloor, MemoryLockFloor};

use crate::pairs::{contender, keys, ours_acquire, ours_optimistic, Spec, Targets};

/// The value of the hit row: a small record, as a typical cached lookup.
type Record = Vec<u64>;

fn record() -> Record {
    vec![7; 8]
}

fn hit_fill() -> Fill {
    Fill::ttl(Duration::from_secs(600))
}

pub(crate) async fn memory_specs(targets: &Targets, tasks: usize) -> Vec<Spec> {
    let mut specs = Vec::new();
    let locks = MemoryLockFloor::default();
    // `RedLock` builds its lock key once, in `new`: so does the floor.
    let lock_keys: Arc<Vec<String>> = Arc::new(
        keys(&format!("{}a", targets.floor_prefix), tasks)
            .iter()
            .map(|key| format!("{key}-lock"))
            .collect(),
    );
    specs.push(Spec {
        backend: "memory",
        workload: "acquire+release",
        floor_does: "DashMap (foldhash) insert-if-absent of a fresh token, then compare-remove, \
                     as stampede keeps lock records",
        ours: ours_acquire(&targets.memory, tasks),
        floor: contender(move |task, _| {
            let (locks, keys) = (locks.clone(), lock_keys.clone());
            async move { locks.acquire_release(&keys[task]) }
        }),
        peer: None,
    });
    let (floor, k) = (
        MemoryFloor::new(),
        keys(&format!("{}v", targets.floor_prefix), tasks),
    );
    specs.push(Spec {
        backend: "memory",
        workload: "OptimisticLock acquire+cas",
        floor_does: "moka get, then and_compute_with compare-put",
        ours: ours_optimistic(&targets.memory, tasks),
        floor: contender(move |task, i| {
            let (floor, k) = (floor.clone(), k.clone());
            async move { assert!(floor.gets_cas(&k[task], i.to_string().as_bytes()).await) }
        }),
        peer: None,
    });
    specs.push(hit_spec(&targets.memory, tasks).await);
    specs
}

/// `get_or_fill` hits on task-own keys `h<task>`, filled once beforehand;
/// the floor reads the very bytes stored there.
async fn hit_spec(cache: &Cache, tasks: usize) -> Spec {
    let hit_keys = keys("h", tasks);
    for key in hit_keys.iter() {
        let filled = cache.get_or_fill(key, hit_fill(), || async {
            Ok::<_, stampede::Error>(record())
        });
        assert_eq!(filled.await.expect("fill"), record());
    }
    let stored = cache.get(&hit_keys[0]).await.expect("get").expect("stored");
    let value_len = serde_json::to_vec(&record()).expect("encode").len();
    let floor = MemoryHitFloor::new(&hit_keys, stored, value_len).await;
    let (cache, ours_keys) = (Arc::new(cache.clone()), hit_keys.clone());
    Spec {
        backend: "memory",
        workload: "get_or_fill hit",
        floor_does: "moka get (foldhash), then serde_json's decode of the value in the same bytes",
        ours: contender(move |task, _| {
            let (cache, keys) = (Arc::clone(&cache), ours_keys.clone());
            async move {
                let got = cache.get_or_fill(&keys[task], hit_fill(), || async {
                    Ok::<_, stampede::Error>(Record::new())
                });
                assert_eq!(got.await.expect("hit"), record());
            }
        }),
        floor: contender(move |task, _| {
            let (floor, keys) = (floor.clone(), hit_keys.clone());
            async move { assert_eq!(floor.hit::<Record>(&keys[task]).await, record()) }
        }),
        peer: None,
    }
}
