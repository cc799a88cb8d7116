//! Contended compare-and-set: many tasks each add 1 to one counter a
//! number of times with `OptimisticLock`, retrying on conflict at once
//! (as the aiocache side does): throughput, retries, lost updates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use stampede::{Cache, OptimisticLock};

/// What the run did.
#[derive(Clone, Debug, Default)]
pub struct CasOutcome {
    pub increments: u64,
    pub secs: f64,
    pub retries: u64,
    /// Increments that are not in the final value.
    pub lost: i64,
}

pub async fn increments(cache: &Cache, tasks: usize, each: usize) -> CasOutcome {
    let key = format!("counter-{}", uuid::Uuid::new_v4().simple());
    cache.set(&key, b"0", None).await.expect("set");
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (cache, key, retries) = (cache.clone(), key.clone(), retries.clone());
            tokio::spawn(async move {
                for _ in 0..each {
                    loop {
                        let lock = OptimisticLock::acquire(&cache, &key)
                            .await
                            .expect("acquire");
                        let current: u64 = std::str::from_utf8(lock.value().expect("set"))
                            .expect("utf-8")
                            .parse()
                            .expect("a number");
                        match lock.cas((current + 1).to_string(), None).await {
                            Ok(()) => break,
                            Err(e) if e.is_conflict() => {
                                retries.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("cas: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("a task panicked");
    }
    let secs = started.elapsed().as_secs_f64();
    let stored = cache.get(&key).await.expect("get").expect("set");
    let total: i64 = std::str::from_utf8(&stored)
        .expect("utf-8")
        .parse()
        .expect("a number");
    let increments = (tasks * each) as u64;
    CasOutcome {
        increments,
        secs,
        retries: retries.load(Ordering::Relaxed),
        lost: increments as i64 - total,
    }
}
