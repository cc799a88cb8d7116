//! The near cache's random workload, shared by the per-backend tests.

use stampede::Cache;

/// Runs `ops` random operations (get 45%, set 25%, delete 15%, gets + cas
/// 15%) over `keys`, in 12 tasks spread over `nodes`, each task seeded by
/// its number; returns when all are done.
pub async fn random_operations(nodes: &[Cache], keys: &[String], ops: usize) {
    let tasks = 12;
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let cache = nodes[task % nodes.len()].clone();
            let keys = keys.to_vec();
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(task as u64);
                for op in 0..ops / tasks {
                    let key = &keys[rng.usize(..keys.len())];
                    match rng.u8(..100) {
                        0..=44 => drop(cache.get(key).await.unwrap()),
                        45..=69 => cache.set(key, format!("{task}:{op}"), None).await.unwrap(),
                        70..=84 => drop(cache.delete(key).await.unwrap()),
                        _ => {
                            if let Some((_, token)) = cache.gets(key).await.unwrap() {
                                let value = format!("cas {task}:{op}");
                                cache.cas(key, value, Some(&token), None).await.unwrap();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}
