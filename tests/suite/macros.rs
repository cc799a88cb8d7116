//! `#[cached]` and `#[synchronized]` on every backend.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use stampede::{cached, synchronized, Cache, Error};

use crate::common::Store;

#[cached(cache = &cache, key = "item:{id}", ttl = "1m", lease = "10s")]
async fn load(cache: Cache, id: u64, calls: Arc<AtomicUsize>) -> Result<String, Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await; // the slow source
    Ok(format!("item {id}"))
}

pub async fn cached_runs_the_body_once_for_a_thousand_callers(store: Store) {
    let cache = store.handle().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..1_000)
        .map(|_| tokio::spawn(load(cache.clone(), 7, Arc::clone(&calls))))
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "item 7");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the body ran more than once"
    );
    assert_eq!(
        cache
            .get_value::<String>("item:7")
            .await
            .unwrap()
            .as_deref(),
        Some("item 7"),
        "the value is an ordinary cache entry at the formatted key"
    );
    assert_eq!(
        load(cache.clone(), 8, Arc::clone(&calls)).await.unwrap(),
        "item 8"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "another argument, another key"
    );
    assert_eq!(
        load(cache.clone(), 7, Arc::clone(&calls)).await.unwrap(),
        "item 7"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "a hit runs no body");
}

/// Records every entry and exit; `overlaps` counts entries while another
/// call was inside.
#[derive(Default)]
struct Inside {
    now: AtomicUsize,
    overlaps: AtomicUsize,
    runs: AtomicUsize,
}

#[synchronized(cache = &cache, name = "job:{job}", lease = "2s", wait = "1m")]
async fn run_job(cache: Cache, job: &'static str, inside: Arc<Inside>) -> Result<(), Error> {
    if inside.now.fetch_add(1, Ordering::SeqCst) != 0 {
        inside.overlaps.fetch_add(1, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    inside.runs.fetch_add(1, Ordering::SeqCst);
    inside.now.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

pub async fn synchronized_calls_never_overlap(store: Store) {
    let (one, two) = (store.handle().await, store.independent_handle().await);
    let inside = Arc::new(Inside::default());
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let cache = if i % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(run_job(cache, "export", Arc::clone(&inside)))
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(inside.runs.load(Ordering::SeqCst), 32);
    assert_eq!(
        inside.overlaps.load(Ordering::SeqCst),
        0,
        "two calls were inside at once"
    );
    assert!(
        !one.exists("job:export-lock").await.unwrap(),
        "the last call released the lock"
    );
}
