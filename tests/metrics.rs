//! The `metrics` feature: every metric the crate records, counted with
//! metrics-util's debugging recorder, on the memory backend.

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use stampede::{Cache, Error, Fill, RedLock};

/// Every counter and histogram as `name{label=value,…}` → value.
fn snapshot(snapshotter: &Snapshotter) -> HashMap<String, DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

fn counter(all: &HashMap<String, DebugValue>, name: &str) -> u64 {
    match all.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{name} is not a counter: {other:?}"),
    }
}

fn samples(all: &HashMap<String, DebugValue>, name: &str) -> Vec<f64> {
    match all.get(name) {
        Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
        None => Vec::new(),
        Some(other) => panic!("{name} is not a histogram: {other:?}"),
    }
}

// One test: the recorder is global to this test binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_counts_what_happened() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this binary");
    let cache = Cache::memory();
    let fill = Fill::ttl(Duration::from_secs(60));

    // A stampede of 50 on a cold key: one fill; each call a hit or a miss.
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (cache, fill) = (cache.clone(), fill.clone());
            tokio::spawn(async move {
                cache
                    .get_or_fill("k", fill, || async {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        Ok::<_, Error>(1u32)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 1);
    }
    let all = snapshot(&snapshotter);
    let stored = "stampede_fills_total{backend=memory,outcome=stored}";
    assert_eq!(counter(&all, stored), 1, "{all:#?}");
    let hits = counter(&all, "stampede_hits_total{backend=memory,op=get_or_fill}");
    let misses = counter(&all, "stampede_misses_total{backend=memory,op=get_or_fill}");
    assert!(misses >= 1, "the first caller missed");
    assert_eq!(
        hits + misses,
        50,
        "one of the two per call: {hits} + {misses}"
    );
    let durations = samples(&all, "stampede_fill_duration_seconds{backend=memory}");
    assert_eq!(durations.len(), 1);
    assert!(durations[0] >= 0.03, "the fill took 30 ms: {durations:?}");

    // A failing fill.
    let failed: Result<u32, Error> = cache
        .get_or_fill("bad", fill.clone(), || async {
            Err(Error::Unsupported {
                backend: "test",
                operation: "fill",
            })
        })
        .await;
    assert!(failed.is_err());
    // A compare-and-set conflict.
    cache.set("c", b"1", None).await.unwrap();
    let (_, token) = cache.gets("c").await.unwrap().unwrap();
    cache.set("c", b"2", None).await.unwrap();
    assert!(!cache.cas("c", b"3", Some(&token), None).await.unwrap());
    // A stale value served while one caller refreshes.
    let swr = fill.clone().stale_while_revalidate(Duration::from_secs(30));
    let _: u32 = cache
        .get_or_fill("s", swr.clone(), || async { Ok::<_, Error>(1) })
        .await
        .unwrap();
    assert!(cache
        .mark_stale("s", Duration::from_secs(30))
        .await
        .unwrap());
    let other = cache.clone();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
    let refresher = tokio::spawn(async move {
        other
            .get_or_fill("s", swr, || async move {
                started_tx.send(()).unwrap();
                finish_rx.await.unwrap();
                Ok::<_, Error>(2u32)
            })
            .await
            .unwrap()
    });
    started_rx.await.unwrap();
    let stale: u32 = cache
        .get_or_fill(
            "s",
            fill.clone().stale_while_revalidate(Duration::from_secs(30)),
            || async { Ok::<_, Error>(3) },
        )
        .await
        .unwrap();
    assert_eq!(stale, 1, "served the stale value");
    finish_tx.send(()).unwrap();
    assert_eq!(refresher.await.unwrap(), 2);
    // A lock waited for, and a lease lost.
    let lock = RedLock::new(&cache, "l", Duration::from_secs(10));
    let held = lock.lock().await.unwrap();
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move { lock.lock().await.unwrap() }
    });
    while cache.waiting_lock_keys() == 0 {
        tokio::task::yield_now().await;
    }
    held.release().await.unwrap();
    let second = waiter.await.unwrap();
    assert!(cache.delete("l-lock").await.unwrap());
    assert!(
        !second.extend(Duration::from_secs(10)).await.unwrap(),
        "the record is gone: lost"
    );
    // Batches count each key.
    let _ = cache.get_many(&["c", "absent"]).await.unwrap();

    let all = snapshot(&snapshotter);
    assert_eq!(
        counter(&all, "stampede_fill_errors_total{backend=memory}"),
        1
    );
    assert_eq!(
        counter(&all, "stampede_cas_conflicts_total{backend=memory,op=cas}"),
        1
    );
    assert_eq!(
        counter(&all, "stampede_stale_served_total{backend=memory}"),
        2,
        "{all:#?}"
    );
    let waits = samples(
        &all,
        "stampede_lock_wait_seconds{backend=memory,outcome=acquired}",
    );
    assert_eq!(waits.len(), 1, "{all:#?}");
    assert_eq!(
        counter(&all, "stampede_leases_lost_total{backend=memory}"),
        1
    );
    assert_eq!(
        counter(&all, "stampede_hits_total{backend=memory,op=get_many}"),
        1
    );
    assert_eq!(
        counter(&all, "stampede_misses_total{backend=memory,op=get_many}"),
        1
    );
}
